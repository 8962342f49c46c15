"""The refractory period in Lava: GatedLIF (our custom process, written apart from the reference
rule) equals the reference executor on every spike, and the rule itself equals Lava's own
LIFRefractory (floating-point model only, so compared where float and integer arithmetic are the
same numbers: the current cleared each step, no voltage decay, values in units of 64)."""

import numpy as np
import pytest
import torch

import converters.lava  # noqa: F401  (the compatibility layer before any Lava import)
from converters.lava.builder import run_lava
from converters.lava.check import run_on_dense
from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core.intnet import IntNetwork, Population, Projection
from lmu2neuro.pipeline.simulate import run_reference

pytestmark = pytest.mark.lava


def _lava_lif_refractory(inputs, weights, vth, bias, period):
    """RingBuffer -> Dense -> LIFRefractory in floating_pt; (spikes, voltages) as (steps, n)."""
    from lava.proc.dense.process import Dense
    from lava.proc.lif.process import LIFRefractory

    lif = LIFRefractory(shape=(weights.shape[0],), du=1.0, dv=0.0, vth=float(vth), bias_mant=bias.astype(float),
                        refractory_period=period)
    s, v = run_on_dense(lif, inputs.astype(float), Dense(weights=weights.astype(float)), tag="floating_pt")
    return s, v.astype(np.float64)


@pytest.mark.parametrize("period", [1, 3])
def test_lif_step_refractory_equals_lavas_lif_refractory(period):
    rng = np.random.default_rng(period)
    n_in, n, steps = 6, 5, 60
    inputs = (rng.random((n_in, steps)) < 0.4).astype(int)
    weights = rng.integers(-3, 8, (n, n_in))
    bias = rng.integers(-1, 3, n)
    vth = 9
    lava_s, lava_v = _lava_lif_refractory(inputs, weights, vth, bias, period)
    # ours: Dense delivers one step late; current in units of 64 (<< 6), bias likewise
    a = np.zeros((steps, n), dtype=np.int64)
    a[1:] = (weights @ inputs).T[:-1]
    u = v = torch.zeros(n, dtype=torch.int64)
    ref = None
    ours_s, ours_v = [], []
    for t in range(steps):
        r = fx.lif_step(u, v, torch.as_tensor(a[t]), 4095, 0, vth, torch.as_tensor(bias << 6), "zero", period, ref)
        u, v, ref = r.u, r.v, r.ref
        ours_s.append(r.spikes.numpy())
        ours_v.append(r.v.numpy())
    ours_s, ours_v = np.array(ours_s), np.array(ours_v)
    np.testing.assert_array_equal(ours_s, lava_s)
    np.testing.assert_array_equal(ours_v, lava_v * 64)
    assert 0 < ours_s.sum() < ours_s.size
    # the period matters on this input: without it the neurons fire more often
    u = v = torch.zeros(n, dtype=torch.int64)
    count = 0
    for t in range(steps):
        r = fx.lif_step(u, v, torch.as_tensor(a[t]), 4095, 0, vth, torch.as_tensor(bias << 6))
        u, v, count = r.u, r.v, count + int(r.spikes.sum())
    assert count > ours_s.sum()


def _network(seed=0, n_in=5):
    rng = np.random.default_rng(seed)
    pops = [Population("a", 8, 1500, 400, 60, rng.integers(-4, 6, 8), refractory=2),
            Population("b", 6, 4095, 1000, 50, rng.integers(-3, 4, 6), refractory=1, reset="subtract"),
            Population("out", 3, 4095, 0, fx.VTH_MAX, np.zeros(3, dtype=np.int64), readout=True)]
    rec = rng.integers(-40, 40, (2, 8, 8)) * 2
    rec[0] = 0
    projs = [Projection("in-a", "input", "a", rng.integers(-20, 70, (2, 8, n_in)) * 2),
             Projection("a-a", "a", "a", rec),
             Projection("a-b", "a", "b", rng.integers(-10, 80, (1, 6, 8)) * 2),
             Projection("b-out", "b", "out", rng.integers(-50, 50, (1, 3, 6)) * 2)]
    return IntNetwork(n_in, 1.0, pops, projs, "out")


def test_gated_lif_refractory_in_lava_equals_the_reference():
    net = _network()
    x = np.random.default_rng(3).integers(0, 3, (5, 25, 5))
    ref = run_reference(net, x)
    lava = run_lava(net, x, progress=False, lanes=2)
    for p in ("a", "b"):
        np.testing.assert_array_equal(lava.fingerprints[p], ref.fingerprints[p])
        np.testing.assert_array_equal(lava.spike_counts[p], ref.spike_counts[p])
    np.testing.assert_array_equal(lava.readout_trace, ref.readout_trace)
    # the period changed the spikes: the same network without it differs
    for p in net.populations:
        p.refractory = 0
    plain = run_reference(net, x)
    assert any((plain.fingerprints[p] != ref.fingerprints[p]).any() for p in ("a", "b"))
    assert ref.spike_counts["a"].sum() > 0 and ref.spike_counts["b"].sum() > 0
