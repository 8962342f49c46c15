"""Convolutional projections written to NIR (nir.Conv1d / Conv2d with their input shape) and read back.

Checked against: the IntNetwork before export (kernel, geometry, exponents, shapes, resets equal;
the reference simulator's spikes equal), and our float executor on the written graph, which for
IF neurons (no decay, no truncation) must give the integer spikes exactly.
"""

import numpy as np
import pytest
import torch

from converters.nir.export import export_nir
from converters.nir.float_executor import load
from converters.nir.read import read_graph, read_intnet
from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core.conv import ConvGeometry
from lmu2neuro.core.errors import UserError
from lmu2neuro.core.executor import execute
from lmu2neuro.core.intnet import IntNetwork, Population, Projection


def _even(rng, shape, lo=-60, hi=60):
    return (rng.integers(lo // 2, hi // 2, size=shape) * 2).astype(np.int64)


def _conv_net(reset="zero", dv=0, seed=0, one_d=False):
    """input (2, 8, 8) -grouped conv, 2 taps-> a (4, 8, 8) -strided conv-> b (4, 4, 4) -dense-> readout,
    or (one_d) input (2, 12) -Conv1d, stride 2, dilation 2, 2 taps-> a (3, 5) -dense-> readout."""
    rng = np.random.default_rng(seed)
    if one_d:
        g = ConvGeometry((2, 12), 2, 1, 2, groups=1)
        pops = [Population("a", 15, du=4095, dv=dv, vth=60, bias_mant=np.repeat(rng.integers(-40, 40, 3), 5),
                           bias_exp=2, reset=reset, shape=(3, 5))]
        projs = [Projection("in.a", "input", "a", _even(rng, (2, 3, 2, 3)), weight_exp=0, conv=g)]
        n_in, last = 24, "a"
    else:
        g1 = ConvGeometry((2, 8, 8), 1, 1, 1, groups=2)
        g2 = ConvGeometry((4, 8, 8), 2, 1, 1, groups=1)
        pops = [
            Population("a", 256, du=4095, dv=dv, vth=60, bias_mant=np.repeat(rng.integers(-40, 40, 4), 64), bias_exp=2,
                       reset=reset, shape=(4, 8, 8)),
            Population("b", 64, du=4095, dv=dv, vth=40, bias_mant=np.zeros(64, dtype=np.int64), reset="zero",
                       shape=(4, 4, 4)),
        ]
        projs = [
            Projection("in.a", "input", "a", _even(rng, (2, 4, 1, 3, 3)), weight_exp=-1, conv=g1),
            Projection("a.b", "a", "b", _even(rng, (1, 4, 4, 3, 3), -20, 60), weight_exp=1, conv=g2),
        ]
        n_in, last = 128, "b"
    n_last = pops[-1].size
    pops.append(Population("ro", 3, du=4095, dv=0, vth=fx.VTH_MAX, bias_mant=rng.integers(-9, 9, 3), readout=True))
    projs.append(Projection(f"{last}.ro", last, "ro", _even(rng, (1, 3, n_last)), weight_exp=0))
    return IntNetwork(input_size=n_in, input_scale=16.0, populations=pops, projections=projs, output="ro")


@pytest.mark.parametrize("reset, one_d", [("zero", False), ("subtract", False), ("subtract", True)])
def test_conv_network_round_trip_is_exact(tmp_path, reset, one_d):
    net = _conv_net(reset, dv=300, one_d=one_d)
    path = tmp_path / "c.nir"
    export_nir(net, path, dt=1e-3)
    graph = read_graph(path)  # nir's own type check passed on write and on read
    assert type(graph.nodes["in.a.tap1"]).__name__ == ("Conv1d" if one_d else "Conv2d")
    assert tuple(graph.nodes["in.a.tap0"].input_type["input"]) == ((2, 12) if one_d else (2, 8, 8))
    back = read_intnet(path)
    for a, b in zip(net.projections, back.projections):
        assert (a.name, a.source, a.target, a.weight_exp, a.conv) == (b.name, b.source, b.target, b.weight_exp, b.conv)
        np.testing.assert_array_equal(a.weights, b.weights)
    for a, b in zip(net.populations, back.populations):
        assert (a.name, a.shape, a.reset, a.vth, a.du, a.dv) == (b.name, b.shape, b.reset, b.vth, b.du, b.dv)
        np.testing.assert_array_equal(a.bias_mant, b.bias_mant)
    x = np.random.default_rng(1).integers(-128, 128, (3, 15, net.input_size))
    r1, r2 = execute(net, x), execute(back, x)
    assert sum(int(s.sum()) for s in r1.spikes.values()) > 50
    for k in r1.spikes:
        assert torch.equal(r1.spikes[k], r2.spikes[k]), k
    assert torch.equal(r1.readout_trace, r2.readout_trace)
    if reset == "subtract":  # a file's stated reset is its own: another one is refused, by name
        with pytest.raises(UserError, match="reset 'zero' given, but this file states reset 'subtract"):
            read_intnet(path, reset="zero")


@pytest.mark.parametrize("reset, one_d", [("zero", False), ("subtract", False), ("subtract", True)])
def test_float_executor_runs_the_exported_conv_graph_exactly(tmp_path, reset, one_d):
    """IF neurons (dv = 0) have no truncation: Euler on the written graph = the integers, spike for spike."""
    net = _conv_net(reset, dv=0, seed=2, one_d=one_d)
    path = tmp_path / "c.nir"
    export_nir(net, path, dt=1e-3)
    x = np.random.default_rng(3).integers(-128, 128, (2, 15, net.input_size))
    ref = execute(net, x)
    frame = (2, 12) if one_d else (2, 8, 8)
    _, rec = load(path, dt=1e-3)(torch.as_tensor(x / 16.0).reshape((2, 15) + frame), record=True)
    for name in [p.name for p in net.populations if not p.readout]:
        ours = rec[name]["out"].reshape(2, 15, -1).bool()
        assert int(ref.spikes[name].sum()) > 10, name
        assert torch.equal(ours, ref.spikes[name]), name
    torch.testing.assert_close(rec["ro"]["v"] * 64, ref.readout_trace.double(), rtol=0, atol=1e-6)


def test_conv_out_of_a_flat_population_is_named(tmp_path):
    rng = np.random.default_rng(0)
    net = IntNetwork(
        input_size=8, input_scale=1.0,
        populations=[Population("h", 16, du=4095, dv=0, vth=10, bias_mant=np.zeros(16, dtype=np.int64)),
                     Population("o", 8, du=4095, dv=0, vth=10, bias_mant=np.zeros(8, dtype=np.int64))],
        projections=[Projection("in.h", "input", "h", _even(rng, (1, 16, 8))),
                     Projection("h.o", "h", "o", _even(rng, (1, 2, 1, 3, 3)), conv=ConvGeometry((1, 4, 4), 1, 0, 1))],
        output="o")
    with pytest.raises(UserError, match=r"projection 'h.o': a convolution over the frame \(1, 4, 4\) of 'h'"):
        export_nir(net, tmp_path / "x.nir")
    assert not (tmp_path / "x.nir").exists()
