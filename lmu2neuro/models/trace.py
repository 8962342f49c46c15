"""``LoihiModel``: a model built from ``models.layers``, traced once (``models.tracer``), ready for
float training, QAT, lowering and export."""

from __future__ import annotations

import math

import torch
from torch import nn

from lmu2neuro.core.errors import UserError
from lmu2neuro.core.fixed_point import calibrated_input_scale
from lmu2neuro.models.graph import Node, run
from lmu2neuro.models.layers import InputQuantizer
from lmu2neuro.models.neurons import NEURON_MODULES, LoihiLIF
from lmu2neuro.models.quantize import run_qat
from lmu2neuro.models.tracer import trace


class LoihiModel(nn.Module):
    """A model built from ``models.layers``, ready for float training, QAT, lowering and export.

    ``model``: an ``nn.Module`` whose forward maps x (batch, time, *frame_shape) to per-frame outputs
    (batch, time, classes). ``frame_shape``: one frame's shape (e.g. ``(8,)``, ``(1, 8, 8)``).
    ``max_len``: the longest sequence the deployed readout is scaled for. ``input_scale``: needed only
    when the model has no ``layers.InputQuantizer`` (else that layer's scale is the network's).
    ``expand_convolutions``: deploy convolutions as their dense matrices, as before conv projections
    (for checks; within the size guard), instead of kernels stored once.

    ``model(x)`` gives the mean of the per-frame outputs (B, C), float or, after ``set_qat(True)``,
    fake-quantized with straight-through gradients (``models.quantize.run_qat`` on the traced graph).
    ``lmu2neuro.deploy.lower(wrapper)`` gives the IntNetwork; ``deploy.integer_forward(wrapper, x)``
    runs it in the one integer executor.
    """

    def __init__(self, model: nn.Module, frame_shape, max_len: int, input_scale: float | None = None,
                 expand_convolutions: bool = False):
        super().__init__()
        try:
            shape = tuple(int(d) for d in (frame_shape if hasattr(frame_shape, "__iter__") else (frame_shape,)))
        except (TypeError, ValueError):
            raise UserError(f"LoihiModel: frame_shape={frame_shape!r}: expected a tuple of sizes, e.g. (8,)") from None
        if not shape or min(shape) < 1:
            raise UserError(f"LoihiModel: frame_shape={frame_shape!r}: expected positive sizes, e.g. (8,) or (1, 8, 8)")
        if int(max_len) < 1:
            raise UserError(f"LoihiModel: max_len={max_len}: expected at least 1 frame")
        if input_scale is not None and not (math.isfinite(float(input_scale)) and float(input_scale) > 0):
            raise UserError(f"LoihiModel: input_scale={input_scale}: expected a positive, finite number")
        self.model = model
        self.frame_shape = shape
        self.max_len = int(max_len)
        self.fixed_input_scale = None if input_scale is None else float(input_scale)
        self.qat = False
        self.expand_convolutions = bool(expand_convolutions)
        self.structure = trace(model, shape)

    # -- the declared graph and the deployment facts --------------------------------------------------
    def graph(self) -> list[Node]:
        return self.structure.nodes(self.model, dense=self.expand_convolutions)

    @property
    def quantizer(self) -> InputQuantizer | None:
        q = self.structure.quantizer
        return None if q is None else self.model.get_submodule(q)

    @property
    def input_scale(self):
        """The input scale: the InputQuantizer's (a tensor, learned or not), else the one given."""
        if self.quantizer is not None:
            return self.quantizer.scale
        if self.fixed_input_scale is None:
            raise UserError(f"model {type(self.model).__name__}: no input scale: add layers.InputQuantizer() as the "
                            "model's first layer, or pass input_scale= to LoihiModel (or call calibrate(x))")
        return self.fixed_input_scale

    @property
    def input_size(self) -> int:
        return math.prod(self.frame_shape)

    def deployment(self) -> dict:
        """What ``lmu2neuro.deploy.lower`` needs besides the graph."""
        return {"input_size": self.input_size, "input_scale": float(self.input_scale), "max_len": self.max_len,
                "meta": {"model": {"class": type(self.model).__name__, "traced": True,
                                   "frame_shape": list(self.frame_shape), "max_len": self.max_len,
                                   "input_quantizer": self.structure.quantizer}}}

    @torch.no_grad()
    def calibrate(self, x) -> float:
        """Set the input scale from data (the InputQuantizer's rule, or fixed_point.INPUT_SCALE_RULE without one)."""
        if self.quantizer is not None:
            return self.quantizer.calibrate(x)
        self.fixed_input_scale = calibrated_input_scale(x, what="LoihiModel.calibrate")
        return self.fixed_input_scale

    # -- inputs ----------------------------------------------------------------------------------------
    def check_deployable_input(self, x: torch.Tensor) -> None:
        """UserError unless x is (batch, time, *frame_shape) or (batch, time, prod(frame_shape)) with
        1 <= time <= max_len (the readout is scaled for max_len steps)."""
        ok = x.ndim >= 3 and (tuple(x.shape[2:]) == self.frame_shape or tuple(x.shape[2:]) == (self.input_size,))
        if not ok:
            raise UserError(f"model input: expected shape (batch, frames, {', '.join(map(str, self.frame_shape))}), "
                            f"got {tuple(x.shape)}")
        if not 1 <= x.shape[1] <= self.max_len:
            raise UserError(f"model input: {x.shape[1]} frames; the deployed readout is scaled for 1 to max_len = "
                            f"{self.max_len} (raise max_len in LoihiModel)")

    def frames(self, x: torch.Tensor) -> torch.Tensor:
        """x as the model takes it: (batch, time, *frame_shape)."""
        self.check_deployable_input(x)
        return x.reshape(x.shape[0], x.shape[1], *self.frame_shape)

    # -- forward ---------------------------------------------------------------------------------------
    def frame_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Per-frame outputs (B, T, C): the model's own float forward, or the QAT forward."""
        x = self.frames(x)
        if self.qat:
            return run_qat(self.graph(), x.flatten(2), self.input_scale, self.max_len)
        y = self.model(x)
        if not isinstance(y, torch.Tensor) or y.ndim != 3:
            raise UserError(f"model {type(self.model).__name__}: forward returned "
                            f"{tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__}; expected "
                            "(batch, time, classes)")
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.frame_logits(x).mean(dim=1)

    def per_step_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C): the mean of the outputs over the first t+1 frames (early exit)."""
        y = self.frame_logits(x)
        steps = torch.arange(1, y.shape[1] + 1, dtype=y.dtype, device=y.device)
        return torch.cumsum(y, dim=1) / steps[None, :, None]

    def frame_logits_graph(self, x: torch.Tensor, spikes: dict | None = None) -> torch.Tensor:
        """Per-frame outputs of the traced float graph (``graph.run``), which equal the model's own
        forward bit for bit; ``spikes`` collects every population's spikes (B, T, n)."""
        x = self.frames(x)
        q = self.quantizer
        return run(self.graph(), (x if q is None else q(x)).flatten(2), spikes)

    def spikes(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        self.frame_logits_graph(x, out)
        return out

    def neurons(self) -> list[LoihiLIF]:
        return [m for m in self.model.modules() if isinstance(m, NEURON_MODULES)]

    def set_qat(self, enabled: bool) -> None:
        """Fake-quantized training (weights, biases, thresholds, decays and input as Loihi integers,
        straight-through gradients)."""
        self.qat = bool(enabled)
        for n in self.neurons():
            n.qat = self.qat
