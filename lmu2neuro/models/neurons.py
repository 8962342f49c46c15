"""Quantization-aware Loihi LIF neuron on snnTorch, and the fake quantizers that match lowering.

``LoihiLIF`` subclasses ``snntorch.Synaptic`` (a current-based LIF: current keeps ``alpha``,
voltage keeps ``beta``) and uses snnTorch's surrogate machinery (``self.fire`` with
``surrogate.sigmoid``) for the spike. It has three modes:

- float (training): ``u = alpha u + I``, ``v = beta v + u + bias``, spike when ``v > threshold``,
  then v = 0 in the same step (Loihi and SpikingJelly hard reset; the reset is detached from the
  gradient as in SpikingJelly's ``detach_reset``). snnTorch's own reset rule differs (it zeroes
  the current too and resets one step late by default), which is why the step is written here.
- QAT: the same, with alpha and beta fake-quantized to Lava's 12-bit decays (straight-through).
  Weights, biases and thresholds are fake-quantized by the layer that feeds the neuron, with
  ``fake_quantize_weights`` / ``quantize_bias`` below, exactly as ``lowering.lower`` quantizes.
- integer: ``integer_forward`` runs ``fixed_point.lif_step`` (Lava's bit-accurate LIF).
"""

from __future__ import annotations

import torch
from snntorch import Synaptic, surrogate

from lmu2neuro.core import fixed_point as fx


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """round() in the forward pass, identity in the backward pass."""
    return x + (torch.round(x) - x).detach()


def fake_quantize_weights(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Float weights in integer-current units -> (mantissa * 2**exp with a straight-through gradient,
    integer mantissa, exp), the mantissa and exp being exactly ``fixed_point.quantize_weights``."""
    mant, exp = fx.quantize_weights(w.detach())
    q = mant.to(w.dtype) * (2.0**exp)
    return w + (q - w).detach(), mant, exp


def quantize_bias(b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Float bias in voltage units (already x 64) -> (mant << exp as float with STE, mant, exp).

    exp is the smallest of Loihi's 0..7 whose 13-bit mantissa holds the largest bias; values that
    no exponent holds are clamped here and rejected by ``lowering`` (IntNetworkError).
    """
    peak = float(b.detach().abs().max()) if b.numel() else 0.0
    exp = 0
    while exp < fx.BIAS_EXP_MAX and peak / (2.0**exp) > fx.BIAS_MANT_MAX + 0.5:
        exp += 1
    mant = torch.round(b.detach() / (2.0**exp)).clamp(fx.BIAS_MANT_MIN, fx.BIAS_MANT_MAX).to(torch.int64)
    q = mant.to(b.dtype) * (2.0**exp)
    return b + (q - b).detach(), mant, exp


def _ste_decay(keep: float | torch.Tensor, current: bool) -> torch.Tensor:
    """A keep factor rounded to the 12-bit decay Loihi stores (du has Lava's off-by-one)."""
    keep = torch.as_tensor(keep, dtype=torch.float64)
    removed = round((1.0 - float(keep)) * fx.DECAY_UNITY)
    # du + 1 runs 1..4096 (du = 4095 clears the current); dv runs 0..4095.
    removed = min(max(removed, 1), fx.DECAY_UNITY) if current else min(max(removed, 0), fx.DECAY_UNITY - 1)
    q = (fx.DECAY_UNITY - removed) / fx.DECAY_UNITY
    return keep + (q - keep).detach()


class LoihiLIF(Synaptic):
    """A population of Loihi CUBA LIF neurons, trained through snnTorch's surrogate gradient.

    ``alpha``: current keep factor per step (0 = the current is the synaptic input of this step,
    Lava du = 4095); ``beta``: voltage keep factor (0.5 = SpikingJelly tau 2); ``threshold``: spike
    when v > threshold; ``slope``: sigmoid surrogate slope.
    """

    def __init__(self, alpha: float = 0.0, beta: float = 0.5, threshold: float = 1.0, slope: float = 4.0):
        super().__init__(
            alpha=alpha,
            beta=beta,
            threshold=threshold,
            spike_grad=surrogate.sigmoid(slope=slope),
            reset_mechanism="zero",
            reset_delay=False,
        )
        self.slope = float(slope)
        self.qat = False

    # -- Loihi integer parameters ----------------------------------------------------------
    @property
    def du(self) -> int:
        """Lava du: the current keeps 4096 - (du + 1) parts of 4096."""
        removed = round((1.0 - float(self.alpha)) * fx.DECAY_UNITY)
        return min(max(removed - 1, 0), fx.DECAY_UNITY - 1)

    @property
    def dv(self) -> int:
        """Lava dv: the voltage keeps 4096 - dv parts of 4096."""
        return fx.decay_to_int(float(self.beta))

    def _keeps(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.qat:
            return _ste_decay(float(self.alpha), True), _ste_decay(float(self.beta), False)
        return self.alpha, self.beta

    # -- float / QAT --------------------------------------------------------------------------
    def init_state(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero (current, voltage) state shaped like one step of input (B, n)."""
        return torch.zeros_like(like), torch.zeros_like(like)

    def step(
        self, current: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor], bias: torch.Tensor | float = 0.0
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """One time step: current (B, n) -> (spikes (B, n) float 0/1, new (u, v))."""
        alpha, beta = self._keeps()
        u, v = state
        u = alpha.to(current.dtype) * u + current
        v = beta.to(current.dtype) * v + u + bias
        spk = self.fire(v).to(v.dtype)  # snnTorch surrogates return float32
        v = v * (1.0 - spk.detach())
        return spk, (u, v)

    def forward(  # type: ignore[override]  (a whole sequence, not snnTorch's one step)
        self, current: torch.Tensor, bias: torch.Tensor | float = 0.0
    ) -> torch.Tensor:
        """A whole sequence: current (B, T, n) -> spikes (B, T, n), every sample from zero state."""
        state = self.init_state(current[:, 0])
        out = []
        for t in range(current.shape[1]):
            spk, state = self.step(current[:, t], state, bias)
            out.append(spk)
        return torch.stack(out, dim=1)

    # -- integer ------------------------------------------------------------------------------
    def integer_forward(
        self, a_in: torch.Tensor, vth: int, bias: torch.Tensor | int = 0, record_voltage: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Lava's bit-accurate LIF over a sequence of integer synaptic input a_in (B, T, n) int64.

        Returns (spikes (B, T, n) bool, voltages (B, T, n) int64 after each step's reset, or None).
        """
        u = torch.zeros(a_in.shape[0], a_in.shape[2], dtype=torch.int64)
        v = torch.zeros_like(u)
        bias = torch.as_tensor(bias, dtype=torch.int64)
        spikes = torch.zeros(a_in.shape, dtype=torch.bool)
        volts = torch.zeros(a_in.shape, dtype=torch.int64) if record_voltage else None
        for t in range(a_in.shape[1]):
            r = fx.lif_step(u, v, a_in[:, t], self.du, self.dv, vth, bias)
            u, v = r.u, r.v
            spikes[:, t] = r.spikes
            if volts is not None:
                volts[:, t] = v
        return spikes, volts
