"""Loihi's current-based LIF (Lava's LIF, bit-accurate): the step is ``fixed_point.lif_step``."""

from __future__ import annotations

import numpy as np
import torch

from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core.neurons.kind import NeuronKind, Update


def start(pop, batch: int, device) -> tuple:
    u = torch.zeros(batch, pop.size, dtype=torch.int64, device=device)
    return u, torch.zeros_like(u), None  # current, voltage, refractory count


def step(state, a_in: torch.Tensor, pop, bias: torch.Tensor) -> Update:
    u, v, ref = state
    r = fx.lif_step(u, v, a_in, pop.du, pop.dv, pop.vth, bias, pop.reset, pop.refractory, ref)
    return Update(state=(r.u, r.v, r.ref), out=r.spikes, wrapped=r.wrapped, unwrapped=r.u_unwrapped, voltage=r.v)


def check(pop) -> str | None:
    if pop.reset not in fx.RESETS:
        return f"reset '{pop.reset}', expected one of {', '.join(fx.RESETS)}"
    for fld, val, lo, hi in (
        ("du", pop.du, 0, fx.DECAY_UNITY - 1),
        ("dv", pop.dv, 0, fx.DECAY_UNITY - 1),
        ("vth", pop.vth, 0, fx.VTH_MAX),
        ("bias_exp", pop.bias_exp, fx.BIAS_EXP_MIN, fx.BIAS_EXP_MAX),
        ("refractory", pop.refractory, 0, fx.REFRACTORY_MAX),
    ):
        if not lo <= int(val) <= hi:
            return f"{fld} = {val} outside Loihi's range [{lo}, {hi}]"
    bm = np.asarray(pop.bias_mant)
    if bm.size and (bm.min() < fx.BIAS_MANT_MIN or bm.max() > fx.BIAS_MANT_MAX):
        bad = int(bm[np.argmax(np.abs(bm))])
        return f"bias_mant {bad} outside 13-bit range [{fx.BIAS_MANT_MIN}, {fx.BIAS_MANT_MAX}]"
    return None


KIND = NeuronKind(
    name="cuba_lif",
    summary="Loihi CUBA LIF: 24-bit current and voltage, 12-bit decays, unary spikes (Lava's LIF)",
    start=start, step=step, check=check,
    lava_process="GatedLIF",
    graded=False, message_bits=0,
    update_ops="one current decay + one voltage decay + threshold compare per neuron and step",
    netx_type=("CUBA", "LOIHI"),
    nir_node="CubaLIF",
    qat="lmu2neuro.models.neurons",
)
