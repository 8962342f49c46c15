"""Convolutional projections and subtract reset in Lava fixed_pt: the real runtime equals the reference
executor on every spike of every population, whichever process runs a convolution (Lava's own Conv
where it is exact, TappedConv elsewhere)."""

import numpy as np
import pytest

from converters.lava.builder import aligned_weights, lava_conv_problem, run_lava
from lmu2neuro.core.conv import ConvGeometry
from lmu2neuro.core.intnet import IntNetwork, Population, Projection
from lmu2neuro.core.measurement import agreement
from lmu2neuro.pipeline.simulate import run_reference

pytestmark = pytest.mark.lava
VTH = {"c1": 3000, "pool": 300, "c3": 700, "a": 3500, "b": 1000}  # some neurons fire, not all


def _pop(name, shape, rng, vth, du=2000, dv=600, reset="zero"):
    size = int(np.prod(shape))
    return Population(name, size, du, dv, vth, rng.integers(-3, 4, size), shape=tuple(shape), reset=reset)


def _kernel(rng, taps, c_out, c_in_g, k, lo=-40, hi=90, zero_tap0=False):
    w = rng.integers(lo, hi, (taps, c_out, c_in_g) + tuple(k)) * 2
    if zero_tap0:
        w[0] = 0
    return w


def conv2d_network(seed=0, reset="zero"):
    """Graded input (2, 9, 8) -> conv (stride 1, padding 1, dilation 2) -> 2x2 average pooling
    (depthwise, stride 2) -> grouped conv of two delays (negative weight exponent) -> recurrent
    same-size conv of one delay within the population -> dense readout; plus a skip conv from the
    first layer to the third (shorter path: delays put in front to align it)."""
    rng = np.random.default_rng(seed)
    g1 = ConvGeometry((2, 9, 8), 1, 1, 2, 1)
    k1 = _kernel(rng, 1, 4, 2, (3, 3), -30, 34)
    s1 = g1.out_shape(k1.shape)  # (4, 7, 6)
    g2 = ConvGeometry(s1, 2, 0, 1, 4)
    k2 = np.full((1, 4, 1, 2, 2), 20)  # with weight_exp 1  # an average pooling: a constant depthwise kernel
    s2 = g2.out_shape(k2.shape)  # (4, 3, 3)
    g3 = ConvGeometry(s2, 1, 1, 1, 2)
    k3 = _kernel(rng, 2, 6, 2, (3, 3), -60, 70)
    s3 = g3.out_shape(k3.shape)  # (6, 3, 3)
    g_skip = ConvGeometry(s1, 2, 0, (2, 1), 1)
    k_skip = _kernel(rng, 1, 6, 4, (2, 2), -40, 44)
    assert g_skip.out_shape(k_skip.shape) == s3
    g_rec = ConvGeometry(s3, 1, 1, 1, 1)
    k_rec = _kernel(rng, 2, 6, 6, (3, 3), -60, 50, zero_tap0=True)
    pops = [_pop("c1", s1, rng, VTH["c1"], reset=reset), _pop("pool", s2, rng, VTH["pool"], du=4095, dv=0, reset=reset),
            _pop("c3", s3, rng, VTH["c3"], reset=reset),
            Population("out", 3, 4095, 0, 131071, np.zeros(3, dtype=np.int64), readout=True)]
    projs = [Projection("in-c1", "input", "c1", k1, 0, conv=g1),
             Projection("c1-pool", "c1", "pool", k2, 1, conv=g2),
             Projection("pool-c3", "pool", "c3", k3, -1, conv=g3),
             Projection("c1-c3", "c1", "c3", k_skip, 1, conv=g_skip),
             Projection("c3-c3", "c3", "c3", k_rec, 0, conv=g_rec),
             Projection("c3-out", "c3", "out", rng.integers(-40, 60, (1, 3, int(np.prod(s3)))) * 2, 0)]
    return IntNetwork(2 * 9 * 8, 1.0, pops, projs, "out")


def conv1d_network(seed=0):
    """Conv1d over features: graded input (3, 16) -> conv (stride 2, padding 2, delays 0..2) ->
    depthwise conv (dilation 2, groups 4) -> dense readout."""
    rng = np.random.default_rng(seed)
    g1 = ConvGeometry((3, 16), 2, 2, 1, 1)
    k1 = _kernel(rng, 3, 4, 3, (5,), -30, 34)
    s1 = g1.out_shape(k1.shape)
    g2 = ConvGeometry(s1, 1, 0, 2, 4)
    k2 = _kernel(rng, 1, 4, 1, (3,), -20, 100)
    s2 = g2.out_shape(k2.shape)
    pops = [_pop("a", s1, rng, VTH["a"]), _pop("b", s2, rng, VTH["b"]),
            Population("out", 2, 4095, 0, 131071, np.zeros(2, dtype=np.int64), readout=True)]
    projs = [Projection("in-a", "input", "a", k1, 0, conv=g1), Projection("a-b", "a", "b", k2, 1, conv=g2),
             Projection("b-out", "b", "out", rng.integers(-40, 60, (1, 2, int(np.prod(s2)))) * 2, 0)]
    return IntNetwork(48, 1.0, pops, projs, "out")


def _inputs(net, seed, samples=3, steps=10):
    return np.random.default_rng(seed + 7).integers(-10, 40, (samples, steps, net.input_size))


def _assert_identical(lava, ref, net):
    agree = agreement(lava, ref)
    assert agree["first_mismatch"] is None, agree
    assert agree["identical_spikes"] == 1.0 and agree["identical_scores"] == 1.0
    for pop in net.populations:  # layer by layer; and not vacuous: every spiking layer fired in every sample
        if not pop.readout:
            assert (ref.sample_spikes[pop.name] > 0).all(), pop.name
        np.testing.assert_array_equal(lava.spike_counts[pop.name], ref.spike_counts[pop.name])
        np.testing.assert_array_equal(lava.step_spikes[pop.name], ref.step_spikes[pop.name])
        np.testing.assert_array_equal(lava.raster0[pop.name], ref.raster0[pop.name])
    np.testing.assert_array_equal(lava.readout_trace, ref.readout_trace)


@pytest.mark.parametrize("make, in_lava_conv", [(conv2d_network, {"in-c1", "c1-pool"}), (conv1d_network, {"a-b"})])
def test_one_sample_at_a_time_uses_lavas_conv_where_exact_and_equals_the_reference(make, in_lava_conv):
    """Exact in Lava's Conv: one delay from another population, weight_exp >= 0 (c1-pool, a-b: 1,
    folded). Not: several delays (in-a), two delays with a negative exponent (pool-c3), the skip
    path's alignment delays (c1-c3), the recurrent conv (c3-c3: samples apart)."""
    net = make(0)
    x = _inputs(net, 0)
    lava = run_lava(net, x, progress=False, lanes=1)
    _assert_identical(lava, run_reference(net, x), net)
    expected = {p.name: "Conv" if p.name in in_lava_conv else "TappedConv" if p.conv else "TappedDense"
                for p in net.projections}
    assert lava.timing["processes"] == expected


@pytest.mark.parametrize("make, lanes", [(conv2d_network, 2), (conv1d_network, 3)])
def test_lanes_side_by_side_run_tappedconv_and_equal_the_reference(make, lanes):
    net = make(1)
    x = _inputs(net, 1, samples=4)
    lava = run_lava(net, x, progress=False, lanes=lanes)
    assert set(lava.timing["processes"].values()) == {"TappedConv", "TappedDense"}
    _assert_identical(lava, run_reference(net, x), net)


def test_subtract_reset_in_lava_equals_the_reference():
    net = conv2d_network(2, reset="subtract")
    x = _inputs(net, 2)
    ref = run_reference(net, x)
    zero = run_reference(conv2d_network(2, reset="zero"), x)
    # the reset matters here: the two mechanisms give different spikes
    assert any((ref.fingerprints[p] != zero.fingerprints[p]).any() for p in ("c1", "pool", "c3"))
    _assert_identical(run_lava(net, x, progress=False, lanes=3), ref, net)


def test_lava_conv_is_refused_where_it_would_not_be_exact():
    net = conv2d_network(0)
    proj = {p.name: p for p in net.projections}
    w = aligned_weights(proj["in-c1"], 0, 10)
    assert lava_conv_problem(proj["in-c1"], w, "fixed_pt", 1, 40) is None
    assert "side by side" in lava_conv_problem(proj["in-c1"], w, "fixed_pt", 2, 40)
    assert "wraps" in lava_conv_problem(proj["in-c1"], w, "fixed_pt", 1, 1 << 16)
    w3 = aligned_weights(proj["pool-c3"], 0, 10)
    assert "2 delay taps" in lava_conv_problem(proj["pool-c3"], w3, "fixed_pt", 1, 1)
    assert "weight_exp -1" in lava_conv_problem(proj["pool-c3"], w3[:1], "fixed_pt", 1, 1)
    assert lava_conv_problem(proj["pool-c3"], w3[:1].astype(float), "floating_pt", 1, 1) is None
    assert lava_conv_problem(proj["c3-out"], proj["c3-out"].weights, "fixed_pt", 1, 1) == "dense projection"
    wide = Projection("pool", "a", "b", np.full((1, 128, 1, 2, 2), 2), 0, conv=ConvGeometry((128, 4, 4), 2, 0, 1, 128))
    assert "int8" in lava_conv_problem(wide, wide.weights, "fixed_pt", 1, 1)  # 128 groups
    rec = aligned_weights(proj["c3-c3"], -1, 10)
    assert rec.shape[0] == 1 and "recurrent" in lava_conv_problem(proj["c3-c3"], rec, "fixed_pt", 1, 1)
