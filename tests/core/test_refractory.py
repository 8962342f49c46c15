"""The refractory period of the integer LIF (fixed_point.lif_step), the executor and its limits.

Checked against: hand-worked steps of one neuron (the values follow from the rule's statement, not
from running it), Lava's own LIFRefractory in its floating-point model (the real runtime; it has no
fixed-point model) where float and integer arithmetic agree exactly (du clears the current, dv = 0),
and the executor against a step loop of lif_step with state carried by hand.
"""

import numpy as np
import pytest
import torch

from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core.executor import execute
from lmu2neuro.core.intnet import IntNetwork, IntNetworkError, Population, Projection


def _run(a_in, refractory, du=4095, dv=0, vth=10, bias=0, reset="zero"):
    """One neuron: (spikes, u, v) per step."""
    u = v = torch.zeros(1, dtype=torch.int64)
    ref = None
    out = []
    for a in a_in:
        r = fx.lif_step(u, v, torch.tensor([a]), du, dv, vth, bias, reset, refractory, ref)
        u, v, ref = r.u, r.v, r.ref
        out.append((bool(r.spikes[0]), int(u[0]), int(v[0])))
    return out


def test_refractory_holds_the_voltage_and_silences_the_neuron_for_its_steps():
    # input 6 (<< 6 = 384) per step, threshold 10 << 6 = 640, no decay: v = 384, 768 -> spike.
    steps = _run([6] * 9, refractory=2)
    spikes = [s for s, _, _ in steps]
    volts = [v for _, _, v in steps]
    # fire at step 1, held at steps 2 and 3 (v stays 0), integrate again from step 4
    assert spikes == [False, True, False, False, False, True, False, False, False]
    assert volts == [384, 0, 0, 0, 384, 0, 0, 0, 384]
    # without the period the same input fires every second step
    assert [s for s, _, _ in _run([6] * 9, refractory=0)] == [False, True] * 4 + [False]


def test_current_keeps_integrating_while_held():
    # a slow current (du = 2047: half stays) while held; the voltage takes the current of the
    # first free step, which includes input that arrived during the hold
    steps = _run([20, 0, 0, 0, 0], refractory=2, du=2047, vth=10)
    # step 0: u = 1280, v = 1280 > 640: spike; steps 1, 2 held: u 640, 320; step 3: v = 0 + 160
    assert [(s, u, v) for s, u, v in steps] == [(True, 1280, 0), (False, 640, 0), (False, 320, 0),
                                                (False, 160, 160), (False, 80, 240)]


def test_subtract_reset_holds_the_remainder():
    # 15 << 6 = 960 > 640: spike, 320 left; held one step (320 kept, not 320 + 960); then 1280 fires
    steps = _run([15] * 3, refractory=1, vth=10, reset="subtract")
    assert [(s, v) for s, _, v in steps] == [(True, 320), (False, 320), (True, 640)]


def test_refractory_zero_is_the_plain_lif():
    rng = np.random.default_rng(0)
    a = torch.as_tensor(rng.integers(-40, 80, (50, 3, 7)))
    u = v = torch.zeros(3, 7, dtype=torch.int64)
    u2, v2 = u.clone(), v.clone()
    for t in range(50):
        r0 = fx.lif_step(u, v, a[t], 1000, 300, 90, 5)
        r1 = fx.lif_step(u2, v2, a[t], 1000, 300, 90, 5, refractory=0, ref=None)
        assert r1.ref is None and torch.equal(r0.spikes, r1.spikes) and torch.equal(r0.v, r1.v)
        u, v, u2, v2 = r0.u, r0.v, r1.u, r1.v


def _network(refractory, seed=0, n_in=5):
    rng = np.random.default_rng(seed)
    pops = [Population("a", 8, 1500, 400, 60, rng.integers(-4, 6, 8), refractory=refractory),
            Population("out", 3, 4095, 0, fx.VTH_MAX, np.zeros(3, dtype=np.int64), readout=True)]
    projs = [Projection("in-a", "input", "a", rng.integers(-20, 70, (2, 8, n_in)) * 2),
             Projection("a-a", "a", "a", np.concatenate([np.zeros((1, 8, 8), np.int64),
                                                          rng.integers(-40, 40, (1, 8, 8)) * 2])),
             Projection("a-out", "a", "out", rng.integers(-50, 50, (1, 3, 8)) * 2)]
    return IntNetwork(n_in, 1.0, pops, projs, "out")


def test_executor_carries_the_refractory_state_per_neuron_and_sample():
    net = _network(3)
    rng = np.random.default_rng(1)
    x = torch.as_tensor(rng.integers(0, 3, (4, 30, 5)))
    got = execute(net, x, record=("a",))
    # the same population stepped by hand with lif_step, state carried here
    a_in = torch.zeros(4, 30, 8, dtype=torch.int64)
    w = torch.as_tensor(net.projections[0].weights)
    for t in range(30):
        for j in range(2):
            if t - j >= 0:
                a_in[:, t] += x[:, t - j] @ w[j].T
    wr = torch.as_tensor(net.projections[1].weights[1])
    pop = net.population("a")
    u = v = torch.zeros(4, 8, dtype=torch.int64)
    ref, prev = None, torch.zeros(4, 8, dtype=torch.int64)
    spikes = []
    for t in range(30):
        r = fx.lif_step(u, v, a_in[:, t] + prev @ wr.T, pop.du, pop.dv, pop.vth,
                        torch.as_tensor(pop.bias), pop.reset, pop.refractory, ref)
        u, v, ref = r.u, r.v, r.ref
        prev = r.spikes.to(torch.int64)
        spikes.append(r.spikes)
    want = torch.stack(spikes, dim=1)
    assert torch.equal(got.spikes["a"], want)
    plain = execute(_network(0), x)
    assert 0 < int(want.sum()) < int(plain.spikes["a"].sum())  # the period silences some spikes
    # no neuron fires within 3 steps of its previous spike
    s = want.numpy()
    for b, n in zip(*np.nonzero(s.any(axis=1))):
        times = np.nonzero(s[b, :, n])[0]
        assert np.all(np.diff(times) > 3)


@pytest.mark.parametrize("value", [-1, fx.REFRACTORY_MAX + 1])
def test_refractory_outside_loihis_range_is_refused(value):
    with pytest.raises(IntNetworkError, match=r"population 'a': refractory = .* outside Loihi's range \[0, 62\]"):
        _network(value)
