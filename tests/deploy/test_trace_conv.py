"""Traced convolutions and poolings deploy as conv projections (the kernel stored once): the same
integers as the dense expansion, spike for spike in the executor, and the same quantized kernel in QAT."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core.conv import compose
from lmu2neuro.core.errors import UserError
from lmu2neuro.core.executor import execute
from lmu2neuro.core.intnet import IntNetwork, Projection
from lmu2neuro.deploy.lowering import integer_forward, lower
from lmu2neuro.models import layers as L
from lmu2neuro.models.quantize import run_qat
from lmu2neuro.models.trace import LoihiModel


class MixedConvNet(nn.Module):
    """Conv2d (stride, padding) + AvgPool2d into one projection; a grouped Conv2d + SumPool2d; a Conv1d
    (padding, dilation) over the reshaped frames; a pooling alone; Flatten + Linear into the readout."""

    def __init__(self, conv1d: bool = True):
        super().__init__()
        self.conv1d = conv1d
        self.q = L.InputQuantizer(scale=100.0)
        self.conv1, self.pool1 = L.Conv2d(1, 4, 3, stride=2, padding=1), L.AvgPool2d(2)
        self.lif1 = L.Leaky(0.9, threshold=0.4)
        self.conv2, self.pool2 = L.Conv2d(4, 6, 3, padding=1, groups=2), L.SumPool2d(2)
        self.lif2 = L.Leaky(0.8, threshold=0.5)
        self.conv3, self.lif3 = L.Conv1d(4, 3, 3, padding=2, dilation=2), L.Leaky(0.8, threshold=0.5)
        self.pool4, self.lif4 = L.SumPool2d(2), L.Leaky(0.5, threshold=0.9)
        self.flat = L.Flatten()
        self.fc2, self.fc3, self.fc4 = L.Linear(24, 5), L.Linear(48, 5), L.Linear(16, 5)

    def forward(self, x):  # x (B, T, 1, 16, 16)
        s1 = self.lif1(self.pool1(self.conv1(self.q(x))))  # (4, 4, 4)
        s2 = self.lif2(self.pool2(self.conv2(s1)))  # (6, 2, 2)
        s4 = self.lif4(self.pool4(s1))  # (4, 2, 2)
        y = self.fc2(self.flat(s2)) + self.fc4(self.flat(s4))
        if self.conv1d:
            s3 = self.lif3(self.conv3(s1.flatten(3)))  # (3, 16)
            y = y + self.fc3(self.flat(s3))
        return y


def build(seed: int = 0, max_len: int = 10, conv1d: bool = True, **kw) -> LoihiModel:
    torch.manual_seed(seed)
    model = MixedConvNet(conv1d)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # weights large enough that every layer fires on random inputs
        for name, p in model.named_parameters():
            if "scale" not in name:
                fan_in = p[0].numel() if p.ndim > 1 else 4
                p.copy_((torch.rand(p.shape, generator=g) * 2 - 0.6) * 2.5 / fan_in**0.5)
    return LoihiModel(model.eval(), (1, 16, 16), max_len, **kw)


def inputs(batch=6, steps=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, steps, 1, 16, 16, generator=g) * 1.2


def as_dense(net: IntNetwork) -> IntNetwork:
    """The same network with every convolution expanded into its matrix (``Projection.dense``)."""
    projs = [Projection(p.name, p.source, p.target, p.dense(), p.weight_exp, dict(p.origin)) for p in net.projections]
    return IntNetwork(net.input_size, net.input_scale, net.populations, projs, net.output, meta=net.meta)


def _neurobench_macs(layer: nn.Module, in_shape) -> int:
    """NeuroBench's rule, independently of the project: the layer with all-one weights and no bias on
    an all-one input, its outputs summed."""
    with torch.no_grad():
        layer.weight.fill_(1)
        layer.bias = None
        return int(layer(torch.ones((1,) + tuple(in_shape))).sum())


def test_padded_conv_counts_the_same_alone_or_folded_with_a_pooling():
    """The Dense count of a padded Conv2d must not depend on whether a pooling folds into it."""
    class Net(nn.Module):
        def __init__(self, pool):
            super().__init__()
            self.pool = pool
            self.q, self.c = L.InputQuantizer(scale=100.0), L.Conv2d(1, 4, 3, stride=2, padding=1)
            self.p, self.l = L.AvgPool2d(2), L.Leaky(0.9, threshold=0.4)
            self.fc = L.Linear(4 * (16 if pool else 64), 3)

        def forward(self, x):
            y = self.c(self.q(x))
            return self.fc(self.l(self.p(y) if self.pool else y).flatten(2))

    want = _neurobench_macs(nn.Conv2d(1, 4, 3, stride=2, padding=1), (1, 16, 16))
    for pool in (False, True):
        torch.manual_seed(0)
        p = lower(LoihiModel(Net(pool).eval(), (1, 16, 16), 4)).projections[0]
        assert p.origin.get("ann_macs", p.macs()) == want, pool


def test_convolutions_and_poolings_lower_to_conv_projections_storing_the_kernel():
    net = lower(build())
    by = {p.name: p for p in net.projections}
    expect = {  # projection: (kind, kernel shape of one tap, groups)
        "lif1.conv1": ("conv2d", (4, 1, 5, 5), 1),  # 3x3 stride 2 then 2x2 mean: 5x5 stride 4
        "lif2.conv2": ("conv2d", (6, 2, 4, 4), 2),  # groups survive the sum pooling
        "lif3.conv3": ("conv1d", (3, 4, 3), 1),
        "lif4.pool4": ("conv2d", (4, 1, 2, 2), 4),  # a pooling alone: depthwise
    }
    for name, (kind, kshape, groups) in expect.items():
        p = by[name]
        assert p.conv is not None and p.origin["kind"] == kind, name
        assert p.weights.shape == (1,) + kshape and p.conv.groups == groups, name
        assert p.stored_weights() == math.prod(kshape) < p.dense_elements(), name
    assert by["lif1.conv1"].conv.stride == (4, 4) and by["lif1.conv1"].conv.padding == (1, 1)
    assert by["lif3.conv3"].conv.in_shape == (4, 16) and by["lif3.conv3"].conv.dilation == (2,)
    # NeuroBench's count: the convolution layers' own MACs (zero padding adds none), the pooling none
    conv1_nb = _neurobench_macs(nn.Conv2d(1, 4, 3, stride=2, padding=1), (1, 16, 16))
    assert conv1_nb < 4 * 8 * 8 * 9  # the padded border counts less than the kernel at every position
    assert by["lif1.conv1"].origin["ann_macs"] == conv1_nb
    assert by["lif4.pool4"].origin["ann_macs"] == 0
    assert "ann_macs" not in by["lif3.conv3"].origin  # one plain convolution: macs() is its count
    assert by["lif3.conv3"].macs() == _neurobench_macs(nn.Conv1d(4, 3, 3, padding=2, dilation=2), (4, 16))
    assert all(p.conv is None for p in net.projections_into("readout"))  # Flatten + Linear stays dense
    shapes = {p.name: p.shape for p in net.populations}
    assert shapes == {"lif1": (4, 4, 4), "lif2": (6, 2, 2), "lif3": (3, 16), "lif4": (4, 2, 2), "readout": None}


def test_conv_projections_are_the_dense_lowering_bit_for_bit():
    model = build()
    net = lower(model)
    old = lower(build(expand_convolutions=True))  # convolutions probed into matrices, as before
    assert all(p.conv is None for p in old.projections)
    for a, b in zip(net.projections, old.projections):
        assert (a.name, a.weight_exp) == (b.name, b.weight_exp)
        assert np.array_equal(a.dense(), b.weights), a.name
    for a, b in zip(net.populations, old.populations):
        assert (a.vth, a.bias_exp) == (b.vth, b.bias_exp) and np.array_equal(a.bias_mant, b.bias_mant), a.name
    x = inputs(batch=8)
    xq = fx.quantize_input(x.flatten(2), net.input_scale)
    conv, dense = execute(net, xq), execute(as_dense(net), xq)
    out = integer_forward(model, x)
    for name, s in dense.spikes.items():
        assert torch.equal(conv.spikes[name], s) and torch.equal(out["spikes"][name], s), name
    assert torch.equal(conv.readout_trace, dense.readout_trace) and torch.equal(out["scores"], dense.scores)
    assert all(s.sum() > 0 for name, s in conv.spikes.items() if name != "readout"), \
        {k: int(v.sum()) for k, v in conv.spikes.items()}
    assert sum(conv.wrapped.values()) == 0


def test_qat_applies_the_quantized_kernel_as_a_convolution_with_gradients():
    model, dense = build().double(), build(expand_convolutions=True).double()
    x = inputs(batch=4, seed=2).double()
    scale = float(model.input_scale)
    # quantized weights and inputs are integers times powers of two: float64 sums are exact either way
    a, b = {}, {}
    with torch.no_grad():
        ya = run_qat(model.graph(), x.flatten(2), scale, model.max_len, spikes=a)
        yb = run_qat(dense.graph(), x.flatten(2), scale, dense.max_len, spikes=b)
    assert torch.equal(ya, yb)
    assert all(torch.equal(a[k], b[k]) for k in b)
    # straight-through gradients reach every convolution through the composed kernel
    model = build()
    model.set_qat(True)
    model.train()
    model(inputs(batch=8, seed=3)).logsumexp(1).sum().backward()
    for name in ("conv1.weight", "conv1.bias", "conv2.weight", "conv3.weight", "fc4.weight"):
        grad = model.model.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name
    model.eval()
    with torch.no_grad():
        qat = model(inputs(batch=16, seed=4))
    out = integer_forward(model, inputs(batch=16, seed=4))
    assert (qat.argmax(1) == out["scores"].argmax(1)).float().mean() >= 0.9


def test_composed_kernel_is_the_cores_composition():
    model = build().double()
    node = model.graph()[0]  # lif1: Conv2d then AvgPool2d
    chain = node.terms[0].op.program.chains[0]
    (geo,) = node.terms[0].op.geometry()
    first, second = (s.geometry for s in chain.steps)
    pool = np.full((4, 1, 2, 2), 0.25)
    want_geo, want = compose(first, model.model.conv1.weight.detach().numpy(), second, pool)
    got = chain.kernel(model.model, {"dtype": torch.float64, "device": "cpu"}).detach().numpy()
    assert want_geo == geo and np.allclose(got, want, rtol=1e-6, atol=1e-7)


class Residual(nn.Module):
    """One neuron layer fed a sum of three parts: a convolution of spikes, the identity of other spikes
    (a skip connection) and a convolution of the input."""

    def __init__(self):
        super().__init__()
        self.q = L.InputQuantizer(scale=100.0)
        self.c0, self.l0 = L.Conv2d(1, 4, 3, padding=1), L.Leaky(0.8, threshold=0.5)
        self.c1, self.l1 = L.Conv2d(4, 4, 3, padding=1), L.Leaky(0.8, threshold=0.5)
        self.c2, self.c3, self.l2 = L.Conv2d(4, 4, 3, padding=1), L.Conv2d(1, 4, 3, padding=1), L.Leaky(0.8, 0.7)
        self.fc = L.Linear(4 * 64, 3)

    def forward(self, x):
        xq = self.q(x)
        s0 = self.l0(self.c0(xq))
        s1 = self.l1(self.c1(s0))
        s2 = self.l2(self.c2(s1) + s0 + self.c3(xq))
        return self.fc(s2.flatten(2))


def test_a_sum_of_convolutions_and_a_skip_connection_are_conv_projections():
    def make(**kw):
        torch.manual_seed(1)
        return LoihiModel(Residual().eval(), (1, 8, 8), 8, **kw)

    model = make()
    net = lower(model)
    parts = {p.source: p for p in net.projections_into("l2")}
    assert set(parts) == {"input", "l0", "l1"} and all(p.conv is not None for p in parts.values())
    assert parts["l0"].weights.shape == (1, 4, 1, 1, 1) and parts["l0"].conv.groups == 4  # the skip
    assert parts["l0"].origin["ann_macs"] == 0 and parts["l1"].origin["kind"] == "conv2d"
    old = lower(make(expand_convolutions=True))
    for a, b in zip(net.projections, old.projections):
        assert a.weight_exp == b.weight_exp and np.array_equal(a.dense(), b.weights), a.name
    x = torch.rand(4, 8, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    xq = fx.quantize_input(x.flatten(2), net.input_scale)
    conv, dense = execute(net, xq), execute(as_dense(net), xq)
    for name, s in dense.spikes.items():
        assert torch.equal(conv.spikes[name], s), name
    assert all(conv.spikes[n].sum() > 0 for n in ("l0", "l1", "l2")), {k: int(v.sum()) for k, v in conv.spikes.items()}
    assert torch.equal(integer_forward(model, x)["scores"], dense.scores)


class PaddedAfterPool(nn.Module):
    """A padded convolution after a pooling: no single convolution, so the dense path (guarded)."""

    def __init__(self):
        super().__init__()
        self.pool, self.conv, self.lif = L.SumPool2d(2), L.Conv2d(1, 2, 3, padding=1), L.Leaky(0.5, threshold=0.5)
        self.fc = L.Linear(2 * 16, 3)

    def forward(self, x):
        return self.fc(self.lif(self.conv(self.pool(x))).flatten(2))


def test_a_chain_that_does_not_compose_falls_back_to_the_guarded_dense_matrix(monkeypatch):
    torch.manual_seed(0)
    model = LoihiModel(PaddedAfterPool(), (1, 8, 8), 6, input_scale=50.0)
    net = lower(model)
    assert net.projections[0].conv is None and net.projections[0].weights.shape == (1, 32, 64)
    x = torch.rand(3, 6, 1, 8, 8)
    ref = execute(net, fx.quantize_input(x.flatten(2), 50.0))
    assert torch.equal(integer_forward(model, x)["scores"], ref.scores)
    monkeypatch.setenv("LMU2NEURO_MAX_ELEMENTS", "1000")
    with pytest.raises(UserError, match=r"the dense matrix from 'input'.*\(32, 64\)"):
        LoihiModel(PaddedAfterPool(), (1, 8, 8), 6, input_scale=50.0)


@pytest.mark.lava
def test_nir_round_trip_and_lava_agree_with_the_integer_mode(tmp_path):
    from converters.nir.export import export_nir
    from converters.nir.read import read_intnet
    from lmu2neuro.core.measurement import agreement, measure_spikes
    from lmu2neuro.pipeline.simulate import simulate_network

    # without the Conv1d over reshaped (4, 4, 4) frames: NIR has no reshape between a node and a conv
    model = build(conv1d=False)
    net = lower(model)
    assert sum(p.conv is not None for p in net.projections) == 3
    export_nir(net, tmp_path / "m.nir")
    back = read_intnet(tmp_path / "m.nir")
    for a, b in zip(net.projections, back.projections):
        assert (a.name, a.source, a.target, a.weight_exp, a.conv) == (b.name, b.source, b.target, b.weight_exp, b.conv)
        assert np.array_equal(a.weights, b.weights), a.name
    x = inputs(batch=3, steps=8, seed=5)
    traffic, runs = simulate_network(back, x.flatten(2).numpy(), backend="both", progress=False)
    assert traffic["agreement"]["identical_spikes"] == 1.0
    out = integer_forward(model, x)
    mode = measure_spikes("integer_mode", out["spikes"], out["readout_trace"])
    assert agreement(runs["lava"], mode)["identical_spikes"] == 1.0
    assert all(runs["lava"].spike_counts[p.name].sum() > 0 for p in net.populations if not p.readout)
    # the Conv1d over the reshaped frames runs in Lava straight from the lowered network
    full = build()
    traffic, runs = simulate_network(lower(full), x.flatten(2).numpy(), backend="both", progress=False)
    assert traffic["agreement"]["identical_spikes"] == 1.0
    out = integer_forward(full, x)
    assert agreement(runs["lava"], measure_spikes("integer_mode", out["spikes"], out["readout_trace"]))[
        "identical_spikes"] == 1.0
