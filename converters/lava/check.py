"""A tiny fixed_pt Lava network checked against the documented integer arithmetic.

Used by `lmu2neuro doctor` and the tests: if this passes, Lava imports on this Python, its
runtime starts and stops, and its bit-accurate LIF and Dense compute what
lmu2neuro.core.fixed_point says they compute.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

import converters.lava  # noqa: F401  (the compatibility layer before any Lava import)
from lmu2neuro.core import fixed_point as fx


@dataclass
class LavaCheck:
    steps: int
    seconds: float
    lava_spikes: np.ndarray  # (steps, n) bool, in Lava time
    expected_spikes: np.ndarray  # (steps, n) bool, computed by fixed_point with the Dense latency

    @property
    def matches(self) -> bool:
        return bool(np.array_equal(self.lava_spikes, self.expected_spikes))


def expected_lif_dense(inputs, weights, weight_exp, du, dv, vth, bias_mant, bias_exp):
    """Hand computation: Dense (one step late) into LIF, per lmu2neuro.fixed_point."""
    steps = inputs.shape[1]
    n = weights.shape[0]
    u = torch.zeros(n, dtype=torch.int64)
    v = torch.zeros_like(u)
    bias = torch.as_tensor(np.asarray(bias_mant, dtype=np.int64) << bias_exp)
    w = torch.as_tensor(weights, dtype=torch.int64)
    spikes = np.zeros((steps, n), dtype=bool)
    voltages = np.zeros((steps, n), dtype=np.int64)
    for t in range(steps):
        a_in = torch.zeros(n, dtype=torch.int64)
        if t >= 1:  # Dense delivers what it received one step earlier
            a_in = fx.shift_by_exp(w @ torch.as_tensor(inputs[:, t - 1], dtype=torch.int64), weight_exp)
        r = fx.lif_step(u, v, a_in, du, dv, vth, bias)
        u, v = r.u, r.v
        spikes[t] = r.spikes.numpy()
        voltages[t] = v.numpy()
    return spikes, voltages


def run_on_dense(neuron, inputs, dense, tag: str = "fixed_pt"):
    """Run RingBuffer(inputs) -> ``dense`` -> ``neuron`` (Lava processes, already built) with the given
    ProcessModel tag; return (spikes, voltages) as (steps, n) arrays."""
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.source import RingBuffer
    from lava.proc.monitor.process import Monitor

    steps = inputs.shape[1]
    src = RingBuffer(data=inputs)
    src.s_out.connect(dense.s_in)
    dense.a_out.connect(neuron.a_in)
    mon_s, mon_v = Monitor(), Monitor()
    mon_s.probe(neuron.s_out, steps)
    mon_v.probe(neuron.v, steps)
    try:
        neuron.run(RunSteps(steps), Loihi2SimCfg(select_tag=tag))
        s = mon_s.get_data()[neuron.name]["s_out"]
        v = mon_v.get_data()[neuron.name]["v"]
    finally:
        neuron.stop()
    return np.asarray(s, dtype=bool), np.asarray(v)


def run_lif_dense(inputs, weights, weight_exp, du, dv, vth, bias_mant, bias_exp):
    """Run a RingBuffer -> Dense -> LIF network in Lava fixed_pt; return (spikes, voltages) (steps, n)."""
    from lava.proc.dense.process import Dense
    from lava.proc.lif.process import LIF

    lif = LIF(shape=(weights.shape[0],), du=du, dv=dv, vth=vth, bias_mant=bias_mant, bias_exp=bias_exp)
    s, v = run_on_dense(lif, inputs.astype(int), Dense(weights=weights, weight_exp=weight_exp))
    return s, v.astype(np.int64)


def tiny_network_check(steps: int = 40, seed: int = 0) -> LavaCheck:
    rng = np.random.default_rng(seed)
    n_in, n = 6, 4
    inputs = (rng.random((n_in, steps)) < 0.4).astype(int)
    weights = (rng.integers(-60, 120, (n, n_in)) * 2).astype(int)
    params = dict(weight_exp=1, du=400, dv=300, vth=6000, bias_mant=np.array([0, 3, -2, 5]), bias_exp=2)
    start = time.perf_counter()
    lava_s, _ = run_lif_dense(inputs, weights, **params)
    seconds = time.perf_counter() - start
    exp_s, _ = expected_lif_dense(inputs, weights, **params)
    return LavaCheck(steps=steps, seconds=seconds, lava_spikes=lava_s, expected_spikes=exp_s)
