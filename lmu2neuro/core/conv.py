"""Convolutional connectivity: a kernel stored once, applied at every position of a frame.

A convolutional projection keeps its integer kernel ``(taps, C_out, C_in // groups, *k)`` and a
``ConvGeometry`` (the source frame's shape, stride, padding, dilation, groups: PyTorch's
cross-correlation conventions, zero padding). Populations are flat vectors of neurons in C order
of their frame ((C, L) or (C, H, W)), so Flatten is the identity and needs no projection, and
sum / average pooling is a depthwise convolution with a constant kernel.

Everything a back end or a report asks of the connectivity is answered here from the kernel,
without building the dense matrix: the output shape, each neuron's fan-in and fan-out with the
borders counted exactly, the (target, source) pairs as a sparse matrix, the dense matrix itself
for the consumers that need one (guarded by the caller), the multiply-accumulates of one
evaluation, and the composition of two convolutions into one (a pooling that follows a
convolution with no neuron between them is one Loihi projection).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from lmu2neuro.core import guards


@dataclass(frozen=True)
class ConvGeometry:
    in_shape: tuple[int, ...]  # the source frame, (C, L) or (C, H, W)
    stride: tuple[int, ...]
    padding: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int = 1

    def __post_init__(self):
        dims = len(self.in_shape) - 1
        for name in ("stride", "padding", "dilation"):
            value = getattr(self, name)
            value = (int(value),) * dims if np.isscalar(value) else tuple(int(v) for v in value)
            object.__setattr__(self, name, value)
        object.__setattr__(self, "in_shape", tuple(int(v) for v in self.in_shape))
        object.__setattr__(self, "groups", int(self.groups))

    @classmethod
    def pool(cls, in_shape, window, stride, padding=0, mean: bool = False, **like):
        """Sum or average pooling (count_include_pad: the window's size divides) as a depthwise
        convolution: (geometry, kernel (C, 1, *window) of ones or of their mean, a tensor made with
        ``like``'s dtype / device)."""
        c, window = int(in_shape[0]), tuple(int(v) for v in window)
        kernel = torch.ones((c, 1) + window, **like)
        return cls(in_shape, stride, padding, 1, c), (kernel / int(np.prod(window)) if mean else kernel)

    @classmethod
    def pointwise(cls, frame) -> "ConvGeometry":
        """Each neuron of a (C, ...) frame to its own target: a depthwise 1 x 1 convolution, kernel
        (C, 1, 1, ...)."""
        return cls(frame, 1, 0, 1, int(frame[0]))

    @property
    def dims(self) -> int:
        return len(self.in_shape) - 1

    @property
    def in_size(self) -> int:
        return int(np.prod(self.in_shape))

    def problem(self, kernel_shape: tuple[int, ...]) -> str | None:
        """Why a kernel of this shape cannot be applied here (None if it can)."""
        if self.dims not in (1, 2):
            return f"source frame {self.in_shape}: expected (C, L) or (C, H, W)"
        if len(kernel_shape) != 3 + self.dims:
            return f"kernel shape {tuple(kernel_shape)}, expected (taps, C_out, C_in / groups, *{self.dims} kernel dims)"
        if min(self.in_shape) < 1 or min(kernel_shape) < 1:
            return f"empty frame {self.in_shape} or kernel {tuple(kernel_shape)}"
        if min(self.stride) < 1 or min(self.dilation) < 1 or min(self.padding) < 0 or self.groups < 1:
            return (f"stride {self.stride}, dilation {self.dilation} must be >= 1, padding {self.padding} >= 0, "
                    f"groups {self.groups} >= 1")
        if any(len(v) != self.dims for v in (self.stride, self.padding, self.dilation)):
            return f"stride/padding/dilation need {self.dims} values each"
        c_in, c_out = self.in_shape[0], kernel_shape[1]
        if c_in % self.groups or c_out % self.groups or kernel_shape[2] * self.groups != c_in:
            return f"{c_in} input and {c_out} output channels in {self.groups} groups, kernel has {kernel_shape[2]} per group"
        if min(self._spatial_out(kernel_shape)) < 1:
            return f"kernel {tuple(kernel_shape[3:])} does not fit frame {self.in_shape} with padding {self.padding}"
        return None

    def _spatial_out(self, kernel_shape) -> tuple[int, ...]:
        return tuple((n + 2 * p - d * (k - 1) - 1) // s + 1 for n, k, s, p, d in
                     zip(self.in_shape[1:], kernel_shape[3:], self.stride, self.padding, self.dilation))

    def out_shape(self, kernel_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (int(kernel_shape[1]),) + self._spatial_out(kernel_shape)

    def macs(self, kernel_shape: tuple[int, ...]) -> int:
        """Multiply-accumulates of one evaluation over all taps, as NeuroBench counts a
        convolution layer (its all-one copy on an all-one input): every kernel entry, zeros
        included, at every output position, but only where it meets a real source: a padded
        position adds a zero and counts nothing. ``Projection.macs`` and the tracer's and the NIR
        reader's ``ann_macs`` count with it (the NIR reader runs NeuroBench's recipe itself only for
        a "same" padding PyTorch splits unevenly, which no geometry states). Each spatial axis counts its
        (output, offset) pairs inside the frame independently, so this never builds a frame."""
        taps, c_out, c_in_g = (int(v) for v in kernel_shape[:3])
        real = 1
        for n, o, k, s, p, d in zip(self.in_shape[1:], self._spatial_out(kernel_shape), kernel_shape[3:],
                                    self.stride, self.padding, self.dilation):
            pos = s * np.arange(o)[:, None] + d * np.arange(int(k))[None, :] - p
            real *= int(np.count_nonzero((pos >= 0) & (pos < n)))
        return taps * c_out * c_in_g * real

    # -- as 2-D: a 1-D frame (C, L) is (C, 1, L) -------------------------------------------------
    def as_2d(self) -> tuple[tuple[int, ...], ...]:
        """(frame, stride, padding, dilation) of the same convolution on a 2-D frame (C, 1, L) when
        this one is 1-D: what a 2-D-only operator (unfold, Lava's Conv) is given."""
        if self.dims == 2:
            return self.in_shape, self.stride, self.padding, self.dilation
        return ((self.in_shape[0], 1, self.in_shape[1]), (1,) + self.stride, (0,) + self.padding,
                (1,) + self.dilation)

    @staticmethod
    def _kernel2d(kernel) -> torch.Tensor:
        k = torch.as_tensor(np.asarray(kernel)) if not isinstance(kernel, torch.Tensor) else kernel
        return k.unsqueeze(-2) if k.ndim == 3 else k  # one tap: (C_out, C_in/g, *k)

    def apply(self, kernel: torch.Tensor, x: torch.Tensor, chunk_elements: int = 1 << 24) -> torch.Tensor:
        """One tap: x (N, in_size) -> (N, out_size), in x's dtype, as unfolded columns times the
        kernel (a matrix product: exact for integers whose partial sums the dtype holds; no
        Winograd or FFT transform). ``chunk_elements`` bounds the unfolded columns in memory."""
        shape, stride, padding, dilation = self.as_2d()
        k = self._kernel2d(kernel).to(x.dtype)
        c_out, c_in_g, kh, kw = k.shape
        g = self.groups
        n = x.shape[0]
        out_hw = self._spatial_out((1, c_out, c_in_g) + ((kh, kw) if self.dims == 2 else (kw,)))
        positions = int(np.prod(out_hw))
        weight = k.reshape(g, c_out // g, c_in_g * kh * kw)
        per_frame = max(1, shape[0] * kh * kw * positions)
        step = max(1, chunk_elements // per_frame)
        out = torch.empty(n, c_out * positions, dtype=x.dtype, device=x.device)
        for start in range(0, n, step):
            frames = x[start:start + step].reshape(-1, *shape)
            cols = F.unfold(frames, (kh, kw), dilation=dilation, padding=padding, stride=stride)
            cols = cols.reshape(frames.shape[0], g, c_in_g * kh * kw, positions)
            out[start:start + step] = torch.matmul(weight, cols).reshape(frames.shape[0], -1)
        return out

    def offsets_in_frame(self, k_spatial) -> torch.Tensor:
        """(prod(k), output positions) float64: 1 where that kernel offset meets a real source at that
        output position (0 where it meets padding)."""
        shape, stride, padding, dilation = self.as_2d()
        ks = tuple(int(v) for v in k_spatial)
        ones = torch.ones((1, 1) + tuple(shape[1:]), dtype=torch.float64)
        return F.unfold(ones, ks if self.dims == 2 else (1,) + ks, dilation=dilation, padding=padding,
                        stride=stride)[0]

    def row_sums(self, kernel: torch.Tensor) -> torch.Tensor:
        """Per target neuron: the sum of a one-tap kernel's entries over the real (not padded)
        sources it meets (for |kernel|: the dense matrix's row sums of |w|), in the kernel's dtype."""
        return self.apply(kernel, torch.ones(1, self.in_size, dtype=kernel.dtype, device=kernel.device))[0]

    # -- connectivity without the dense matrix ---------------------------------------------------
    def _mask(self, kernel) -> torch.Tensor:
        """(C_out, C_in/g, *k) float64: 1 where some tap's weight is nonzero."""
        k = torch.as_tensor(np.asarray(kernel) != 0)
        return k.any(dim=0).to(torch.float64)

    def fan_in(self, kernel) -> np.ndarray:
        """Per target neuron: nonzero synapses from real (not padded) sources, over all taps."""
        k = torch.as_tensor(np.asarray(kernel) != 0).to(torch.float64).sum(dim=0)
        ones = torch.ones(1, self.in_size, dtype=torch.float64)
        return self.apply(k, ones)[0].round().to(torch.int64).numpy()

    def fan_out(self, kernel) -> np.ndarray:
        """Per source neuron: nonzero synapses over all taps and targets, borders included."""
        shape, stride, padding, dilation = self.as_2d()
        k = self._kernel2d(torch.as_tensor(np.asarray(kernel) != 0).to(torch.float64).sum(dim=0))
        out_shape = self.out_shape(np.shape(kernel))
        ones = torch.ones(1, *((out_shape[0], 1) + out_shape[1:] if self.dims == 1 else out_shape),
                          dtype=torch.float64)
        # the far border rows that the forward stride skips get zero, padded rows are cropped
        extra = tuple(n - ((o - 1) * s - 2 * p + d * (kk - 1) + 1) for n, o, s, p, d, kk in
                      zip(shape[1:], ones.shape[2:], stride, padding, dilation, k.shape[2:]))
        back = F.conv_transpose2d(ones, k, stride=stride, padding=padding, dilation=dilation, groups=self.groups,
                                  output_padding=extra)
        return back.reshape(-1).round().to(torch.int64).numpy()

    def check_synapses(self, kernel_shape: tuple[int, ...], path: str, where: str = "") -> None:
        """UserError (``core.guards``, ``LMU2NEURO_MAX_ELEMENTS``) when listing this convolution's
        synapses could exceed the element limit: every output neuron times one tap's kernel entries
        per output channel, the most (target, source) pairs ``pairs`` can hold and the columns it
        unfolds. The one bound every reader, the tracer, chip mapping and timing meet, because
        ``pairs`` and ``dense`` call it before they allocate."""
        out_size = int(np.prod(self.out_shape(kernel_shape)))
        guards.check_elements(path, f"{where}: convolution synapses" if where else "convolution synapses",
                              (out_size, int(np.prod(kernel_shape[2:]))))

    def pairs(self, kernel, where: str = "convolution") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(target, source, kernel_index) of every synapse whose weight is nonzero on some tap;
        kernel_index is the flat index into one tap of the kernel (C_out, C_in/g, *k). Refused
        (``check_synapses``, ``where`` names the owner) above the element limit."""
        self.check_synapses(np.shape(kernel), where)
        shape, stride, padding, dilation = self.as_2d()
        mask = self._kernel2d(self._mask(kernel))
        c_out, c_in_g, kh, kw = mask.shape
        g = self.groups
        index = torch.arange(1, self.in_size + 1, dtype=torch.float64).reshape(1, *shape)
        cols = F.unfold(index, (kh, kw), dilation=dilation, padding=padding, stride=stride)[0]  # (C_in*kh*kw, L)
        positions = cols.shape[1]
        cols = cols.reshape(g, c_in_g * kh * kw, positions)
        targets, sources, kidx = [], [], []
        flat = torch.arange(c_out * c_in_g * kh * kw).reshape(c_out, c_in_g * kh * kw)
        for o in range(c_out):
            sel = mask[o].reshape(-1).nonzero()[:, 0]
            src = cols[o // (c_out // g)][sel]  # (nnz_k, L); 0 = padding
            real = src > 0
            pos = torch.arange(positions).expand_as(src)
            targets.append((o * positions + pos[real]).numpy())
            sources.append((src[real] - 1).to(torch.int64).numpy())
            kidx.append(flat[o][sel].unsqueeze(1).expand_as(src)[real].numpy())
        return (np.concatenate(targets).astype(np.int64), np.concatenate(sources).astype(np.int64),
                np.concatenate(kidx).astype(np.int64))

    def dense(self, kernel, where: str = "convolution") -> np.ndarray:
        """The kernel as its full matrix (taps, out_size, in_size); refused above the element limit
        (``where`` names the owner)."""
        kernel = np.asarray(kernel)
        taps = kernel.shape[0]
        out_size = int(np.prod(self.out_shape(kernel.shape)))
        guards.check_elements(where, "convolution as a dense matrix", (taps, out_size, self.in_size))
        tgt, src, k = self.pairs(kernel, where)
        w = np.zeros((taps, out_size, self.in_size), dtype=kernel.dtype)
        flat = kernel.reshape(taps, -1)
        for j in range(taps):
            w[j, tgt, src] = flat[j, k]
        return w


def resolve_padding(padding, kernel_size, dilation) -> tuple[int, ...] | None:
    """PyTorch's ``padding`` argument as zeros added on each side, per spatial axis: "valid" none,
    "same" half of d (k - 1); None where "same" needs an uneven split (PyTorch pads the far side
    one more, which no ConvGeometry states). Numbers pass through, one per axis."""
    dims = len(tuple(kernel_size))
    if isinstance(padding, str):
        if padding == "valid":
            return (0,) * dims
        if padding != "same":
            return None
        dilation = (int(dilation),) * dims if np.isscalar(dilation) else tuple(int(d) for d in dilation)
        total = [d * (int(k) - 1) for d, k in zip(dilation, kernel_size)]
        return None if any(t % 2 for t in total) else tuple(t // 2 for t in total)
    return (int(padding),) * dims if np.isscalar(padding) else tuple(int(v) for v in padding)


def composed_kernel_size(first: ConvGeometry, k1_spatial, second: ConvGeometry, k2_spatial) -> tuple[int, ...]:
    """The spatial size of ``compose``'s kernel: offsets r = s1 d2 b + d1 m reach
    s1 d2 (n2 - 1) + d1 (n1 - 1) + 1 per axis (a caller bounds it before composing)."""
    return tuple(s1 * d2 * (n2 - 1) + d1 * (n1 - 1) + 1 for s1, d1, n1, d2, n2 in
                 zip(first.stride, first.dilation, k1_spatial, second.dilation, k2_spatial))


def compose(first: ConvGeometry, k1, second: ConvGeometry, k2, groups: int | None = None):
    """The one convolution equal to ``second`` applied after ``first`` (float kernels of one tap,
    (C_out, C_in/g, *k) each), or None when no single convolution is (``second`` pads: it would
    see zeros where ``first`` has real outputs; or the sizes differ).

    Offsets add up: y = sum_b K2[b] sum_m K1[m] x[s1 (s2 i + d2 b) + d1 m - p1], so the kernel
    holds at r = s1 d2 b + d1 m the sum of K2[b] K1[m] over channels, with stride s1 s2 and
    padding p1: the transposed convolution of K2 by K1 with stride s1 d2 and dilation d1, so
    gradients reach both kernels (the tracer trains the layers through it). Kernels given as
    numpy arrays are composed in float64 and come back as numpy; tensors keep their dtype.
    ``groups``: the result's grouping (the caller knows it from the structure, e.g. 1 for the full
    kernel); None finds the most groups the composed kernel's nonzeros allow."""
    as_numpy = not isinstance(k1, torch.Tensor)
    k1 = torch.tensor(np.asarray(k1, dtype=np.float64)) if as_numpy else k1
    k2 = k2.to(k1) if isinstance(k2, torch.Tensor) else torch.tensor(np.asarray(k2), dtype=k1.dtype, device=k1.device)
    if first.dims != second.dims or any(second.padding):
        return None
    if tuple(second.in_shape) != tuple(first.out_shape((1,) + tuple(k1.shape))):
        return None
    full1 = ungroup(k1, first.in_shape[0], first.groups)  # (c1, c0, *k)
    full2 = ungroup(k2, k1.shape[0], second.groups)  # (c2, c1, *k)
    fn = F.conv_transpose1d if first.dims == 1 else F.conv_transpose2d
    stride = tuple(s1 * d2 for s1, d2 in zip(first.stride, second.dilation))
    out = fn(full2, full1, stride=stride, dilation=first.dilation)  # (c2, c0, *composed_kernel_size)
    if groups is None:
        groups = groups_of(out.detach().cpu().numpy())
    geometry = ConvGeometry(first.in_shape, tuple(a * b for a, b in zip(first.stride, second.stride)),
                            first.padding, (1,) * first.dims, groups)
    kernel = regroup(out, groups)
    if geometry.out_shape((1,) + tuple(kernel.shape)) != second.out_shape((1,) + tuple(k2.shape)):
        return None  # the first's last rows feed no output of the second: sizes differ
    return geometry, (kernel.numpy() if as_numpy else kernel)


def ungroup(k, c_in: int, groups: int):
    """(C_out, C_in // groups, *k) -> (C_out, C_in, *k), zero outside each group's block (torch or
    numpy, as given)."""
    if groups == 1:
        return k
    c_out, c_in_g = k.shape[:2]
    per = c_out // groups
    zeros = k.new_zeros if isinstance(k, torch.Tensor) else (lambda *s: np.zeros(s, dtype=k.dtype))
    full = zeros(c_out, c_in, *k.shape[2:])
    for gi in range(groups):
        full[gi * per:(gi + 1) * per, gi * c_in_g:(gi + 1) * c_in_g] = k[gi * per:(gi + 1) * per]
    return full


def groups_of(full: np.ndarray) -> int:
    """The most groups in which a full (C_out, C_in, *k) kernel is block diagonal."""
    c_out, c_in = full.shape[:2]
    reach = np.abs(full).reshape(c_out, c_in, -1).sum(axis=2) != 0
    for g in range(min(c_out, c_in), 1, -1):
        if c_out % g or c_in % g:
            continue
        po, pi = c_out // g, c_in // g
        block = np.kron(np.eye(g, dtype=bool), np.ones((po, pi), dtype=bool))
        if not np.any(reach & ~block):
            return g
    return 1


def regroup(full, groups: int):
    """(C_out, C_in, *k) -> (C_out, C_in // groups, *k): each output channel's own group block
    (torch or numpy, as given)."""
    if groups == 1:
        return full
    c_out, c_in = full.shape[:2]
    per, c_in_g = c_out // groups, c_in // groups
    blocks = [full[gi * per:(gi + 1) * per, gi * c_in_g:(gi + 1) * c_in_g] for gi in range(groups)]
    return torch.cat(blocks) if isinstance(full, torch.Tensor) else np.concatenate(blocks)
