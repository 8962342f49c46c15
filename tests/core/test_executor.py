"""The integer network IR and the reference simulator against hand computations."""

import numpy as np
import pytest
import torch

from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core.intnet import IntNetwork, IntNetworkError, Population, Projection
from lmu2neuro.core.executor import execute


def pop(name, n, **kw):
    return Population(name=name, size=n, du=kw.pop("du", 4095), dv=kw.pop("dv", 0), vth=kw.pop("vth", 10),
                      bias_mant=kw.pop("bias_mant", np.zeros(n, dtype=np.int64)), **kw)


def readout(n):
    return pop("out", n, vth=fx.VTH_MAX, readout=True)


def test_single_neuron_by_hand():
    # input 3 * w 4 = 12 per step, shifted by exp 1 -> 24; u = 24 << 6 = 1536; vth 20 -> 1280
    net = IntNetwork(
        input_size=1, input_scale=1.0,
        populations=[pop("a", 1, vth=20), readout(1)],
        projections=[
            Projection("in->a", "input", "a", np.array([[[4]]]), weight_exp=1),
            Projection("a->out", "a", "out", np.array([[[2]]])),
        ],
        output="out",
    )
    x = torch.tensor([[[3], [0], [3], [3]]])
    r = execute(net, x)
    # v: 1536 > 1280 spike at t0; t1 no input: v = 0; t2 spike; t3 spike
    assert r.spikes["a"][0, :, 0].tolist() == [True, False, True, True]
    # readout integrates 2 << 6 per spike: 3 spikes -> 384
    assert r.scores[0, 0].item() == 3 * (2 << 6)
    assert r.readout_trace[0, :, 0].tolist() == [128, 128, 256, 384]


def test_taps_delay_the_input():
    w = np.zeros((3, 1, 1), dtype=np.int64)
    w[2, 0, 0] = 100  # only the tap with delay 2
    net = IntNetwork(1, 1.0, [pop("a", 1, vth=1), readout(1)],
                     [Projection("d", "input", "a", w), Projection("r", "a", "out", np.array([[[2]]]))], "out")
    x = torch.zeros(1, 6, 1, dtype=torch.int64)
    x[0, 1, 0] = 1
    r = execute(net, x)
    assert r.spikes["a"][0, :, 0].nonzero().flatten().tolist() == [3]


def test_arithmetic_right_shift_floors_negative_sums():
    net = IntNetwork(1, 1.0, [readout(1)], [Projection("d", "input", "out", np.array([[[-2]]]), weight_exp=-2)], "out")
    r = execute(net, torch.tensor([[[3]]]))
    # -6 >> 2 = -2 (floor), not -1 (truncation)
    assert r.scores.item() == -2 << 6


def test_current_wrap_is_reported():
    net = IntNetwork(1, 1.0, [pop("a", 1, du=0, vth=fx.VTH_MAX), readout(1)],
                     [Projection("d", "input", "a", np.array([[[254]]]), weight_exp=7),
                      Projection("r", "a", "out", np.array([[[2]]]))], "out")
    r = execute(net, torch.full((1, 8, 1), 127, dtype=torch.int64))
    assert r.wrapped["a"] > 0


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(weights=np.array([[[300]]])), "outside Loihi's 8-bit range"),
        (dict(weights=np.array([[[3]]])), "odd weight mantissa"),
        (dict(weights=np.zeros((1, 2, 1), dtype=np.int64)), "weights shape"),
        (dict(source="nowhere"), "unknown population 'nowhere'"),
        (dict(weight_exp=9), "weight_exp 9"),
    ],
)
def test_validation_names_the_projection_and_limit(change, message):
    kw = dict(name="p", source="input", target="out", weights=np.array([[[2]]]))
    kw.update(change)
    with pytest.raises(IntNetworkError, match=message) as err:
        IntNetwork(1, 1.0, [readout(1)], [Projection(**kw)], "out")
    assert "projection 'p'" in str(err.value)


def test_validation_of_neuron_ranges():
    with pytest.raises(IntNetworkError, match="population 'a': dv = 5000"):
        IntNetwork(1, 1.0, [pop("a", 1, dv=5000), readout(1)], [], "out")
    with pytest.raises(IntNetworkError, match="bias_mant 9000"):
        IntNetwork(1, 1.0, [pop("a", 1, bias_mant=np.array([9000])), readout(1)], [], "out")


def test_quantize_weights_keeps_range_and_resolution():
    w = torch.tensor([0.5, -1.0, 3.3, 0.01])
    mant, exp = fx.quantize_weights(w * 100)
    assert mant.abs().max() <= 256 and (mant % 2 == 0).all()
    # reconstruction error at most one (even) quantization step
    assert torch.all((mant * 2.0**exp - w * 100).abs() <= 2.0**exp)


def test_fingerprint_is_the_per_step_hash_sum():
    from lmu2neuro.core.measurement import HASH_MOD, measure_spikes, spike_hash

    rng = np.random.default_rng(0)
    s = rng.random((3, 7, 5)) < 0.3
    m = measure_spikes("x", {"p": s}, np.zeros((3, 7, 1)))
    for k in range(3):
        expect = sum(spike_hash(t, np.flatnonzero(s[k, t])) for t in range(7)) % HASH_MOD
        assert m.fingerprints["p"][k] == expect
    s2 = s.copy()
    s2[1, 3, 2] = ~s2[1, 3, 2]  # one spike moved: that sample's fingerprint changes
    m2 = measure_spikes("x", {"p": s2}, np.zeros((3, 7, 1)))
    assert m2.fingerprints["p"][1] != m.fingerprints["p"][1]
    assert m2.fingerprints["p"][0] == m.fingerprints["p"][0]


def test_recurrent_projection_by_hand_and_its_validation():
    # a neuron that, once it spikes, excites itself one step later: input only at t0
    net = IntNetwork(1, 1.0, [pop("a", 1, vth=10), readout(1)],
                     [Projection("in", "input", "a", np.array([[[20]]])),
                      Projection("self", "a", "a", np.array([[[0]], [[20]]])),
                      Projection("r", "a", "out", np.array([[[2]]]))], "out")
    x = torch.zeros(1, 5, 1, dtype=torch.int64)
    x[0, 0, 0] = 1
    assert execute(net, x).spikes["a"][0, :, 0].tolist() == [True] * 5
    with pytest.raises(IntNetworkError, match="tap 0 must be zero"):
        IntNetwork(1, 1.0, [pop("a", 1), readout(1)], [Projection("self", "a", "a", np.array([[[2]]]))], "out")


def _float64_tap_sum(x, w, exp):
    """The definition the executor used before its exact float32 path: tap_sum in float64."""
    from lmu2neuro.core.executor import tap_sum

    acc = tap_sum(torch.as_tensor(x).to(torch.float64), torch.as_tensor(w, dtype=torch.float64))
    return fx.shift_by_exp(acc.round().to(torch.int64), exp)


@pytest.mark.parametrize(
    "shape, graded, exp, expected",
    [
        ((3, 40, 24), False, 1, torch.float32),  # spikes, a temporal conv (one product per delay)
        ((40, 24, 1), False, -2, torch.float32),  # the LMU memory's FIR: one input, many taps (one product)
        ((2, 16, 8), True, 0, torch.float32),  # graded input, negative values
        ((3, 12, 700), True, -3, torch.float64),  # 254 * 128 * 2100 inputs: beyond 2**24, float64
    ],
)
def test_integer_current_is_the_float64_tap_sum_in_the_narrowest_exact_type(shape, graded, exp, expected):
    from lmu2neuro.core.executor import _exact_dtype, integer_current

    rng = np.random.default_rng(sum(shape))
    taps, n_out, n_in = shape
    w = rng.integers(-128, 128, shape) * 2
    w[:, 0, :] = 254  # one row at the largest weight, so the bound is reached
    x = (torch.as_tensor(rng.integers(-128, 128, (5, 30, n_in))) if graded
         else torch.as_tensor(rng.random((5, 30, n_in)) < 0.3))
    if graded:
        x[0, 0] = -128
    assert _exact_dtype(128 if graded else 1, torch.as_tensor(w)) == expected
    got = integer_current(x, w, exp)
    assert got.dtype == torch.int64
    assert torch.equal(got, _float64_tap_sum(x, w, exp))


def test_exact_dtype_bounds_and_the_matmul_precision_guard():
    from lmu2neuro.core.executor import _exact_dtype, integer_current

    spikes = torch.ones(1, 4, 2, dtype=torch.bool)
    assert _exact_dtype(1, torch.full((1, 1, 2), (1 << 23) - 1)) == torch.float32  # 2**24 - 2
    assert _exact_dtype(1, torch.full((1, 1, 2), 1 << 23)) == torch.float64  # exactly 2**24
    # a kernel (taps, C_out, C_in // groups, kh, kw) is bounded by each output channel's entries
    kernel = torch.zeros(2, 3, 2, 2, 2, dtype=torch.int64)
    kernel[:, 1] = 1 << 20  # channel 1: 2 * 2 * 2 * 2 * 2**20 = 2**24
    assert _exact_dtype(1, kernel) == torch.float64
    assert _exact_dtype(1, kernel // 2) == torch.float32
    # beyond float64 neither path can sum exactly (torch's unfold has no int64 kernel): one clear error
    w = np.full((2, 1, 2), 1 << 52, dtype=np.int64)
    w[1] = -(1 << 51)
    with pytest.raises(ValueError, match=f"integer current: sums up to {3 << 52} are beyond exact float64"):
        integer_current(spikes.to(torch.int64), w, 0)
    from lmu2neuro.core.conv import ConvGeometry
    from lmu2neuro.core.executor import projection_current

    proj = Projection("big", "input", "l", np.full((1, 1, 1, 2), 1 << 51, dtype=np.int64),
                      conv=ConvGeometry((1, 4), 1, 0, 1, 1))
    with pytest.raises(ValueError, match=f"projection .big.: sums up to {1 << 53} are beyond exact float64"):
        projection_current(torch.full((1, 2, 4), 2, dtype=torch.int64), proj)
    previous = torch.get_float32_matmul_precision()
    try:  # where float32 products may run in bfloat16, the exact type is float64
        torch.set_float32_matmul_precision("medium")
        assert _exact_dtype(1, torch.full((1, 1, 2), 2)) == torch.float64
    finally:
        torch.set_float32_matmul_precision(previous)
