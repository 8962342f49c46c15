"""What a neuron kind declares (``NeuronKind``) and what one step of it returns (``Update``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from lmu2neuro.core.errors import UserError


@dataclass
class Update:
    """One step of a population: its new state, its output (bool spikes, or int64 payloads of a
    graded kind; 0 = no message), the neurons whose state wrapped at the chip's width and the state
    before the wrap (for ``Execution.wrapped`` / ``peak_current``), and the value recorded as its
    voltage (a readout's score)."""

    state: Any
    out: torch.Tensor
    wrapped: torch.Tensor
    unwrapped: torch.Tensor
    voltage: torch.Tensor


@dataclass(frozen=True)
class NeuronKind:
    name: str
    summary: str
    start: Callable[[Any, int, Any], Any]  # (population, batch, device) -> the zero state
    step: Callable[[Any, torch.Tensor, Any, torch.Tensor], Update]  # (state, a_in, population, bias)
    check: Callable[[Any], str | None]  # population -> what breaks a limit, or None
    lava_process: str
    graded: bool = False
    message_bits: int = 0  # payload bits of one message; 0: a unary spike
    update_ops: str = ""  # what one neuron update costs (counting)
    netx_type: tuple[str, ...] = ()
    nir_node: str | None = None
    qat: str | None = None  # module of the differentiable twin
    no_qat: str = ""  # why there is none

    def require(self, part: str, where: str) -> None:
        """Refuse, naming the kind, a use of a part this kind does not have (e.g. "nir_node")."""
        if not getattr(self, part):
            why = f": {self.no_qat}" if part == "qat" and self.no_qat else ""
            raise UserError(f"{where}: neuron kind '{self.name}' has no {part.replace('_', ' ')}{why}")
