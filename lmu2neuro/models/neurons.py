"""Loihi's CUBA LIF neuron on snnTorch, trained with a surrogate gradient.

``LoihiLIF`` subclasses ``snntorch.Synaptic`` (a current-based LIF: current keeps ``alpha``,
voltage keeps ``beta``) and uses snnTorch's surrogate machinery (``self.fire`` with ``sigmoid``,
snnTorch's sigmoid surrogate written so that it stays finite) for the spike. Float (training):
``u = alpha u + I``, ``v = beta v + u + bias``, spike when ``v > threshold``, then in the same step
v = 0 (``reset_mechanism="zero"``: Loihi 1 and 2, SpikingJelly's hard reset) or v = v - threshold
(``"subtract"``: Loihi 2 only; ``core.fixed_point.lif_step``'s rule). The reset is detached from the
gradient as in SpikingJelly's ``detach_reset``. snnTorch's own reset timing differs (one step late
by default, so its subtract takes the threshold off after the decay, Loihi 2's before it), which is
why the step is written here. In QAT mode alpha and beta are fake-quantized to Lava's 12-bit decays
(straight-through); weights, biases and thresholds are quantized by ``lmu2neuro.models.quantize``.
The integer mode is not here: the deployed integers run in the one integer executor
(``lmu2neuro.core.executor``).

A whole sequence (``forward``) runs as one fused scan (``LIFScan``, a custom autograd function):
the forward does exactly the float operations of ``step`` in the same order, so its spikes are
bit-identical to stepping (``scan_steps``), but it keeps no autograd graph per step; the backward
runs the reverse recurrence by hand, with the surrogate factors of every step computed at once.
On CPU this makes a spiking epoch cost about what the convolutions around the neurons cost
(benchmarks/spiking_speed.py measures it against stepping and against the non-spiking model).
"""

from __future__ import annotations

import torch
from snntorch import Synaptic

from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core.errors import UserError


def ste_decay(keep: float, current: bool) -> torch.Tensor:
    """A keep factor rounded to the 12-bit decay Loihi stores, with a straight-through gradient."""
    keep_t = torch.as_tensor(keep, dtype=torch.float64)
    removed = fx.current_removed(fx.du_from_removed(1.0 - keep)) if current else \
        fx.voltage_removed(fx.dv_from_removed(1.0 - keep))
    return keep_t + ((1.0 - removed) - keep_t).detach()


class SigmoidSurrogate(torch.autograd.Function):
    """snnTorch's sigmoid surrogate (spike = x > 0; gradient ``k e / (1 + e)^2``, ``e = exp(-k x)``),
    written as ``k sig(k x) sig(-k x)``: the same function, but finite where ``exp(-k x)``
    overflows (x < -88 / k in float32), where snnTorch's form gives inf / inf = NaN. Stepping
    neurons (RLeaky, QAT's recurrent scan) meet such voltages once inhibition is learned."""

    @staticmethod
    def forward(ctx, x, slope):  # noqa: D401
        ctx.save_for_backward(x)
        ctx.slope = slope
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        kx = ctx.slope * x
        # sig(kx) sig(-kx) = sig (1 - sig) without the cancellation of 1 - sig where sig is near 1
        return grad * ctx.slope * torch.sigmoid(kx) * torch.sigmoid(-kx), None


def sigmoid(slope: float = 4.0):
    """The spike function with ``SigmoidSurrogate``'s gradient, as ``snntorch.surrogate.sigmoid``
    builds it (the neurons' fused scan recognises the sigmoid family by this name)."""

    def inner(x):
        return SigmoidSurrogate.apply(x, slope)

    return inner


class LoihiLIF(Synaptic):
    """A population of Loihi CUBA LIF neurons, trained through snnTorch's surrogate gradient.

    ``alpha``: current keep factor per step (0 = the current is the synaptic input of this step,
    Lava du = 4095); ``beta``: voltage keep factor (0.5 = SpikingJelly tau 2); ``threshold``: spike
    when v > threshold; ``slope``: sigmoid surrogate slope; ``reset_mechanism``: what a spike does
    to the voltage in its own step, "zero" or "subtract" (the threshold; Loihi 2 only), as
    ``core.fixed_point.RESETS`` names them and ``lif_step`` computes them in integers;
    ``refractory``: steps after a spike in which the neuron is held (its voltage kept, no spike, the
    current integrating on), ``lif_step``'s rule, 0..``fx.REFRACTORY_MAX``. With refractory 1 a zero
    reset is snnTorch's RLeaky zero reset (which discards the whole step after a spike). The state
    of a refractory neuron is (u, v, steps still held).
    """

    def __init__(self, alpha: float = 0.0, beta: float = 0.5, threshold: float = 1.0, slope: float = 4.0,
                 reset_mechanism: str = "zero", refractory: int = 0):
        if reset_mechanism not in fx.RESETS:
            raise UserError(f"LoihiLIF: reset_mechanism={reset_mechanism!r}: expected one of {', '.join(fx.RESETS)}")
        if isinstance(refractory, bool) or not isinstance(refractory, int) or \
                not 0 <= refractory <= fx.REFRACTORY_MAX:
            raise UserError(f"LoihiLIF: refractory={refractory!r}: expected whole steps 0..{fx.REFRACTORY_MAX}")
        super().__init__(
            alpha=alpha,
            beta=beta,
            threshold=threshold,
            spike_grad=sigmoid(slope=float(slope)),
            reset_mechanism=reset_mechanism,
            reset_delay=False,
        )
        self.slope = float(slope)
        self.refractory = int(refractory)
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
    def init_state(self, like: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Zero (current, voltage) state shaped like one step of input (B, n); with a refractory
        period also the steps still held (0)."""
        if self.refractory:
            return torch.zeros_like(like), torch.zeros_like(like), torch.zeros_like(like)
        return torch.zeros_like(like), torch.zeros_like(like)

    def step(
        self, current: torch.Tensor, state: tuple[torch.Tensor, ...], bias: torch.Tensor | float = 0.0
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """One time step: current (B, n) -> (spikes (B, n) float 0/1, new (u, v) or (u, v, held))."""
        alpha, beta = self._keeps()
        u, v = state[0], state[1]
        u = alpha.to(current.dtype) * u + current
        v_new = beta.to(current.dtype) * v + u + bias
        held = None
        if self.refractory:
            held = (state[2] > 0) if len(state) > 2 else torch.zeros_like(v_new, dtype=torch.bool)
            v_new = torch.where(held, v, v_new)  # held: the voltage neither decays nor integrates
        spk = self.fire(v_new).to(v_new.dtype)  # snnTorch surrogates return float32
        if held is not None:
            spk = spk * (~held).to(spk.dtype)
        if self.reset_mechanism == "subtract":
            v_new = v_new - spk.detach() * self.threshold
        else:
            v_new = v_new * (1.0 - spk.detach())
        if not self.refractory:
            return spk, (u, v_new)
        left = (state[2] - 1).clamp(min=0) if len(state) > 2 else torch.zeros_like(v_new)
        count = torch.where(spk.detach() > 0, torch.full_like(left, float(self.refractory)), left)
        return spk, (u, v_new, count)

    def forward(  # type: ignore[override]  (a whole sequence, not snnTorch's one step)
        self, current: torch.Tensor, bias: torch.Tensor | float = 0.0
    ) -> torch.Tensor:
        """A whole sequence: current (B, T, n) -> spikes (B, T, n), every sample from zero state.

        The fused scan (``LIFScan``); the same spikes as ``scan_steps``, bit for bit."""
        if not self._fusable(current, bias):
            return self.scan_steps(current, bias)
        alpha, beta = self._keeps()
        if not isinstance(bias, torch.Tensor):
            bias = None if bias == 0 else torch.as_tensor(bias, dtype=current.dtype, device=current.device)
        return LIFScan.apply(current, bias, alpha.to(current.device), beta.to(current.device),
                             self.threshold, self.slope, self.reset_mechanism == "subtract")

    def scan_steps(self, current: torch.Tensor, bias: torch.Tensor | float = 0.0) -> torch.Tensor:
        """The sequence as a loop of ``step``: the definition ``forward`` is checked against."""
        state = self.init_state(current[:, 0])
        out = []
        for t in range(current.shape[1]):
            spk, state = self.step(current[:, t], state, bias)
            out.append(spk)
        return torch.stack(out, dim=1)

    def _fusable(self, current: torch.Tensor, bias) -> bool:
        # The fused scan covers the neuron as LoihiLIF builds it: fixed decays and threshold, a
        # 0/1 spike, no state quantizer, no refractory period. Anything else steps.
        if self.refractory or current.ndim < 2 or current.shape[1] == 0 or not current.is_floating_point():
            return False
        fixed = all(not (isinstance(getattr(self, k), torch.Tensor) and getattr(self, k).requires_grad)
                    for k in ("alpha", "beta", "threshold", "graded_spikes_factor"))
        unit_spike = float(self.graded_spikes_factor) == 1.0
        return fixed and unit_spike and not self.state_quant and self.spike_grad.__qualname__.startswith("sigmoid")


def _dense_strides(t: torch.Tensor) -> tuple[int, ...]:
    """t's strides if they lay its elements out densely without overlap (any dimension order),
    else the contiguous strides (an expanded or sliced input must not shape its gradient)."""
    order = sorted(range(t.ndim), key=lambda d: t.stride(d))
    expect = 1
    for d in order:
        if t.shape[d] != 1 and t.stride(d) != expect:
            return torch.empty(t.shape, device="meta").stride()
        expect *= t.shape[d]
    return t.stride()


class LIFScan(torch.autograd.Function):
    """The LIF recurrence over a whole sequence with a hand-written backward.

    Forward, the float operations of ``LoihiLIF.step`` per step t, in its order:
    ``u = alpha u + I_t``; ``w = beta v + u (+ bias)``; spike where ``w - threshold > 0``;
    ``v = w (1 - spike)`` (zero reset) or ``v = w - spike threshold`` (subtract reset). Two exact
    rewrites make it cheap: the current u does not depend on the voltage, so it is its own pass
    first (with alpha = 0, every LMUFormer neuron, u is the input itself: ``0 u + I = I`` for
    finite values, so that pass only runs when an input is not finite); and with a finite
    threshold ``w - threshold > 0`` is ``w > threshold`` and ``1 - spike`` is ``w <= threshold``
    (both false for NaN, where v stays NaN either way). That leaves four
    element-wise operations per step in the voltage loop, each writing in place.

    Backward: with ``g_s`` the gradient of the spikes and ``sig'`` snnTorch's sigmoid surrogate,
    ``g_w(t) = g_s(t) sig'(w(t) - threshold) + beta keep(t) g_w(t+1)`` (the voltage carries into
    the next step unless it was reset to zero; the reset is detached as in ``step``, so after a
    subtract reset it always carries: keep = 1), and the current's
    gradient ``g_I(t) = g_w(t) + alpha g_I(t+1)``. The surrogate of every step is one vectorised
    expression, so the loop is one fused multiply-add per step (one more with alpha not 0).
    """

    @staticmethod
    def forward(ctx, current, bias, alpha, beta, threshold, slope, subtract=False):  # noqa: D401
        dtype = current.dtype
        a, b = alpha.to(dtype), beta.to(dtype)
        # w holds u_t first and becomes the voltage before the reset, (T, B, ...) contiguous so that
        # every step is one block (one transposing copy costs less than forty strided reads)
        w = current.transpose(0, 1).clone(memory_format=torch.contiguous_format)
        decaying = bool(a != 0)
        # a sum is cheaper than an isfinite pass; a sum that overflows only takes the exact loop
        if decaying or not bool(torch.isfinite(w.sum())):
            u = torch.zeros_like(w[0])
            for t in range(w.shape[0]):  # u_t = alpha u_{t-1} + I_t, in place over the inputs
                torch.mul(a, u, out=u)
                u.add_(w[t])
                w[t].copy_(u)
        keep = torch.empty_like(w)
        v = torch.zeros_like(w[0])
        decayed = torch.empty_like(w[0])
        for t in range(w.shape[0]):
            torch.mul(b, v, out=decayed)
            w[t].add_(decayed)  # u + beta v = beta v + u, the same rounding
            if bias is not None:
                w[t].add_(bias)
            if subtract:  # v = w - spike threshold: the step's v - spk * threshold, exactly
                torch.gt(w[t], threshold, out=keep[t])
                torch.mul(keep[t], threshold, out=decayed)
                torch.sub(w[t], decayed, out=v)
            else:
                torch.le(w[t], threshold, out=keep[t])
                torch.mul(w[t], keep[t], out=v)
        if subtract:  # the voltage always carries into the next step (the subtraction is detached)
            keep.fill_(1.0)
        ctx.save_for_backward(w, keep, a, b, threshold)
        ctx.slope = slope
        ctx.in_shape, ctx.in_strides = current.shape, _dense_strides(current)
        ctx.bias_shape = None if bias is None else bias.shape
        ctx.bias_grad = bias is not None and bias.requires_grad
        # straight into floats (ten times faster than bool.to()), laid out (B, T, ...) as a stack
        # of steps would be: what the synapses downstream are fastest on
        spikes = torch.empty(current.shape, dtype=dtype, device=current.device)
        torch.gt(w.transpose(0, 1), threshold, out=spikes)
        return spikes

    @staticmethod
    def backward(ctx, grad_out):
        w, keep, a, b, threshold = ctx.saved_tensors
        slope = ctx.slope
        # snnTorch's sigmoid surrogate, slope e / (1 + e)^2 with e = exp(-slope x), x = w - threshold,
        # for every step at once, written as slope sig(slope x) (1 - sig(slope x)): fewer passes over
        # the data, and no inf / inf = NaN where e overflows (x < -88 / slope in float32)
        sig = torch.sub(w, threshold).mul_(slope).sigmoid_()
        g = torch.empty_like(w)
        torch.mul(grad_out.transpose(0, 1), slope, out=g)  # into the (T, B, ...) layout of w
        g = torch.ops.aten.sigmoid_backward(g, sig)
        carry = keep * b  # beta keep(t)
        # the result goes straight into the input's own memory layout (batch norm's backward before
        # the neuron is several times slower on a gradient laid out otherwise, and a transposing
        # copy at the end would cost more than these strided writes)
        grad_in = torch.empty_strided(ctx.in_shape, ctx.in_strides, dtype=g.dtype, device=g.device)
        steps = g.shape[0]
        grad_in[:, steps - 1] = g[steps - 1]
        for t in range(steps - 2, -1, -1):  # g_w(t) = g_s(t) sig' + beta keep(t) g_w(t+1)
            torch.addcmul(g[t], grad_in[:, t + 1], carry[t], out=grad_in[:, t])
        grad_bias = grad_in.sum(1).sum_to_size(ctx.bias_shape) if ctx.bias_grad else None
        if bool(a != 0):
            alpha = float(a)
            for t in range(steps - 2, -1, -1):
                grad_in[:, t].add_(grad_in[:, t + 1], alpha=alpha)  # g_I(t) = g_w(t) + alpha g_I(t+1)
        return grad_in.to(grad_out.dtype), grad_bias, None, None, None, None, None


# the QAT twin of each neuron kind that trains (lmu2neuro.core.neurons names the kinds and says why
# one has none); a module that is an instance of one of these is a neuron to the tracer and lowering
TWINS = {"cuba_lif": LoihiLIF}
NEURON_MODULES = tuple(TWINS.values())
