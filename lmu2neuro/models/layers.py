"""Loihi layers for any PyTorch model, in the style of snnTorch.

Build a network from these, wrap it in ``lmu2neuro.models.trace.LoihiModel`` and it trains in
float, trains quantization-aware (QAT), lowers to the deployed integer network
(``lmu2neuro.deploy.lower``), exports to NIR and runs in Lava bit-exactly, with no plan written
per architecture: the wrapper traces the model (``models.tracer``).

Tensors are whole sequences, time second: ``(batch, time, *frame)``. Every layer but the neurons
acts on each frame alone, as snnTorch's layers act on each step; the neurons scan time.

Neurons (Loihi CUBA LIF, ``models.neurons.LoihiLIF`` underneath; spike when ``v > threshold``,
reset in the same step, as Loihi 1 and 2 do):

- ``Leaky(beta)``: snnTorch's ``Leaky``: ``v = beta v + x``. Called on a whole sequence
  ``spk = lif(x)``; one step as snnTorch: ``spk, mem = lif(x_t, mem)`` with ``mem = lif.init_leaky()``.
- ``Synaptic(alpha, beta)``: snnTorch's ``Synaptic``: ``syn = alpha syn + x``, ``v = beta v + syn``;
  one step: ``spk, syn, mem = lif(x_t, syn, mem)``.
- ``RLeaky(beta, linear_features=n)``: snnTorch's ``RLeaky``: the layer's own spikes come back
  through ``recurrent`` (a Linear, a same-padded Conv2d, or one weight per neuron ``V``) one step
  late; one step: ``spk, mem = lif(x_t, spk, mem)``.
- ``RSynaptic(alpha, beta, linear_features=n)``: snnTorch's ``RSynaptic``: the same feedback into
  the current; one step: ``spk, syn, mem = lif(x_t, spk, syn, mem)``. Both take ``V2``: one
  weight per neuron two steps late (``Recurrent``).

Differences from snnTorch, on purpose (they are what Loihi computes): the reset happens in the
step that spikes (snnTorch resets one step late by default); ``beta`` and ``alpha`` are one value
per layer, rounded to Loihi's 12-bit decays in QAT; the surrogate gradient defaults to a sigmoid of
slope 4. ``reset_mechanism``: "zero" (the default here; Loihi 1 and 2) or "subtract" (snnTorch's
default: v - threshold; Loihi 2 only, its programmable neuron; Loihi 1 cannot run it). Because the
reset comes in the spiking step, a subtract reset here is decayed with the voltage in the next
step (beta threshold comes off), where snnTorch's delayed one takes off the whole threshold;
snnTorch's zero reset is the same either way, except RLeaky's, which also discards the whole step
after a spike (``base - reset * base``): ``refractory=1`` here. ``refractory``: steps after a spike
in which a neuron is held (``core.fixed_point.lif_step``); one step at a time it needs the state
the call carries, so Leaky and Synaptic take it on whole sequences only, and RLeaky one step at a
time up to 1 (held = it spiked in the step before). "none" is refused: Loihi always resets.

Per-frame layers (linear, so the tracer composes everything between two neuron layers into one
synaptic projection): ``Linear``, ``Conv1d`` (frames ``(C, L)``), ``Conv2d`` (frames
``(C, H, W)``), ``SumPool1d``/``SumPool2d``, ``AvgPool1d``/``AvgPool2d``, ``Flatten`` (each frame
to a vector). ``InputQuantizer`` turns float input into Loihi's 8-bit graded input,
``clip(round(x * scale), -128, 127)`` (``core.fixed_point.quantize_input``), with a scale set,
calibrated from data (``calibrate``) or learned (``learn=True``); its forward gives the
dequantized value with a straight-through gradient, so the float model sees what the chip sees.

Where quantization happens: weights, biases and thresholds are quantized per population (they
depend on the neuron that consumes them: its threshold sets the integer scale), so the wrapper's
QAT forward runs the traced graph through ``models.quantize.run_qat`` (``fake_quantize_*``, the
core's rules with straight-through gradients); the layers' own forward is the float model.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core.errors import UserError
from lmu2neuro.models.neurons import NEURON_MODULES, LoihiLIF, sigmoid
from lmu2neuro.models.quantize import fake_quantize_input

def _check_reset(layer: str, reset_mechanism: str) -> None:
    if reset_mechanism == "none":
        raise UserError(f"{layer}: reset_mechanism='none' (no reset) cannot be deployed: a Loihi neuron that "
                        "fires always resets; expected 'zero' (Loihi 1 and 2) or 'subtract' (Loihi 2 only)")
    if reset_mechanism not in fx.RESETS:  # "zero" (Loihi 1 and 2), "subtract" (Loihi 2 only)
        raise UserError(f"{layer}: reset_mechanism={reset_mechanism!r}: expected 'zero' (Loihi 1 and 2) or "
                        "'subtract' (Loihi 2 only)")


def _state(state: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
    """snnTorch's convention: a state of another shape (``init_leaky()``'s empty tensor) is zero."""
    if state is None or state.shape != like.shape:
        return torch.zeros_like(like)
    return state


def _whole_sequence(layer: str, x: torch.Tensor, one_step: str) -> None:
    if x.ndim < 3:
        raise UserError(f"{layer}: input of shape {tuple(x.shape)} without a state: a whole sequence is "
                        f"(batch, time, features...); for one step pass the state as snnTorch does: {one_step}")


class _Neuron(LoihiLIF):
    """A LoihiLIF with snnTorch's constructor arguments and call conventions."""

    def __init__(self, alpha: float, beta: float, threshold: float, spike_grad, reset_mechanism: str, slope: float,
                 refractory: int = 0):
        _check_reset(type(self).__name__, reset_mechanism)
        for name, value in (("alpha", alpha), ("beta", beta)):
            if not 0.0 <= float(value) <= 1.0:
                raise UserError(f"{type(self).__name__}: {name}={value}: expected a keep factor in [0, 1]")
        if not float(threshold) > 0:
            raise UserError(f"{type(self).__name__}: threshold={threshold}: expected a positive number")
        super().__init__(alpha=float(alpha), beta=float(beta), threshold=float(threshold), slope=slope,
                         reset_mechanism=reset_mechanism, refractory=refractory)
        self.spike_grad = sigmoid(float(slope)) if spike_grad is None else spike_grad

    def extra_repr(self) -> str:
        return (f"alpha={float(self.alpha):g}, beta={float(self.beta):g}, threshold={float(self.threshold):g}, "
                f"reset_mechanism={self.reset_mechanism!r}" +
                (f", refractory={self.refractory}" if self.refractory else ""))

    def _one_step_refractory(self, call: str) -> None:
        if self.refractory:
            raise UserError(f"{type(self).__name__}: refractory={self.refractory} needs the steps still held, which "
                            f"{call} does not carry; call it on the whole sequence (batch, time, ...)")


class Leaky(_Neuron):
    """snnTorch's ``Leaky`` on Loihi: ``v = beta v + x``, spike when ``v > threshold``, reset (to zero,
    or subtract the threshold) in that step.

    ``lif(x)`` with x (batch, time, ...) -> spikes of the same shape; ``spk, mem = lif(x_t, mem)``
    steps once (``mem = lif.init_leaky()`` to start)."""

    def __init__(self, beta: float, threshold: float = 1.0, spike_grad=None, reset_mechanism: str = "zero",
                 slope: float = 4.0, refractory: int = 0):
        super().__init__(0.0, beta, threshold, spike_grad, reset_mechanism, slope, refractory)

    def init_leaky(self) -> torch.Tensor:
        return torch.zeros(0)

    def forward(self, input_: torch.Tensor, mem: torch.Tensor | None = None):  # type: ignore[override]
        if mem is None:
            _whole_sequence(type(self).__name__, input_, "spk, mem = lif(x_t, mem)")
            return super().forward(input_)
        self._one_step_refractory("spk, mem = lif(x_t, mem)")
        spk, (_, v) = self.step(input_, (torch.zeros_like(input_), _state(mem, input_)))
        return spk, v


class Synaptic(_Neuron):
    """snnTorch's ``Synaptic`` on Loihi: ``syn = alpha syn + x``, ``v = beta v + syn``, reset in the
    spiking step (the current ``syn`` is never reset, as on Loihi).

    ``lif(x)`` -> spikes; ``spk, syn, mem = lif(x_t, syn, mem)`` steps once."""

    def __init__(self, alpha: float, beta: float, threshold: float = 1.0, spike_grad=None,
                 reset_mechanism: str = "zero", slope: float = 4.0, refractory: int = 0):
        super().__init__(alpha, beta, threshold, spike_grad, reset_mechanism, slope, refractory)

    def init_synaptic(self) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        return torch.zeros(0), torch.zeros(0)

    def forward(self, input_: torch.Tensor, syn: torch.Tensor | None = None,  # type: ignore[override]
                mem: torch.Tensor | None = None):
        if syn is None and mem is None:
            _whole_sequence(type(self).__name__, input_, "spk, syn, mem = lif(x_t, syn, mem)")
            return super().forward(input_)
        self._one_step_refractory("spk, syn, mem = lif(x_t, syn, mem)")
        spk, (u, v) = self.step(input_, (_state(syn, input_), _state(mem, input_)))
        return spk, u, v


class OneToOne(nn.Module):
    """Each neuron's own spike back to itself with weight ``V`` (one value, or one per neuron)."""

    def __init__(self, V, learn: bool = True):
        super().__init__()
        self.V = nn.Parameter(torch.as_tensor(V, dtype=torch.float32).clone(), requires_grad=learn)

    def forward(self, spk: torch.Tensor) -> torch.Tensor:
        return spk * self.V


class Recurrent:
    """A neuron layer whose own spikes come back into its synaptic input: ``recurrent`` (a Linear, a
    same-padded Conv2d, or one weight per neuron ``V``) one step late, and ``recurrent2`` (one weight
    per neuron ``V2``, or None) two steps late. The second tap is what makes snnTorch's delayed
    subtract reset exact in a neuron that keeps its current (``Synaptic``): a self connection c one
    step late enters the current, which keeps alpha c of it for the next step, so -alpha c two
    steps late leaves exactly c in the voltage, once."""

    recurrent: nn.Module
    recurrent2: nn.Module | None

    def _make_recurrent(self, V, all_to_all: bool, linear_features, conv2d_channels, kernel_size,
                        learn_recurrent: bool, V2) -> None:
        name = type(self).__name__
        if not all_to_all:
            self.recurrent = OneToOne(V, learn_recurrent)
        elif linear_features:
            self.recurrent = nn.Linear(int(linear_features), int(linear_features))
        elif conv2d_channels and kernel_size:
            k = int(kernel_size)
            if k % 2 == 0:
                raise UserError(f"{name}: kernel_size={k}: expected an odd size (same padding keeps the frame shape)")
            self.recurrent = nn.Conv2d(int(conv2d_channels), int(conv2d_channels), k, padding=k // 2)
        else:
            raise UserError(f"{name}: give linear_features=N (all-to-all Linear), conv2d_channels and kernel_size "
                            "(Conv2d), or all_to_all=False (one weight V per neuron)")
        if not learn_recurrent:
            for p in self.recurrent.parameters():
                p.requires_grad_(False)
        self.recurrent2 = None if V2 is None else OneToOne(V2, learn=False)

    def feedback(self, prev: torch.Tensor, prev2: torch.Tensor) -> torch.Tensor:
        """The synaptic input the layer's spikes of one and two steps before give now."""
        y = self.recurrent(prev)
        return y if self.recurrent2 is None else y + self.recurrent2(prev2)

    def _run_recurrent(self, input_: torch.Tensor) -> torch.Tensor:
        state = self.init_state(input_[:, 0])
        prev = prev2 = torch.zeros_like(input_[:, 0])
        out = []
        for t in range(input_.shape[1]):
            spk, state = self.step(input_[:, t] + self.feedback(prev, prev2), state)
            prev, prev2 = spk, prev
            out.append(spk)
        return torch.stack(out, dim=1)

    def _one_step_state(self, call: str, prev: torch.Tensor, state: tuple) -> tuple:
        """One call's state: refractory held = spiked in the step before (the call carries no more)."""
        if self.recurrent2 is not None:
            raise UserError(f"{type(self).__name__}: a second recurrent tap needs the spikes of two steps before, "
                            f"which {call} does not carry; call it on the whole sequence (batch, time, ...)")
        if self.refractory > 1:
            self._one_step_refractory(call)
        if self.refractory:
            state = state + ((prev > 0).to(prev.dtype),)
        return state


class RLeaky(Recurrent, Leaky):
    """snnTorch's ``RLeaky`` on Loihi: ``v = beta v + x + recurrent(spk of the step before)``.

    ``recurrent`` is ``nn.Linear(linear_features, linear_features)`` (all-to-all), an ``nn.Conv2d``
    over ``conv2d_channels`` with a same-padded ``kernel_size`` (frames (C, H, W)), or with
    ``all_to_all=False`` one weight ``V`` per neuron, as snnTorch builds them (same parameter
    names). ``lif(x)`` -> spikes; ``spk, mem = lif(x_t, spk, mem)`` steps once."""

    def __init__(self, beta: float, V=1.0, all_to_all: bool = True, linear_features: int | None = None,
                 conv2d_channels: int | None = None, kernel_size: int | None = None, threshold: float = 1.0,
                 spike_grad=None, learn_recurrent: bool = True, reset_mechanism: str = "zero", slope: float = 4.0,
                 refractory: int = 0, V2=None):
        super().__init__(beta, threshold, spike_grad, reset_mechanism, slope, refractory)
        self._make_recurrent(V, all_to_all, linear_features, conv2d_channels, kernel_size, learn_recurrent, V2)

    def init_rleaky(self) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.zeros(0), torch.zeros(0)

    def forward(self, input_: torch.Tensor, spk: torch.Tensor | None = None,  # type: ignore[override]
                mem: torch.Tensor | None = None):
        if spk is None and mem is None:
            _whole_sequence("RLeaky", input_, "spk, mem = lif(x_t, spk, mem)")
            return self._run_recurrent(input_)
        prev = _state(spk, input_)
        state = self._one_step_state("spk, mem = lif(x_t, spk, mem)", prev,
                                     (torch.zeros_like(input_), _state(mem, input_)))
        s, new = self.step(input_ + self.recurrent(prev), state)
        return s, new[1]


class RSynaptic(Recurrent, Synaptic):
    """snnTorch's ``RSynaptic`` on Loihi: ``syn = alpha syn + x + recurrent(spk of the step before)``,
    ``v = beta v + syn`` (``recurrent`` as ``RLeaky``'s). ``lif(x)`` -> spikes;
    ``spk, syn, mem = lif(x_t, spk, syn, mem)`` steps once."""

    def __init__(self, alpha: float, beta: float, V=1.0, all_to_all: bool = True, linear_features: int | None = None,
                 conv2d_channels: int | None = None, kernel_size: int | None = None, threshold: float = 1.0,
                 spike_grad=None, learn_recurrent: bool = True, reset_mechanism: str = "zero", slope: float = 4.0,
                 refractory: int = 0, V2=None):
        super().__init__(alpha, beta, threshold, spike_grad, reset_mechanism, slope, refractory)
        self._make_recurrent(V, all_to_all, linear_features, conv2d_channels, kernel_size, learn_recurrent, V2)

    def init_rsynaptic(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return torch.zeros(0), torch.zeros(0), torch.zeros(0)

    def forward(self, input_: torch.Tensor, spk: torch.Tensor | None = None,  # type: ignore[override]
                syn: torch.Tensor | None = None, mem: torch.Tensor | None = None):
        if spk is None and syn is None and mem is None:
            _whole_sequence("RSynaptic", input_, "spk, syn, mem = lif(x_t, spk, syn, mem)")
            return self._run_recurrent(input_)
        prev = _state(spk, input_)
        state = self._one_step_state("spk, syn, mem = lif(x_t, spk, syn, mem)", prev,
                                     (_state(syn, input_), _state(mem, input_)))
        s, new = self.step(input_ + self.recurrent(prev), state)
        return s, new[0], new[1]


NEURONS = NEURON_MODULES  # every Loihi neuron layer, the plain LoihiLIF included


# -- per-frame linear layers ----------------------------------------------------------------------------
def _per_frame(layer: str, fn, x: torch.Tensor, frame_dims: int) -> torch.Tensor:
    """``fn`` on every frame of x (batch, time, *frame), frames stacked along the batch."""
    if x.ndim != frame_dims + 2:
        raise UserError(f"{layer}: input of shape {tuple(x.shape)}; expected (batch, time, "
                        f"{', '.join(['C', 'L'] if frame_dims == 2 else ['C', 'H', 'W'])})")
    y = fn(x.flatten(0, 1))
    return y.unflatten(0, x.shape[:2])


class Linear(nn.Linear):
    """``nn.Linear`` on every frame (its last dimension), quantized per consuming population in QAT."""


class Conv1d(nn.Conv1d):
    """``nn.Conv1d`` on every frame: x (batch, time, C, L) -> (batch, time, C', L')."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return _per_frame("Conv1d", super().forward, x, 2)


class Conv2d(nn.Conv2d):
    """``nn.Conv2d`` on every frame: x (batch, time, C, H, W) -> (batch, time, C', H', W')."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return _per_frame("Conv2d", super().forward, x, 3)


class _Pool(nn.Module):
    dims = 2
    mean = False

    def __init__(self, kernel_size, stride=None):
        super().__init__()
        k = (kernel_size,) * self.dims if isinstance(kernel_size, int) else tuple(kernel_size)
        s = k if stride is None else ((stride,) * self.dims if isinstance(stride, int) else tuple(stride))
        if len(k) != self.dims or len(s) != self.dims or min(k + s) < 1:
            raise UserError(f"{type(self).__name__}: kernel_size={kernel_size}, stride={stride}: expected "
                            f"{self.dims} positive sizes")
        self.kernel_size, self.stride = k, s

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}"

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        # avg_pool2d with divisor 1 adds the window exactly in order (a 1-d pool is a 1 x k window)
        k, s = ((1,) + self.kernel_size, (1,) + self.stride) if self.dims == 1 else (self.kernel_size, self.stride)
        y = x.unsqueeze(-2) if self.dims == 1 else x
        y = F.avg_pool2d(y, k, s, divisor_override=None if self.mean else 1)
        return y.squeeze(-2) if self.dims == 1 else y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _per_frame(type(self).__name__, self._pool, x, self.dims + 1)


class SumPool1d(_Pool):
    """Sum over windows of every frame (C, L) (NIR's SumPool; no divide, so spikes stay integers)."""

    dims = 1


class SumPool2d(_Pool):
    """Sum over windows of every frame (C, H, W)."""


class AvgPool1d(_Pool):
    """Mean over windows of every frame (C, L)."""

    dims, mean = 1, True


class AvgPool2d(_Pool):
    """Mean over windows of every frame (C, H, W)."""

    mean = True


class Flatten(nn.Module):
    """Every frame to a vector: (batch, time, *frame) -> (batch, time, prod(frame)). (``nn.Flatten``
    would fold time into the features.)"""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim < 3:
            raise UserError(f"Flatten: input of shape {tuple(x.shape)}; expected (batch, time, *frame)")
        return x.flatten(2)


LINEAR_LAYERS = (Linear, Conv1d, Conv2d, _Pool, Flatten)


# -- the input --------------------------------------------------------------------------------------
class InputQuantizer(nn.Module):
    """Float input -> Loihi's 8-bit graded input: ``q = clip(round(x * scale), -128, 127)``
    (``core.fixed_point.quantize_input``); the forward returns ``q / scale`` with a straight-through
    gradient (and, with ``learn=True``, the gradient of the rounding and clipping error for the
    scale, as in learned step-size quantization).

    ``scale``: a number, or None to calibrate: ``calibrate(x)`` sets ``127 / (the percentile of |x|)``
    (default the maximum), so that the largest input uses the whole 8-bit range. It must be the
    first thing the model does to its input (the tracer checks); the deployed network quantizes its
    input with the same scale.
    """

    def __init__(self, scale: float | None = None, learn: bool = False, percentile: float = 100.0):
        super().__init__()
        if scale is not None and not (math.isfinite(float(scale)) and float(scale) > 0):
            raise UserError(f"InputQuantizer: scale={scale}: expected a positive, finite number")
        if not 0.0 < float(percentile) <= 100.0:
            raise UserError(f"InputQuantizer: percentile={percentile}: expected a number in (0, 100]")
        self.percentile = float(percentile)
        # NaN marks "not calibrated yet"; a parameter either way, so the scale travels in the state dict
        value = float(scale) if scale is not None else math.nan
        self.scale_param = nn.Parameter(torch.tensor(value, dtype=torch.float32), requires_grad=bool(learn))

    @property
    def calibrated(self) -> bool:
        return bool(torch.isfinite(self.scale_param.detach()))

    @property
    def scale(self) -> torch.Tensor:
        """The scale as a tensor (differentiable when learned)."""
        if not self.calibrated:
            raise UserError("InputQuantizer: no scale yet: pass scale= or call calibrate(x) with training inputs "
                            "(LoihiModel.calibrate does it for the model)")
        if not float(self.scale_param.detach()) > 0:
            raise UserError(f"InputQuantizer: the learned scale became {float(self.scale_param.detach()):.4g}; "
                            "expected a positive number (lower the learning rate, or calibrate and keep it fixed)")
        return self.scale_param

    @torch.no_grad()
    def calibrate(self, x) -> float:
        """Set the scale from data (``fx.calibrated_input_scale``: 127 / percentile(|x|)); returns the scale."""
        self.scale_param.fill_(fx.calibrated_input_scale(x, self.percentile, "InputQuantizer.calibrate"))
        return float(self.scale_param)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.scale
        return fake_quantize_input(x, s) / s

    def extra_repr(self) -> str:
        state = f"scale={float(self.scale_param.detach()):.6g}" if self.calibrated else "scale=None (calibrate first)"
        return f"{state}, learn={self.scale_param.requires_grad}"
