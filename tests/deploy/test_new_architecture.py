"""A new architecture is one models file: declare graph(), and training, streaming, QAT, lowering,
integer mode and NIR export follow with no other change. This file is that models file."""

import numpy as np
import torch
from torch import nn

from converters.nir.export import export_nir
from converters.nir.read import read_intnet
from lmu2neuro.deploy.lowering import integer_forward, lower
from lmu2neuro.models.config import ModelConfig
from lmu2neuro.models.graph import INPUT, Dense, Node, Readout, Spiking, TemporalConv, Term, annotate, run
from lmu2neuro.models.neurons import LoihiLIF
from lmu2neuro.models.quantize import run_qat
from lmu2neuro.models.streaming import stream
from netgen import lively


class ConvMLP(nn.Module):
    """Linear -> BN -> LIF -> causal temporal conv -> BN -> LIF, with a skip from the first layer, -> head."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg, self.qat = cfg, False
        self.fc = nn.Linear(cfg.input_size, 24)
        self.bn1, self.lif1 = nn.BatchNorm1d(24), LoihiLIF(0.0, 0.5, 1.0)
        self.conv = nn.Conv1d(24, 16, 3)
        self.skip = nn.Linear(24, 16, bias=False)
        self.bn2, self.lif2 = nn.BatchNorm1d(16), LoihiLIF(0.0, 0.75, 1.0)
        self.head = nn.Linear(16, cfg.num_classes)

    def graph(self):
        return annotate(self, [
            Node("h1", [Term("fc", [INPUT], Dense(self.fc))], Spiking(self.bn1, self.lif1, 0.5)),
            Node("h2", [Term("conv", ["h1"], TemporalConv(self.conv)), Term("skip", ["h1"], Dense(self.skip))],
                 Spiking(self.bn2, self.lif2, 0.5)),
            Node("readout", [Term("head", ["h2"], Dense(self.head))], Readout()),
        ])

    def check_deployable_input(self, x):
        assert x.shape[1] <= self.cfg.max_len

    def forward(self, x):
        if self.qat:
            return run_qat(self.graph(), x, self.cfg.input_scale, self.cfg.max_len).mean(1)
        return run(self.graph(), x).mean(1)


def _model():
    torch.manual_seed(0)
    cfg = ModelConfig(input_size=6, num_classes=4, max_len=16, input_scale=20.0)
    model = ConvMLP(cfg)
    return lively(model, linear_bias=False), cfg


def test_a_new_architecture_trains_streams_lowers_and_exports(tmp_path):
    model, cfg = _model()
    x = torch.rand(8, 12, 6) * 3
    # trains: gradients reach every parameter, in float and in QAT
    model.train()
    model(x).pow(2).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    model.eval()
    # streams: one frame at a time equals the parallel pass
    with torch.no_grad():
        par = torch.cumsum(run(model.graph(), x), 1) / torch.arange(1, 13)[None, :, None]
        torch.testing.assert_close(stream(model, x)["per_step_logits"], par, rtol=1e-5, atol=1e-6)
    # lowers: populations and projections named after the declaration, a 3-tap conv, a skip path
    net = lower(model)
    assert [p.name for p in net.populations] == ["h1", "h2", "readout"]
    assert {s.name: s.taps for s in net.projections} == {"h1.fc": 1, "h2.conv": 3, "h2.skip": 1, "readout.head": 1}
    # integer mode runs, and QAT (the float twin of the same integers) mostly agrees with it
    out = integer_forward(model, x)
    assert out["spikes"]["h1"].any() and out["spikes"]["h2"].any()
    model.qat = True
    for n in (model.lif1, model.lif2):
        n.qat = True
    spikes: dict = {}
    with torch.no_grad():
        q = run_qat(model.graph(), x, cfg.input_scale, cfg.max_len, spikes=spikes)
    for name in ("h1", "h2"):  # float rounding at threshold ties only
        assert (spikes[name].bool() == out["spikes"][name]).float().mean() > 0.97, name
    assert (q.sum(1).argmax(-1) == out["scores"].argmax(-1)).float().mean() >= 0.75
    # exports: NIR written and read back to the same integers
    export_nir(net, tmp_path / "m.nir")
    back = read_intnet(tmp_path / "m.nir")
    for a, b in zip(net.projections, back.projections):
        assert a.name == b.name and np.array_equal(a.weights, b.weights) and a.weight_exp == b.weight_exp
