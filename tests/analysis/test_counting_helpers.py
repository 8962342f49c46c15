"""Counts by what they are: helpers a conversion adds count nothing in the model's own compute (a),
and everything in the chip's work (b); a pooling folded into a matrix counts as the pooling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lmu2neuro.analysis.counting import count_operations, model_weights
from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core.intnet import IntNetwork, Population, Projection
from lmu2neuro.pipeline.inspect import format_summary, inspect_nir
from netgen import make_traffic

T = 20


def _with_helpers() -> IntNetwork:
    """input -> h (6) -> out (3) -> readout, plus every kind of helper: a reset self connection on h,
    a bias source population feeding out, a spike-count readout identity."""
    rng = np.random.default_rng(0)
    reset = np.zeros((2, 6, 6), np.int64)
    reset[1] = -np.eye(6, dtype=np.int64) * 4
    pops = [Population("bias", 1, du=0, dv=fx.DECAY_UNITY - 1, vth=0, bias_mant=np.ones(1, np.int64),
                       meta={"helper": "bias source"}),
            Population("h", 6, du=1024, dv=512, vth=30, bias_mant=np.zeros(6, np.int64)),
            Population("out", 3, du=1024, dv=512, vth=30, bias_mant=np.zeros(3, np.int64)),
            Population.readout_of("readout", 3)]
    projs = [Projection("h.w", "input", "h", rng.integers(1, 60, (1, 6, 4)) * 2),
             Projection("h.reset", "h", "h", reset, origin={"helper": "reset self connection"}),
             Projection("out.w", "h", "out", rng.integers(1, 60, (1, 3, 6)) * 2),
             Projection("out.bias", "bias", "out", np.full((1, 3, 1), 6), origin={"helper": "bias source"}),
             Projection("ro", "out", "readout", np.eye(3, dtype=np.int64)[None] * 2,
                        origin={"helper": "spike-count readout"})]
    return IntNetwork(4, 1.0, pops, projs, "readout")


def test_helpers_count_nothing_in_the_models_compute_and_everything_in_the_chips_work():
    net = _with_helpers()
    x = np.random.default_rng(1).integers(0, 30, (4, T, 4))
    c = count_operations(make_traffic(net, x), net)
    by = {p.name: p for p in c.projections}
    assert all(by[n].synaptic_ops > 0 for n in by), {n: p.synaptic_ops for n, p in by.items()}  # every helper works
    nb = c.neurobench["SynapticOperations"]
    assert nb["Dense"] == (6 * 4 + 3 * 6) * T  # the two layers only
    assert nb["Effective_MACs"] == by["h.w"].synaptic_ops and nb["Effective_ACs"] == by["out.w"].synaptic_ops
    tot = c.totals
    assert tot["chip_synaptic_ops"] == pytest.approx(sum(p.synaptic_ops for p in c.projections))
    assert tot["helper_synaptic_ops_by_kind"] == pytest.approx({
        "reset self connection": by["h.reset"].synaptic_ops, "bias source": by["out.bias"].synaptic_ops,
        "spike-count readout": by["ro"].synaptic_ops})
    assert tot["ann_baseline_macs"] == nb["Dense"] and tot["dense"] == nb["Dense"]
    # the always-on bias neuron is no neuron of the model: not in its sparsity or membrane updates
    assert c.neurobench["MembraneUpdates"] == (6 + 3) * T
    spikes = sum(lay.spikes for lay in c.layers if lay.name in ("h", "out"))
    assert c.neurobench["ActivationSparsity"] == pytest.approx(1 - spikes / ((6 + 3) * T))
    assert c.neurobench["ParameterCount"] == 6 * 4 + 3 * 6
    assert model_weights(net.projections[1]) == (0, 0)


def test_the_issues_conv1d_net_counts_its_own_compute():
    snn = pytest.importorskip("snntorch")
    from torch import nn

    from lmu2neuro.deploy.lowering import lower
    from lmu2neuro.models.trace import LoihiModel
    from lmu2neuro.deploy.snntorch import convert_snntorch

    torch.manual_seed(0)
    module = nn.Sequential(nn.Conv1d(1, 8, 5, padding=2), snn.Synaptic(alpha=0.5, beta=0.8, init_hidden=True),
                           nn.AvgPool1d(2), nn.Flatten(), nn.Linear(64, 32), snn.Leaky(beta=0.9, init_hidden=True),
                           nn.Linear(32, 5), snn.Leaky(beta=0.9, init_hidden=True, output=True))
    ours, _ = convert_snntorch(module)
    model = LoihiModel(ours, (1, 16), max_len=T).eval()
    model.calibrate(torch.rand(8, T, 16))
    net = lower(model)
    for p in net.projections:  # the readout the conversion adds, marked by hand until it marks it (issue 20)
        if p.target == net.output and p.origin.get("layers") == ["spike_count"]:
            p.origin.setdefault("helper", "spike-count readout")
    own = 8 * (16 * 5 - 6) + 64 * 32 + 32 * 5  # the conv (its padded taps excluded), the two Linears: 2,800
    x = net.quantize_input(np.random.default_rng(2).random((3, T, 16)))
    c = count_operations(make_traffic(net, x), net)
    dense = c.neurobench["SynapticOperations"]["Dense"]
    assert dense == pytest.approx(own * T, rel=0.05) and dense == own * T  # was 139,420 (2.5x)
    pooled = next(p for p in net.projections if p.origin.get("layers") == ["2", "3", "4"])
    assert pooled.weights[0].size == 128 * 32 and pooled.origin["ann_macs"] == 64 * 32
    assert model_weights(pooled)[0] == 64 * 32


def test_inspect_prints_the_models_weights_beside_what_the_chip_stores(tmp_path):
    from converters.nir.export import export_nir

    net = _with_helpers()
    export_nir(net, tmp_path / "m.nir")
    text = format_summary(inspect_nir(tmp_path / "m.nir"))
    h = next(line for line in text.splitlines() if line.strip().startswith("h ") and "weights_in=" in line)
    assert "weights_in=24 stored_in=96" in h and "helpers: reset self connection" in h
