"""Legendre Memory Unit memory: continuous (A, B), zero-order hold, impulse response, two forms.

LMUFormer's memory has no feedback from its output, so it is a linear time-invariant filter of
the scalar input u: ``m_t = Abar m_{t-1} + Bbar u_t`` (m_0 = 0, the current input included).
Training uses the parallel form (a causal convolution with the impulse response
``H[:, k] = Abar^k Bbar``, computed with torch.fft at length >= 2L so nothing wraps around);
streaming uses the exact recurrent step. Both give the same numbers (to ~1e-12 in float64).
"""

from __future__ import annotations

import torch

from lmu2neuro.core.legendre import impulse_response, lmu_discrete


def fft_length(steps: int) -> int:
    """The next power of two >= 2T: circular convolution then equals the linear one on T outputs."""
    return 1 << (2 * steps - 1).bit_length()


def fir_causal(u: torch.Tensor, h: torch.Tensor, fh: torch.Tensor | None = None) -> torch.Tensor:
    """m[b, t] = sum_{k<=t} H[:, k] u[b, t-k] by FFT; u (B, T), H (d, >=T) -> m (B, T, d).

    ``fh``: rfft of H[:, :T] at ``fft_length(T)`` if already known.
    """
    steps = u.shape[-1]
    if h.shape[-1] < steps:
        raise ValueError(f"impulse response has {h.shape[-1]} taps, input has {steps} steps")
    if fh is None:
        fh = torch.fft.rfft(h[:, :steps].to(u.dtype), n=fft_length(steps), dim=-1)  # (d, F)
    return _FFTConv.apply(u, fh).transpose(1, 2)


class _FFTConv(torch.autograd.Function):
    """u (B, T), rfft(H) (d, F) -> m (B, d, T); gradient with respect to u only (H is constant).

    Written out because autograd's version materialises the (B, d, F) product a second time and
    pads the gradient; the adjoint of a causal convolution is the correlation with H:
    grad_u = irfft(sum_i rfft(g_i) * conj(FH_i))[:T].
    """

    @staticmethod
    def forward(ctx, u, fh):
        steps = u.shape[-1]
        n = fft_length(steps)
        ctx.save_for_backward(fh)
        ctx.steps = steps
        fu = torch.fft.rfft(u, n=n, dim=-1)
        return torch.fft.irfft(fu[:, None, :] * fh[None], n=n, dim=-1)[..., :steps]

    @staticmethod
    def backward(ctx, grad):
        (fh,) = ctx.saved_tensors
        n = fft_length(ctx.steps)
        g = torch.fft.rfft(grad, n=n, dim=-1)  # (B, d, F)
        s = (g * fh.conj()[None]).sum(dim=1)
        return torch.fft.irfft(s, n=n, dim=-1)[..., : ctx.steps], None


class LMUMemory(torch.nn.Module):
    """The LMU memory as a module: parallel ``forward(u (B, T)) -> m (B, T, d)`` and ``step``.

    Buffers Abar, Bbar (float64 kept, cast to the input's dtype) and the impulse response for
    ``max_len`` steps; longer inputs extend it on the fly (any length works).
    """

    def __init__(self, order: int, theta: float, max_len: int = 128):
        super().__init__()
        self.order, self.theta, self.max_len = int(order), float(theta), int(max_len)
        abar, bbar = lmu_discrete(self.order, self.theta)
        self.register_buffer("abar", torch.from_numpy(abar), persistent=False)
        self.register_buffer("bbar", torch.from_numpy(bbar[:, 0].copy()), persistent=False)
        self.register_buffer(
            "h", torch.from_numpy(impulse_response(self.order, self.theta, self.max_len)), persistent=False
        )

    def impulse(self, length: int) -> torch.Tensor:
        """H (d, length) float64, reusing the cached response when it is long enough."""
        if length <= self.h.shape[1]:
            return self.h[:, :length]
        return torch.from_numpy(impulse_response(self.order, self.theta, length)).to(self.h.device)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """Parallel form: u (B, T) -> m (B, T, d) in u's dtype."""
        steps = u.shape[-1]
        key = (steps, u.dtype, u.device)
        cache = self.__dict__.setdefault("_fh_cache", {})
        if key not in cache:
            # The response is a constant of the module: its spectrum is computed once per length.
            cache.clear()
            h = self.impulse(steps).to(device=u.device, dtype=u.dtype)
            cache[key] = torch.fft.rfft(h, n=fft_length(steps), dim=-1)
        return _FFTConv.apply(u, cache[key]).transpose(1, 2)

    def step(self, m: torch.Tensor | None, u_t: torch.Tensor) -> torch.Tensor:
        """Recurrent form: m_t = Abar m_{t-1} + Bbar u_t for m (B, d), u_t (B,); m None means zero state."""
        bbar = self.bbar.to(u_t.dtype)
        new = u_t[:, None] * bbar[None]
        if m is not None:
            new = new + m @ self.abar.to(u_t.dtype).T
        return new

    def recurrent(self, u: torch.Tensor) -> torch.Tensor:
        """The whole sequence by the recurrent step (the streaming reference): u (B, T) -> (B, T, d)."""
        m = None
        out = []
        for t in range(u.shape[-1]):
            m = self.step(m, u[:, t])
            out.append(m)
        return torch.stack(out, dim=1)
