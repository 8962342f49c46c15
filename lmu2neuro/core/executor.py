"""The one integer executor: an IntNetwork run in torch, batched, bit-exact with Lava fixed_pt.

Every integer result of the project comes from here: the reference simulator, the QAT model in
integer mode (``lmu2neuro.deploy.integer_forward`` = ``execute(lower(model), quantize(x))``) and
the checks on Lava runs. Lava's own ProcessModels are the independent check and share no code.

Populations are in topological order and projections carry their delays as taps, so a whole
sequence is computed one population at a time: every projection into a population is a causal
integer convolution over time (``tap_sum``, exact in float64 for the magnitudes Loihi allows),
then the neuron's step (its kind's, ``core/neurons``; the LIF's is ``fixed_point.lif_step``) scans the steps for the whole batch at once.
A convolutional projection applies its kernel to every frame (``ConvGeometry.apply``: unfolded
columns times the kernel, in the narrowest exact type), one tap at a time (``conv_tap_sum``, also
the QAT model's). A population's projection onto itself is computed step by step, only the step
the scan is at.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core import neurons
from lmu2neuro.core.intnet import IntNetwork, check_reset_interval, reset_steps


@dataclass
class Execution:
    spikes: dict[str, torch.Tensor]  # population -> (batch, T, n) bool; readout: all False
    scores: torch.Tensor  # (batch, n_out) int64: output score after the last step (intnet docstring)
    readout_trace: torch.Tensor  # (batch, T, n_out) int64: output score after each step
    wrapped: dict[str, int]  # population -> count of (sample, step, neuron) whose current wrapped
    peak_current: dict[str, int]  # population -> largest |current| before the 24-bit wrap
    voltages: dict[str, torch.Tensor] = field(default_factory=dict)  # recorded population -> (batch, T, n)
    # graded population -> (batch, T, n) int64: each message's payload (0: none sent); spikes holds != 0
    payloads: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def predictions(self) -> torch.Tensor:
        return self.scores.argmax(dim=1)


def tap_sum(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """y[b, t] = sum_j w[j] @ x[b, t - j] for x (B, T, in), w (taps, out, in) -> (B, T, out).

    The synaptic accumulation of Dense / DelayDense over delay taps, in x's dtype: float64 on
    integers is exact here, float32 with gradients is the QAT model's twin of the same sum.
    """
    steps = x.shape[1]
    taps = min(w.shape[0], steps)
    w = w[:taps]
    if taps == 1:
        return x @ w[0].T
    kernel = w.flip(0).permute(1, 2, 0)  # (out, in, taps), cross-correlation order
    return F.conv1d(F.pad(x.transpose(1, 2), (taps - 1, 0)), kernel).transpose(1, 2)


def projection_current(x: torch.Tensor, proj, x_max: int | None = None) -> torch.Tensor:
    """A projection's synaptic input for sources x (B, T, source size): int64 (B, T, target size).
    ``x_max`` is max |x| when known (spikes: 1), so that x is not scanned for it."""
    x = torch.as_tensor(x)
    x_max = _max_abs(x) if x_max is None else x_max
    if proj.conv is None:
        return _current(x, proj.weights, proj.weight_exp, x_max)
    return _conv_current(x, proj, x_max)


def _conv_current(x: torch.Tensor, proj, x_max: int) -> torch.Tensor:
    kernel = torch.as_tensor(np.asarray(proj.weights)).to(x.device)
    dtype = _exact_dtype(x_max, kernel, f"projection '{proj.name}'")
    used = [j for j in range(proj.taps) if bool(kernel[j].any())]
    acc = conv_tap_sum(x.to(dtype), used, lambda j, frames: proj.conv.apply(kernel[j], frames),
                       int(np.prod(proj.out_shape)))
    return fx.shift_by_exp(acc.to(torch.int64), proj.weight_exp)


def conv_tap_sum(x: torch.Tensor, taps, one_tap, out_size: int) -> torch.Tensor:
    """y[b, t] = sum over the taps j of one_tap(j, x[b, t - j]), x (B, T, in) -> (B, T, out_size):
    a convolutional projection's delayed sum, ``one_tap(j, frames (N, in)) -> (N, out)`` applying
    tap j's kernel to frames, in their dtype. The executor's exact integer current passes
    ``ConvGeometry.apply`` and only its nonzero taps; the QAT model's float twin
    (``quantize.synaptic_sum``) a differentiable convolution and every tap, so each gets its
    gradient."""
    batch, steps, _ = x.shape
    frames = x.reshape(batch * steps, -1)
    acc = None
    for j in taps:
        if j >= steps:
            continue
        y = one_tap(j, frames).reshape(batch, steps, -1)
        if acc is None:
            acc = torch.zeros_like(y)
        acc[:, j:] += y[:, : steps - j]
    if acc is None:
        acc = torch.zeros(batch, steps, out_size, dtype=x.dtype, device=x.device)
    return acc


def integer_current(x: torch.Tensor, weights, weight_exp: int) -> torch.Tensor:
    """shift(sum_j W[j] @ x[t - j], exp): a projection's synaptic input, int64 (B, T, out).

    The sum is tap_sum's, computed as matrix products in the narrowest type in which it is exact
    (_exact_dtype), because float32 products run about 4x faster than the float64 that QAT's
    conv1d would need here.
    """
    x = torch.as_tensor(x)
    return _current(x, weights, weight_exp, _max_abs(x))


def _max_abs(x: torch.Tensor) -> int:
    if x.dtype == torch.bool:
        return 1
    return int(x.abs().max()) if x.numel() else 0


def _current(x: torch.Tensor, weights, weight_exp: int, x_max: int) -> torch.Tensor:
    """integer_current with max |x| known (spikes: 1), so that x is not scanned for it."""
    w = torch.as_tensor(np.asarray(weights)).to(x.device)
    dtype = _exact_dtype(x_max, w, "integer current")
    acc = _matmul_tap_sum(x.to(dtype), w.to(dtype))
    return fx.shift_by_exp(acc.to(torch.int64), weight_exp)


def _exact_dtype(x_max: int, w: torch.Tensor, where: str = "sum") -> torch.dtype:
    """float32 if every partial sum of the product is an integer below 2**24, float64 below 2**53.

    ``w`` is a dense projection's (taps, target, source) or a convolution's kernel (taps, C_out,
    C_in // groups, *k): either way a target sums at most its index-1 slice over all taps, so
    whatever order the product adds in, each partial sum is at most max over that axis of
    sum |w| times max |x|, and such integers are exact in those types. Beyond 2**53 a ValueError
    naming ``where``: torch's unfold has no int64 kernel (nor CUDA's matmul), so neither path
    could run in integers (Loihi's 8-bit weights and inputs stay far below)."""
    rest = tuple(d for d in range(w.ndim) if d != 1)
    bound = int(w.abs().sum(dim=rest).max()) * x_max if w.numel() else 0
    if bound >= 1 << 53:
        raise ValueError(f"{where}: sums up to {bound} are beyond exact float64 arithmetic (2**53)")
    # a lower matmul precision lets float32 products run in bfloat16, which is not exact
    if bound < 1 << 24 and torch.get_float32_matmul_precision() == "highest":
        return torch.float32
    return torch.float64


def _matmul_tap_sum(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """tap_sum as plain matrix products (conv1d promises no summation algorithm; a product of
    integers summed in any order is exact in _exact_dtype's type)."""
    batch, steps, n_in = x.shape
    taps = min(w.shape[0], steps)
    if taps == 1:
        return x @ w[0].T
    if n_in >= taps:  # one product per delay, each added from the step it reaches on
        y = x @ w[0].T
        for j in range(1, taps):
            if bool(w[j].any()):
                y[:, j:] += x[:, : steps - j] @ w[j].T
        return y
    # few inputs and many taps (the LMU memory's FIR): one product over the window of taps
    window = F.pad(x, (0, 0, taps - 1, 0)).unfold(1, taps, 1)  # [b, t, i, k] = x[b, t + k - taps + 1, i]
    kernel = w[:taps].flip(0).permute(2, 0, 1).reshape(n_in * taps, -1)  # rows (i, k): delay taps - 1 - k
    return (window.reshape(batch * steps, n_in * taps) @ kernel).reshape(batch, steps, -1)


def _recurrent_current(proj, device):
    """A population's projection onto itself as a function (spikes out (B, T, n) bool, step t) ->
    (B, n) int64, its current at step t: tap j applied to out[:, t - j] for each nonzero tap j <= t,
    only that step computed (tap 0 is zero by validation: out[:, t] is not set yet)."""
    w = torch.as_tensor(np.asarray(proj.weights)).to(device)
    dtype = _exact_dtype(1, w, f"projection '{proj.name}'")
    used = [j for j in range(1, proj.taps) if bool(w[j].any())]
    w = w.to(dtype)
    if proj.conv is None:
        def one_tap(j, s):
            return s @ w[j].T
    else:
        def one_tap(j, s):
            return proj.conv.apply(w[j], s)

    def current(out: torch.Tensor, t: int) -> torch.Tensor:
        acc = torch.zeros(out.shape[0], out.shape[2], dtype=dtype, device=out.device)
        for j in used:
            if j > t:
                break
            acc += one_tap(j, out[:, t - j].to(dtype))
        return fx.shift_by_exp(acc.to(torch.int64), proj.weight_exp)

    return current


def execute(net: IntNetwork, x_int: torch.Tensor | np.ndarray, record: tuple[str, ...] = (),
            device: torch.device | str = "cpu", reset_interval: int | None = None,
            reset_offset: int = 0) -> Execution:
    """Run a batch of quantized inputs (batch, T, input_size) through the network; ``record`` names
    populations whose voltage after each step (after the reset) is kept in ``voltages``. ``device``
    is where the arithmetic runs (integers are exact on any); the results come back on the CPU.
    With ``net.bias_input`` the inputs are that population's bias mantissas per step;
    ``reset_interval`` / ``reset_offset`` zero every state as ``intnet.reset_steps`` says."""
    x = torch.as_tensor(np.asarray(x_int), dtype=torch.int64)
    resets = reset_steps(x.shape[1] if x.ndim == 3 else 0, *check_reset_interval(reset_interval, reset_offset))
    if torch.device(device).type == "cpu":  # the device context costs a dispatch on every torch call
        return _execute(net, x, record, resets)
    with torch.device(device):
        return _execute(net, x.to(device), record, resets)


def _execute(net: IntNetwork, x: torch.Tensor, record: tuple[str, ...], resets: np.ndarray) -> Execution:
    if x.ndim != 3 or x.shape[2] != net.input_size:
        raise ValueError(f"input shape {tuple(x.shape)}, expected (batch, T, {net.input_size})")
    batch, steps, _ = x.shape
    # every source's output, and the largest |value| in it (spikes: 1)
    signals: dict[str, tuple[torch.Tensor, int]] = {net.input_name: (x, _max_abs(x))}
    spikes: dict[str, torch.Tensor] = {}
    wrapped: dict[str, int] = {}
    peak: dict[str, int] = {}
    voltages: dict[str, torch.Tensor] = {}
    payloads: dict[str, torch.Tensor] = {}
    trace = torch.zeros(batch, steps, net.population(net.output).size, dtype=torch.int64)
    for pop in net.populations:
        a_in = torch.zeros(batch, steps, pop.size, dtype=torch.int64)
        recurrent = []
        for proj in net.projections_into(pop.name):
            if proj.source == pop.name:
                recurrent.append(_recurrent_current(proj, x.device))
            else:
                source, source_max = signals[proj.source]
                a_in += projection_current(source, proj, source_max)
        nk = neurons.kind(pop.kind)
        state = nk.start(pop, batch, x.device)
        bias = torch.as_tensor(pop.bias, dtype=torch.int64).to(x.device)
        driven = net.bias_driven(pop.name)
        # a unary kind's output is its spikes, a graded kind's the payload of each message (0: none)
        out = torch.zeros(batch, steps, pop.size, dtype=torch.int64 if nk.graded else torch.bool)
        vs = torch.zeros(batch, steps, pop.size, dtype=torch.int64) if pop.readout or pop.name in record else None
        n_wrapped, peak_u = 0, 0
        for t in range(steps):
            if resets[t]:
                state = nk.start(pop, batch, x.device)
            if driven:
                bias = x[:, t] << pop.bias_exp
            a_t = a_in[:, t]
            for current in recurrent:
                a_t = a_t + current(out, t)
            r = nk.step(state, a_t, pop, bias)
            state = r.state
            out[:, t] = r.out
            n_wrapped += int(r.wrapped.sum())
            if r.unwrapped.numel():
                peak_u = max(peak_u, int(r.unwrapped.abs().max()))
            if vs is not None:
                vs[:, t] = r.voltage
        wrapped[pop.name] = n_wrapped
        peak[pop.name] = peak_u
        if nk.graded:
            payloads[pop.name] = out
            # a message sent; a readout's messages are its score (Lava's Sigma), never spikes
            spikes[pop.name] = (out != 0) & (not pop.readout)
            signals[pop.name] = (out, _max_abs(out))
        else:
            spikes[pop.name] = out
            # as float32 once, the type most of its projections multiply in (0 and 1 are exact in any)
            signals[pop.name] = (out.to(torch.float32), 1)
        if pop.name in record:
            voltages[pop.name] = vs
        if pop.name == net.output:
            trace = vs if pop.readout else out.to(torch.int64).cumsum(dim=1)
    cpu = {name: s.cpu() for name, s in spikes.items()}
    return Execution(spikes=cpu, scores=trace[:, -1].cpu(), readout_trace=trace.cpu(), wrapped=wrapped,
                     peak_current=peak, voltages={name: v.cpu() for name, v in voltages.items()},
                     payloads={name: p.cpu() for name, p in payloads.items()})
