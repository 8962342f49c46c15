"""Loihi fixed-point arithmetic, as Lava 0.10's bit-accurate LIF and Dense models compute it.

Every stage that computes integers (the QAT model in integer mode, the reference simulator,
the checks on Lava runs) calls these functions, so the semantics live in one place. They work
on torch int64 tensors of any leading shape (batch, neurons). The arithmetic was read from
``lava.proc.lif.models.AbstractPyLifModelFixed`` and ``lava.proc.dense.models`` and is checked
against the real Lava runtime in tests/test_fixed_point_lava.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from lmu2neuro.core.errors import UserError

DECAY_BITS = 12
DECAY_UNITY = 1 << DECAY_BITS  # 4096
STATE_BITS = 24
STATE_MAX = 1 << (STATE_BITS - 1)  # 2**23
ACT_SHIFT = 6  # synaptic input and threshold are MSB-aligned by 6 bits
WEIGHT_BITS = 8
WEIGHT_MIN, WEIGHT_MAX = -256, 254  # 8-bit mantissa, mixed sign: lowest bit dropped (even)
VTH_MAX = (1 << 17) - 1
BIAS_MANT_MIN, BIAS_MANT_MAX = -(1 << 12), (1 << 12) - 1  # 13-bit signed
BIAS_EXP_MIN, BIAS_EXP_MAX = 0, 7  # 3-bit
INPUT_BITS = 8  # graded payload of the first layer: signed 8-bit integers
INPUT_MIN, INPUT_MAX = -(1 << (INPUT_BITS - 1)), (1 << (INPUT_BITS - 1)) - 1
# Lava's du is one less than the 4096ths of current removed per step (du = 4095 clears it);
# dv is exactly the 4096ths of voltage removed. netx's iDecay is du + DU_OFFSET.
DU_OFFSET = 1


RESETS = ("zero", "subtract")  # what a spike does to the voltage (lif_step)
# Steps a neuron is held after it fires (lif_step's ``refractory``). Loihi 1's compartment profile
# stores refractDelay in 6 bits (NxSDK nxsdk.h CxProfileCfg.RefractDelay), 1..63, where 1 is the
# plain LIF (fire, reset, integrate from the next step): held steps = refractDelay - 1, 0..62.
REFRACTORY_MAX = 62
# How an input scale is calibrated from float inputs: the largest |x| uses the whole 8-bit range.
INPUT_SCALE_RULE = f"{INPUT_MAX} / max |x|"
# The inputs a scale is calibrated on, one stated rule wherever a file has none: the first this many
# samples of the dataset's training split (or the whole --input file), never the samples a run
# happens to simulate, so the same file deploys alike however many samples are run.
CALIBRATION_SAMPLES = 2000
CALIBRATION_RULE = (f"{INPUT_SCALE_RULE} over the first {CALIBRATION_SAMPLES} samples of the dataset's training "
                    "split (the whole file for --input)")


def check_reset(reset, what: str = "reset") -> str | None:
    """A requested reset (None: what the file or model states), or a UserError naming RESETS."""
    if reset is not None and reset not in RESETS:
        raise UserError(f"{what} '{reset}': expected one of {', '.join(RESETS)}")
    return reset


def check_refractory(refractory, what: str = "refractory") -> int | None:
    """A requested refractory period (None: what the file or model states) as whole steps, or a UserError."""
    if refractory is None:
        return None
    if isinstance(refractory, bool) or not isinstance(refractory, (int, np.integer)) or \
            not 0 <= int(refractory) <= REFRACTORY_MAX:
        raise UserError(f"{what} {refractory!r}: expected whole steps 0..{REFRACTORY_MAX} (Loihi's "
                        "refractDelay - 1)")
    return int(refractory)


def calibrated_input_scale(x, percentile: float = 100.0, what: str = "input") -> float:
    """INPUT_SCALE_RULE for float inputs ``x`` (numpy or torch; with ``percentile`` < 100 that
    percentile of |x| instead of the maximum). Empty, non-finite and all-zero inputs are refused:
    nothing fixes a scale then (any scale quantizes zeros alike, but it would be arbitrary for
    every later input), so the caller names one instead."""
    a = torch.as_tensor(x, dtype=torch.float64).abs().flatten()
    if a.numel() == 0 or not bool(torch.isfinite(a).all()):
        raise UserError(f"{what}: expected a non-empty array of finite numbers")
    peak = float(a.max()) if percentile >= 100.0 else float(torch.quantile(a, percentile / 100.0))
    if peak <= 0:
        raise UserError(f"{what}: every input is zero; no scale can be calibrated from it")
    return INPUT_MAX / peak


def _trunc_shift(x: torch.Tensor, bits: int) -> torch.Tensor:
    """sign(x) * (|x| >> bits): Lava's decay rounds toward zero."""
    return torch.sign(x) * (x.abs() >> bits)


def decay(x: torch.Tensor, d: int | torch.Tensor) -> torch.Tensor:
    """x * (4096 - d) / 4096 truncated toward zero."""
    return _trunc_shift(x * (DECAY_UNITY - d), DECAY_BITS)


def wrap_current(u: torch.Tensor) -> torch.Tensor:
    """Lava wraps the 24-bit current: (2**23 + k) -> k - 2**23 ... exactly as PyLifModelBitAcc."""
    over = u > STATE_MAX
    u = torch.where(over, u - 2 * STATE_MAX, u)
    return torch.where(u <= -STATE_MAX, u + 2 * STATE_MAX, u)


def clip_voltage(v: torch.Tensor) -> torch.Tensor:
    return v.clamp(-STATE_MAX + 1, STATE_MAX - 1)


def shift_by_exp(acc: torch.Tensor, exp: int) -> torch.Tensor:
    """Dense's weight exponent on the accumulated sum: left shift, or arithmetic right shift."""
    return acc << exp if exp >= 0 else acc >> (-exp)


@dataclass
class LifStep:
    """One step's result; `wrapped` flags neurons whose current wrapped at 24 bits, and
    `u_unwrapped` is the current before the wrap (what an exact 32-bit machine would hold)."""

    u: torch.Tensor
    v: torch.Tensor
    spikes: torch.Tensor
    wrapped: torch.Tensor
    u_unwrapped: torch.Tensor
    ref: torch.Tensor | None = None  # refractory steps still to hold, per neuron (None without refractory)


def lif_step(
    u: torch.Tensor,
    v: torch.Tensor,
    a_in: torch.Tensor,
    du: int,
    dv: int,
    vth: int,
    bias: torch.Tensor | int = 0,
    reset: str = "zero",
    refractory: int = 0,
    ref: torch.Tensor | None = None,
) -> LifStep:
    """One step of Lava's bit-accurate LIF (strict threshold), with an optional refractory period.

    ``bias`` is the effective bias ``bias_mant << bias_exp``. ``du`` follows Lava's convention:
    the current keeps ``4096 - (du + 1)`` parts of 4096 (du = 4095 clears it every step).
    ``reset`` is what a spike does to the voltage in the step it fires: "zero" (Loihi 1 and 2,
    Lava's LIF) or "subtract" (v - vth << 6, Loihi 2 only: its neuron microcode is programmable,
    Loihi 1's reset is fixed; snnTorch's default mechanism).

    ``refractory`` (0..REFRACTORY_MAX) is the number of steps after a spike in which the neuron is
    held: its voltage neither decays nor integrates (it keeps the value the reset left) and it does
    not fire, while its current keeps decaying and integrating input, as in Lava's LIFRefractory
    (``refractory_period``) and Loihi's refractDelay - 1. ``ref`` is the count of steps still to
    hold before this step (None: none); the result's ``ref`` is the count for the next step.
    With refractory 1 and du = 4095 this is snnTorch's RLeaky with reset_mechanism='zero', which
    computes (``base - reset * base``: the whole step after a spike is discarded).
    """
    u_new = decay(u, du + DU_OFFSET) + (a_in << ACT_SHIFT)
    u_wrapped = wrap_current(u_new)
    v_new = clip_voltage(decay(v, dv) + u_wrapped + bias)
    held = None
    if refractory:
        held = ref > 0 if ref is not None else torch.zeros_like(v_new, dtype=torch.bool)
        v_new = torch.where(held, v, v_new)
    spikes = v_new > (vth << ACT_SHIFT)
    if held is not None:
        spikes = spikes & ~held
    if reset == "subtract":
        v_new = torch.where(spikes, v_new - (vth << ACT_SHIFT), v_new)
    else:
        v_new = torch.where(spikes, torch.zeros_like(v_new), v_new)
    ref_next = None
    if refractory:
        left = (ref - 1).clamp(min=0) if ref is not None else torch.zeros_like(v_new)
        ref_next = torch.where(spikes, torch.full_like(left, int(refractory)), left)
    return LifStep(u_wrapped, v_new, spikes, u_wrapped != u_new, u_new, ref_next)


def quantize_weights(w: torch.Tensor, max_abs_float: float | None = None) -> tuple[torch.Tensor, int]:
    """Float weights (already in units of the consumer's integer input) -> (even 8-bit mantissa, exp).

    Picks the smallest exponent whose mantissa range holds the largest weight, so resolution is
    as fine as the range allows; the mantissa is rounded to even values as Lava's 8-bit
    mixed-sign Dense keeps them.
    """
    peak = float(w.abs().max()) if max_abs_float is None else max_abs_float
    if peak == 0.0:
        return torch.zeros_like(w, dtype=torch.int64), 0
    exp = math.ceil(math.log2(peak / WEIGHT_MAX))
    exp = max(min(exp, 7), -8)
    mant = torch.round(w / (2.0**exp) / 2.0) * 2
    return mant.clamp(WEIGHT_MIN, WEIGHT_MAX).to(torch.int64), exp


# -- the decay encoding: one rule for every stage ------------------------------------------------------
def du_from_removed(removed):
    """Fraction of the current removed per step (0..1; 1 - keep factor, or dt / tau_syn) -> Lava du.

    Works on a float (returns int) or a numpy array (returns int64 array), rounding half to even.
    """
    q = np.clip(np.round(np.asarray(removed, dtype=np.float64) * DECAY_UNITY) - DU_OFFSET, 0, DECAY_UNITY - 1)
    return int(q) if q.ndim == 0 else q.astype(np.int64)


def dv_from_removed(removed):
    """Fraction of the voltage removed per step (0..1; 1 - keep factor, or dt / tau_mem) -> Lava dv."""
    q = np.clip(np.round(np.asarray(removed, dtype=np.float64) * DECAY_UNITY), 0, DECAY_UNITY - 1)
    return int(q) if q.ndim == 0 else q.astype(np.int64)


def current_removed(du):
    """The fraction of the current that Lava's du removes per step: (du + 1) / 4096."""
    return (du + DU_OFFSET) / DECAY_UNITY


def voltage_removed(dv):
    """The fraction of the voltage that Lava's dv removes per step: dv / 4096."""
    return dv / DECAY_UNITY


# -- the bias and input quantizers ---------------------------------------------------------------------
def quantize_bias(b) -> tuple[np.ndarray, int]:
    """Bias in integer voltage units (x 64 already) -> (13-bit mantissa int64 array, 3-bit exponent).

    The exponent is the smallest of 0..7 at which rounding keeps the largest bias in the mantissa's
    range (|b| / 2**exp <= MAX + 1/2, so the rounding error stays within half a unit); values that no
    exponent holds are clamped here, and callers that must refuse them check the peak first.
    """
    b = np.asarray(b, dtype=np.float64)
    peak = float(np.max(np.abs(b))) if b.size else 0.0
    exp = 0
    while exp < BIAS_EXP_MAX and peak / (1 << exp) > BIAS_MANT_MAX + 0.5:
        exp += 1
    mant = np.clip(np.round(b / (1 << exp)), BIAS_MANT_MIN, BIAS_MANT_MAX).astype(np.int64)
    return mant, exp


def quantize_input(x, scale: float):
    """Float input -> the graded 8-bit payload the first layer receives: clip(round(x * scale), -128, 127).

    Works on numpy arrays (int64 result) and torch tensors (int64 result).
    """
    if isinstance(x, torch.Tensor):
        return torch.clamp(torch.round(x.to(torch.float64) * scale), INPUT_MIN, INPUT_MAX).to(torch.int64)
    return np.clip(np.round(np.asarray(x, dtype=np.float64) * scale), INPUT_MIN, INPUT_MAX).astype(np.int64)
