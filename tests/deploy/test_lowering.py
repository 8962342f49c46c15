"""lower(model) is the deployed network: integer_forward == reference.simulate(lower(model)) bit-exactly."""

import numpy as np
import pytest
import torch

from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core.errors import UserError
from lmu2neuro.core.intnet import IntNetworkError
from lmu2neuro.core.legendre import impulse_response
from lmu2neuro.deploy.lowering import integer_forward, lower
from lmu2neuro.models.config import ModelConfig
from lmu2neuro.models.registry import build_model
from lmu2neuro.core.executor import execute
from netgen import lively


@pytest.mark.parametrize(
    "preset,input_size,classes,steps,overrides",
    [
        ("digits-small", 8, 10, 12, {}),
        ("digits-small", 8, 10, 32, {"depth": 2}),
        ("kws-small", 40, 12, 40, {"dim": 24, "memory_order": 24, "max_len": 64}),
    ],
)
def test_integer_forward_equals_reference_simulation_of_the_lowered_network(
    preset, input_size, classes, steps, overrides
):
    torch.manual_seed(len(overrides) + steps)
    cfg = ModelConfig.from_preset(preset, input_size=input_size, num_classes=classes, spiking=True, **overrides)
    model = lively(build_model(cfg), seed=steps)
    # real-shaped inputs: pixels in [0, 1] for digits, normalised mel features for kws
    x = torch.rand(5, steps, input_size) if preset == "digits-small" else torch.randn(5, steps, input_size)
    out = integer_forward(model, x)
    net = lower(model)
    ref = execute(net, net.quantize_input(x.numpy()))
    assert out["scores"].dtype == torch.int64 and out["scores"].shape == (5, classes)
    assert torch.equal(out["scores"], ref.scores)
    assert torch.equal(out["readout_trace"], ref.readout_trace)
    assert set(out["spikes"]) == set(ref.spikes)
    active = 0
    for name, s in ref.spikes.items():
        assert torch.equal(out["spikes"][name], s), name
        active += bool(s.any())
    assert active == len(ref.spikes) - 1  # every population but the readout fires
    assert sum(ref.wrapped.values()) == 0


def test_lowered_structure_and_origins():
    cfg = ModelConfig.from_preset("digits-small", input_size=8, num_classes=10, spiking=True)
    model = lively(build_model(cfg), seed=1)
    net = lower(model)
    names = [p.name for p in net.populations]
    assert names[0] == "embed0" and names[-1] == "readout" and net.output == "readout"
    ro = net.population("readout")
    assert ro.readout and ro.du == 4095 and ro.dv == 0 and ro.vth == fx.VTH_MAX
    for p in net.populations[:-1]:
        assert p.du == 4095 and p.dv == 2048 and 1 <= p.vth <= 8192
    for s in net.projections:  # every projection uses its 8 bits: the top mantissa bit is set
        assert 128 <= np.abs(s.weights).max() <= 256, (s.name, np.abs(s.weights).max(), s.weight_exp)
    conv = [s for s in net.projections if s.origin["kind"] == "conv"]
    assert conv and all(s.taps == cfg.kernel_size and s.origin["kernel"] == cfg.kernel_size for s in conv)
    assert any(s.source == "input" for s in conv)
    # The residual stream reaches each consumer as one projection per contributor.
    into_head = {s.source for s in net.projections_into("head")}
    assert into_head == {"embed0", "embed1", "block0.h", "block0.fc2"}
    fir = [s for s in net.projections if s.origin["kind"] == "lmu_fir"]
    assert len(fir) == 1
    f = fir[0]
    assert f.source == "block0.u" and f.taps == cfg.max_len and f.weights.shape[2] == 1
    assert f.origin["order"] == cfg.memory_order and f.origin["theta"] == cfg.theta
    # weights[k, i, 0] * 2**exp ~= bn_scale[i] * H[i, k]: the documented rebuild rule
    h = impulse_response(cfg.memory_order, cfg.theta, cfg.max_len)
    rebuilt = np.asarray(f.origin["bn_scale"])[:, None] * h
    step = 2.0**f.weight_exp
    assert np.max(np.abs(f.weights[:, :, 0].T * step - rebuilt)) <= step  # even rounding: <= 1 LSB of 2
    assert all(s.origin["kind"] == "dense" for s in net.projections_into("readout"))


def test_readout_argmax_tracks_float_logits():
    torch.manual_seed(5)
    cfg = ModelConfig.from_preset("digits-small", input_size=8, num_classes=10, spiking=True)
    model = lively(build_model(cfg), seed=5)
    x = torch.rand(32, 16, 8)
    model.set_qat(True)
    with torch.no_grad():
        qat = model(x)
    out = integer_forward(model, x)
    agree = (qat.argmax(1) == out["scores"].argmax(1)).float().mean().item()
    assert agree >= 0.9, agree


@pytest.mark.parametrize("field,needle", [("weight", "weight limit"), ("bias", "bias limit")])
def test_out_of_range_weights_and_biases_raise_naming_the_layer(field, needle):
    cfg = ModelConfig.from_preset("digits-small", input_size=8, num_classes=10, spiking=True)
    model = lively(build_model(cfg), seed=2)
    with torch.no_grad():
        # a BN scale (or shift) that no 8-bit weight (13-bit bias) with exponent <= 7 can hold
        getattr(model.embed_bns[1], field)[3] = 1e9
        model.embed_bns[1].running_mean[3] = 0.0
        if field == "weight":
            model.embed_bns[1].bias[3] = 0.0
    with pytest.raises(IntNetworkError) as e:
        lower(model)
    assert "embed1" in str(e.value) and needle in str(e.value) and "e+0" in str(e.value)
    with pytest.raises(IntNetworkError):
        integer_forward(model, torch.zeros(1, 4, 8))


def test_non_causal_and_ann_models_are_not_lowered():
    cfg = ModelConfig.from_preset("digits-small", input_size=8, num_classes=10, spiking=True, causal=False)
    with pytest.raises(UserError, match="causal"):
        lower(build_model(cfg))
    cfg = ModelConfig.from_preset("digits-small", input_size=8, num_classes=10, spiking=False)
    with pytest.raises(UserError):
        lower(build_model(cfg))


def test_sequences_longer_than_max_len_are_refused():
    cfg = ModelConfig.from_preset("digits-small", input_size=8, num_classes=10, spiking=True, max_len=8)
    with pytest.raises(UserError, match="max_len"):
        integer_forward(build_model(cfg), torch.zeros(1, 9, 8))
