"""Loihi 2's sigma-delta neuron (lava-dl's SDNN), as ``lava.proc.sdn``'s fixed_pt models compute it.

Per neuron and step, with s = spike_exp + state_exp and the threshold and bias scaled by 2**s as
Lava's ``SigmaDelta`` / ``Delta`` processes scale them on construction:

    sigma  = sigma + a_in                              (sigma: the dendrite accumulates its input)
    act    = relu(sigma + bias << s)                   ("unit" activation: no relu)
    delta  = act - act_prev + residue
    out    = delta if |delta| >= vth << s else 0       (cum_error: if |error + delta| reaches it)
    residue = delta - out;  act_prev = act;  message = out >> state_exp (arithmetic)

A message is graded: its payload is the value, 0 sends nothing. ``kind_params["stage"]`` says which
of Lava's three processes the population is: "sigma_delta" (``SigmaDelta``, above), "delta"
(``Delta``, netx's SDNN input layer: act = a_in << s, no sigma, no bias) or "sigma" (``Sigma``,
netx's ``sigma_output`` layer: sends sigma itself, no threshold; its value is the readout score).
Lava holds these states as int32 declared 24 bits wide and does not wrap them; neither does this
(``check`` refuses a threshold or bias that does not fit 24 bits once scaled).
"""

from __future__ import annotations

import numpy as np
import torch

from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core.neurons.kind import NeuronKind, Update

STAGES = ("sigma_delta", "delta", "sigma")
ACTIVATIONS = ("relu", "unit")
DEFAULTS = {"stage": "sigma_delta", "activation": "relu", "spike_exp": 6, "state_exp": 6, "cum_error": False}
EXP_MAX = 7  # spike_exp and state_exp are 3-bit fields of Lava's SDN processes
MESSAGE_BITS = 16  # netx's default payload width for SDNN layers (messageBits)


def params(pop) -> dict:
    return {**DEFAULTS, **pop.kind_params}


def start(pop, batch: int, device) -> tuple:
    z = torch.zeros(batch, pop.size, dtype=torch.int64, device=device)
    return z, z, z, z  # sigma, act_prev, residue, error


def step(state, a_in: torch.Tensor, pop, bias: torch.Tensor) -> Update:
    p = params(pop)
    sigma, act_prev, residue, error = state
    scale = p["spike_exp"] + p["state_exp"]
    none = torch.zeros_like(a_in, dtype=torch.bool)
    if p["stage"] == "sigma":
        sigma = sigma + a_in
        return Update((sigma, act_prev, residue, error), sigma, none, sigma, sigma)
    if p["stage"] == "delta":
        act = a_in << scale
    else:
        sigma = sigma + a_in
        act = sigma + (bias << scale)
        if p["activation"] == "relu":
            act = act.clamp(min=0)
    delta = act - act_prev + residue
    vth = int(pop.vth) << scale
    if p["cum_error"]:
        error = error + delta
        out = torch.where(error.abs() >= vth, delta, 0)
        error = torch.where(out != 0, 0, error)
    else:
        out = torch.where(delta.abs() >= vth, delta, 0)
    residue = delta - out
    voltage = act if p["stage"] == "delta" else sigma
    return Update((sigma, act, residue, error), out >> p["state_exp"], none, act, voltage)


def check(pop) -> str | None:
    p = params(pop)
    if set(p) != set(DEFAULTS):
        return f"kind_params {sorted(set(p) - set(DEFAULTS))} unknown; expected {', '.join(DEFAULTS)}"
    if p["stage"] not in STAGES:
        return f"stage '{p['stage']}', expected one of {', '.join(STAGES)}"
    if p["activation"] not in ACTIVATIONS:
        return f"activation '{p['activation']}', expected one of {', '.join(ACTIVATIONS)}"
    for fld in ("spike_exp", "state_exp"):
        if not 0 <= int(p[fld]) <= EXP_MAX:
            return f"{fld} = {p[fld]} outside Lava's 3-bit range [0, {EXP_MAX}]"
    scale = p["spike_exp"] + p["state_exp"]
    if not (0 <= int(pop.vth) and (int(pop.vth) << scale) < fx.STATE_MAX):
        return f"vth = {pop.vth}: expected 0 <= vth << {scale} < 2**23 (24-bit threshold)"
    bm = np.asarray(pop.bias) << scale
    if bm.size and np.abs(bm).max() >= fx.STATE_MAX:
        return f"bias {int(np.asarray(pop.bias).reshape(-1)[np.argmax(np.abs(bm))])} << {scale} outside 24 bits"
    return None


KIND = NeuronKind(
    name="sigma_delta",
    summary="Loihi 2 sigma-delta (lava-dl SDNN): sigma accumulation, ReLU, delta with threshold, graded spikes",
    start=start, step=step, check=check,
    lava_process="SigmaDelta",
    graded=True, message_bits=MESSAGE_BITS,
    update_ops="one accumulate (sigma) + activation + one subtract and compare (delta) per neuron and step",
    netx_type=("SDNN",),
    nir_node=None,
    qat=None,
    no_qat="training SDNN layers is not supported; read them from netx",
)
