"""Loihi's CUBA LIF neuron on snnTorch, trained with a surrogate gradient.

``LoihiLIF`` subclasses ``snntorch.Synaptic`` (a current-based LIF: current keeps ``alpha``,
voltage keeps ``beta``) and uses snnTorch's surrogate machinery (``self.fire`` with
``surrogate.sigmoid``) for the spike. Float (training): ``u = alpha u + I``,
``v = beta v + u + bias``, spike when ``v > threshold``, then v = 0 in the same step (Loihi and
SpikingJelly hard reset; the reset is detached from the gradient as in SpikingJelly's
``detach_reset``). snnTorch's own reset rule differs (it zeroes the current too and resets one
step late by default), which is why the step is written here. In QAT mode alpha and beta are
fake-quantized to Lava's 12-bit decays (straight-through); weights, biases and thresholds are
quantized by ``lmu2neuro.models.quantize``. The integer mode is not here: the deployed integers
run in the one integer executor (``lmu2neuro.core.executor``).
"""

from __future__ import annotations

import torch
from snntorch import Synaptic, surrogate

from lmu2neuro.core import fixed_point as fx


def ste_decay(keep: float, current: bool) -> torch.Tensor:
    """A keep factor rounded to the 12-bit decay Loihi stores, with a straight-through gradient."""
    keep_t = torch.as_tensor(keep, dtype=torch.float64)
    removed = fx.current_removed(fx.du_from_removed(1.0 - keep)) if current else \
        fx.voltage_removed(fx.dv_from_removed(1.0 - keep))
    return keep_t + ((1.0 - removed) - keep_t).detach()


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
        return fx.du_from_removed(1.0 - float(self.alpha))

    @property
    def dv(self) -> int:
        """Lava dv: the voltage keeps 4096 - dv parts of 4096."""
        return fx.dv_from_removed(1.0 - float(self.beta))

    def _keeps(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.qat:
            return ste_decay(float(self.alpha), True), ste_decay(float(self.beta), False)
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
