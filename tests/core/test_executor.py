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
