"""The demo-size Spiking LMUFormer in Lava, samples side by side, against the reference on every sample."""

import numpy as np
import pytest
import torch
from netgen import lively

from converters.lava.builder import run_lava
from lmu2neuro.core.measurement import agreement
from lmu2neuro.pipeline.simulate import run_reference

pytestmark = pytest.mark.lava


def test_demo_lmuformer_lanes_1_3_7_identical_to_the_reference():
    """digits-small at dim 64 (10 populations, 17 projections, the LMU memory as a 32-tap FIR,
    skip paths of unequal latency): 8 samples, which neither 3 nor 7 divides."""
    from lmu2neuro.deploy.lowering import lower
    from lmu2neuro.models.config import ModelConfig
    from lmu2neuro.models.registry import build_model

    torch.manual_seed(0)
    net = lower(lively(build_model(ModelConfig.from_preset("digits-small", dim=64))))
    x = net.quantize_input(np.random.default_rng(0).random((8, 16, net.input_size)))
    ref = run_reference(net, x)
    spiking = [p.name for p in net.populations if not p.readout]
    assert all((ref.sample_spikes[n] > 0).any() for n in spiking)  # every layer is alive
    for lanes in (1, 3, 7):
        lava = run_lava(net, x, progress=False, lanes=lanes)
        agree = agreement(lava, ref)
        assert agree["first_mismatch"] is None and agree["identical_spikes"] == 1.0, (lanes, agree)
        np.testing.assert_array_equal(lava.readout_trace, ref.readout_trace)
        for name in ref.spike_counts:
            np.testing.assert_array_equal(lava.spike_counts[name], ref.spike_counts[name])
            np.testing.assert_array_equal(lava.step_spikes[name], ref.step_spikes[name])
