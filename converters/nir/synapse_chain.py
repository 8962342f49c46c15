"""The stateless NIR nodes between two neuron nodes as one synapse: walked back from the target
(``trace_synapse_chain``) and composed into one dense map per delay, or one convolution kernel stored
once (``KernelChain``), with the source layers' own multiply-accumulates (NeuroBench's count)."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from converters.nir.graph import node_type, one_line
from converters.nir.nodes import KINDS, SYNAPSE_TYPES, float_step, pair, prepare
from lmu2neuro.core import guards
from lmu2neuro.core.conv import ConvGeometry, compose, composed_kernel_size, resolve_padding
from lmu2neuro.core.errors import UserError

# du of a neuron without synaptic state: the whole current is replaced every step


def _node_shape(node, key: str) -> tuple[int, ...] | None:
    t = getattr(node, f"{key}_type", None) or {}
    v = t.get(key) if isinstance(t, dict) else None
    if v is None:
        return None
    a = np.asarray(v).reshape(-1)
    return tuple(int(s) for s in a) if a.size and a.dtype.kind in "iuf" else None


def _dense_map(path, name, node, shape: tuple[int, ...]):
    """A stateless linear NIR node as ``y = A x + c`` on C-order flattened tensors.

    Applies the node's float step (``nodes.float_step``, what the float executor runs) to the zero
    input (-> c) and to the identity basis (-> A, with any bias set to zero so that A holds the
    weights exactly, not w + b - b), so the lowering and the float reference cannot disagree on
    padding, stride, groups or Flatten's dims. Returns (A (n_out, n_in), c (n_out,), output shape).
    """
    typ = node_type(node)
    n = int(np.prod(shape)) if shape else 1
    guards.check_elements(path, f"node '{name}' ({typ}): dense matrix of its {n} inputs", (n + 1, n))

    def apply(nd, x):
        params = prepare(nd, torch.float64)
        try:
            return float_step(typ, x, params)
        except (RuntimeError, ValueError) as exc:
            raise UserError(f"{path}: node '{name}' ({typ}): cannot take an input of shape {shape}: "
                            f"{one_line(exc)[:160]}") from None

    c = apply(node, torch.zeros((1,) + tuple(shape), dtype=torch.float64))
    out_shape = tuple(int(s) for s in c.shape[1:])
    guards.check_elements(path, f"node '{name}' ({typ}): dense matrix", (int(np.prod(out_shape)), n))
    linear = node
    if getattr(node, "bias", None) is not None:
        linear = copy.copy(node)
        linear.bias = np.zeros_like(np.asarray(node.bias, dtype=np.float64))
    y = apply(linear, torch.eye(n, dtype=torch.float64).reshape((n,) + tuple(shape)))
    return y.reshape(n, -1).T.numpy(), c.reshape(-1).numpy(), out_shape


def trace_synapse_chain(path, nodes, preds, start, dt, target, delayed=frozenset(), conv: bool = False):
    """Walk back from `start` (a predecessor of neuron `target`) to a neuron or Input and compose
    the linear, stateless nodes on the way into one map per delay.

    With ``conv``, a chain that composes into one convolution (``_conv_chain``) comes back as a
    ``KernelChain``, its kernel stored once; any other chain is one dense matrix per delay. An edge
    in `delayed` (execution_order's loop edges, read one step late as nir_torch does) adds one
    step to every tap. Returns (source, taps {steps: matrix (n_target_side, n_source)} or a
    KernelChain, bias (n_target_side,)); a bias is applied at every step, also while a Delay is
    still filling.
    """
    chain = []
    late = int((start, target) in delayed)
    cur = start

    def passthrough(n):  # an Input / Output inside an inlined subgraph
        return KINDS[node_type(nodes[n])].role == "io" and len(preds.get(n, [])) == 1

    while KINDS[node_type(nodes[cur])].role not in ("neuron", "io") or passthrough(cur):
        typ = node_type(nodes[cur])
        if KINDS[typ].role not in ("synapse", "io"):
            raise UserError(
                f"{path}: node '{cur}' ({typ}) is not supported by the integer network / Lava build "
                f"(supported between neurons: {', '.join(SYNAPSE_TYPES)})"
            )
        chain.append(cur)
        ps = preds.get(cur, [])
        if len(ps) != 1:
            raise UserError(f"{path}: node '{cur}' ({typ}) has {len(ps)} inputs; expected exactly one between neurons")
        late += int((ps[0], cur) in delayed)
        cur = ps[0]
        if cur == start or cur in chain:
            raise UserError(f"{path}: cycle without state through '{cur}'")
    source = cur
    if node_type(nodes[source]) == "Output":
        raise UserError(f"{path}: node '{source}' (Output) feeds '{target}'")
    shape = node_out_shape(nodes[source])
    if conv:
        found = _conv_chain(path, nodes, chain[::-1], shape, dt, late, f"'{source}' -> '{target}'")
        if found is not None:
            return source, found[0], found[1], found[0].ann_macs
    return (source,) + _dense_chain(path, nodes, chain[::-1], shape, dt, late, source, target)


def _delay_steps(path, name, node, dt, n_cur) -> np.ndarray:
    d = np.asarray(node.delay, dtype=np.float64).reshape(-1)
    steps = np.round(d / dt).astype(int)
    # a thousandth of a step absorbs float32 storage of the delays
    if np.any(np.abs(steps * dt - d) > 1e-3 * dt) or np.any(steps < 0):
        raise UserError(f"{path}: node '{name}' (Delay): parameter 'delay' is not a whole number of steps of dt = {dt}")
    if steps.size not in (1, n_cur):
        raise UserError(f"{path}: node '{name}' (Delay): parameter 'delay' has {steps.size} values, expected {n_cur}")
    if steps.size:  # the taps become a buffer of the longest delay
        longest = int(steps.max())
        guards.check_elements(path, f"node '{name}' (Delay): a delay of {longest:,} steps at dt = {dt} "
                              "needs a tap buffer", (longest + 1, n_cur))
    return steps


def _dense_chain(path, nodes, chain, shape, dt, late, source, target):
    """The chain (source side first) as one dense matrix per delay: (taps, bias, ann_macs)."""
    n_src = int(np.prod(shape))
    # the chain is composed through a dense identity: its size is what this reader can afford
    guards.check_elements(path, f"node '{source}' ({node_type(nodes[source])}) with {n_src:,} outputs feeding "
                          f"'{target}' (composed as an {n_src} x {n_src} matrix)", (n_src, n_src))
    taps = {0: np.eye(n_src)}
    bias = np.zeros(n_src)
    macs = 0
    for name in chain:
        node = nodes[name]
        typ = node_type(node)
        n_cur = next(iter(taps.values())).shape[0]
        if KINDS[typ].role == "io":
            continue
        if typ in ("Linear", "Affine") and len(shape) <= 1:
            w = np.asarray(node.weight, dtype=np.float64)
            if w.ndim != 2:
                raise UserError(f"{path}: node '{name}' ({typ}): parameter 'weight' must be a matrix")
            if w.shape[1] != n_cur:
                raise UserError(f"{path}: node '{name}' ({typ}): parameter 'weight' has {w.shape[1]} inputs, expected {n_cur}")
            taps = {k: w @ m for k, m in taps.items()}
            macs += int(w.size)
            bias = w @ bias + (np.asarray(node.bias, dtype=np.float64).reshape(-1) if typ == "Affine" else 0.0)
            shape = (w.shape[0],)
        elif typ == "Scale" and np.asarray(node.scale).size in (1, n_cur):
            s = np.asarray(node.scale, dtype=np.float64).reshape(-1)
            taps = {k: s[:, None] * m for k, m in taps.items()}
            bias = s * bias
        elif typ == "Delay":
            steps = _delay_steps(path, name, node, dt, n_cur)
            new: dict[int, np.ndarray] = {}
            for k, m in taps.items():
                for row_steps in np.unique(steps):
                    rows = steps == row_steps
                    part = np.where(rows[:, None], m, 0.0)
                    new[k + int(row_steps)] = new.get(k + int(row_steps), 0.0) + part
            taps = new
        else:  # convolutions, pooling, Flatten, a Linear on a multi-dimensional tensor, a broadcast Scale
            in_shape = _node_shape(node, "input")
            if in_shape is None or int(np.prod(in_shape)) != n_cur:
                in_shape = shape if int(np.prod(shape)) == n_cur else (n_cur,)
            a, c, shape = _dense_map(path, name, node, in_shape)
            macs += _node_macs(node, in_shape)
            taps = {k: a @ m for k, m in taps.items()}
            bias = a @ bias + c
    if late:
        taps = {k + late: m for k, m in taps.items()}
    return taps, bias, macs


_CONV_TYPES = ("Conv1d", "Conv2d", "SumPool2d", "AvgPool2d")


@dataclass
class KernelChain:
    """A chain of synapse nodes that is one convolution: the float kernel (taps, C_out, C_in / groups,
    *k), stored once, with its geometry; ``ann_macs``: the source nodes' own MACs per step."""

    geometry: ConvGeometry
    kernel: np.ndarray
    ann_macs: int

    def row_peaks(self) -> tuple[np.ndarray, np.ndarray]:
        """Per target neuron: the largest |weight| of any tap and the sum of |weights| over all taps,
        over the synapses from real (not padded) sources: what the dense matrix's rows hold."""
        g, k = self.geometry, np.abs(self.kernel)
        c_out = k.shape[1]
        total = g.row_sums(torch.as_tensor(k.sum(axis=0))).numpy()
        mask = g.offsets_in_frame(k.shape[3:])  # (kernel offsets, output positions)
        spatial = torch.as_tensor(k.max(axis=(0, 2)).reshape(c_out, -1, 1))
        peak = torch.zeros(c_out, mask.shape[1], dtype=torch.float64)
        for o in range(c_out):  # one output channel at a time bounds the (offsets, positions) product
            peak[o] = (spatial[o] * mask).max(dim=0).values
        return peak.reshape(-1).numpy(), total

    def dense_taps(self, path, where) -> dict[int, np.ndarray]:
        g = self.geometry
        out_size = int(np.prod(g.out_shape(self.kernel.shape)))
        guards.check_elements(path, f"{where}: a convolution expanded to a dense matrix",
                              (self.kernel.shape[0], out_size, g.in_size))
        dense = g.dense(self.kernel, f"{path}: {where}")
        return {j: dense[j] for j in range(dense.shape[0]) if j == dense.shape[0] - 1 or np.any(dense[j])}


def _node_macs(node, in_shape) -> int:
    """NeuroBench's count for one node on one step, whichever path lowers it: a convolution's
    ``ConvGeometry.macs`` (padded positions count nothing); a Linear its weights; pooling, Scale,
    Flatten, Delay none. Only a "same" padding that PyTorch splits unevenly (which no geometry
    states; dense path only, its frame already bounded there) runs NeuroBench's own recipe: an
    all-one copy on an all-one input, summed."""
    typ = node_type(node)
    if typ in ("Conv1d", "Conv2d"):
        found = _conv_of(node, in_shape)
        if found is not None:
            g, k = found
            return g.macs((1,) + k.shape)
        ones = copy.copy(node)
        ones.weight = np.ones(np.shape(node.weight))
        if getattr(node, "bias", None) is not None:
            ones.bias = np.zeros_like(np.asarray(node.bias, dtype=np.float64))
        y = float_step(typ, torch.ones((1,) + tuple(in_shape), dtype=torch.float64), prepare(ones, torch.float64))
        return int(round(float(y.sum())))
    if typ in ("Linear", "Affine"):
        return int(np.asarray(node.weight).size)
    return 0


def _conv_of(node, in_shape):
    """(geometry, float kernel of one tap) of a Conv / pooling node on a frame, or None when it
    needs the dense path (a "same" padding PyTorch splits unevenly or refuses, a frame that does
    not fit)."""
    typ = node_type(node)
    settings = ("stride", "padding", "dilation", "groups") if typ in ("Conv1d", "Conv2d") else (
        "kernel_size", "stride", "padding")
    for name in settings:
        value = getattr(node, name)
        if name == "padding" and isinstance(value, str) and typ in ("Conv1d", "Conv2d"):
            continue  # "same" / "valid": resolved below (core.conv.resolve_padding)
        try:
            if isinstance(value, str) or np.any(np.asarray(value, dtype=np.float64) % 1):
                return None  # a fraction: the dense path's torch step says what it is
        except (TypeError, ValueError):
            return None
    if typ in ("Conv1d", "Conv2d"):
        dims = 1 if typ == "Conv1d" else 2
        if len(in_shape) != dims + 1:
            return None
        kernel = np.asarray(node.weight, dtype=np.float64)
        conv = (lambda v: (int(np.asarray(v).reshape(-1)[0]),)) if dims == 1 else pair
        padding = node.padding
        if isinstance(padding, str):
            if padding == "same" and any(v != 1 for v in conv(node.stride)):
                return None  # PyTorch refuses a strided "same": the dense path's torch step says so
            padding = resolve_padding(padding, kernel.shape[2:], conv(node.dilation))
            if padding is None:
                return None
        g = ConvGeometry(tuple(in_shape), conv(node.stride), conv(padding), conv(node.dilation),
                         int(np.asarray(node.groups)))
    else:
        if len(in_shape) != 3:
            return None
        g, kernel = ConvGeometry.pool(tuple(in_shape), pair(node.kernel_size), pair(node.stride), pair(node.padding),
                                      mean=typ == "AvgPool2d", dtype=torch.float64)
        kernel = kernel.numpy()
    if g.problem((1,) + kernel.shape):
        return None
    return g, kernel


def _conv_chain(path, nodes, chain, shape, dt, late, where):
    """The chain (source side first) as one convolution, or None when it is not one.

    Conv1d / Conv2d and sum / average pooling (a depthwise constant kernel) compose with
    ``core.conv.compose``; a Scale that is one factor per channel is a depthwise 1 x 1 kernel;
    Flatten and pass-through Input / Output are the identity; a Delay of one length for every
    element shifts the kernel to a later tap. Anything else (a Linear, per-element delays or
    scales, a second convolution that pads) leaves the chain to the dense path. Returns
    (KernelChain, bias per target neuron) with the kernel's offsets that never meet a real source
    set to zero (the dense matrix has no entry for them), so the weight exponent is the dense
    path's."""
    conv = None  # (geometry, float kernel of one tap)
    delay = late
    macs = 0
    has_conv = False
    bias = torch.zeros((1,) + tuple(shape), dtype=torch.float64)
    for name in chain:
        node = nodes[name]
        typ = node_type(node)
        if KINDS[typ].role == "io":
            continue
        n_cur = bias[0].numel()
        in_shape = _node_shape(node, "input")
        if in_shape is None or int(np.prod(in_shape)) != n_cur:
            in_shape = tuple(bias.shape[1:])
        frame = bias.reshape((1,) + tuple(in_shape))
        if typ in _CONV_TYPES:
            found = _conv_of(node, in_shape)
            if found is None:
                return None
            has_conv = True
        elif typ == "Scale":
            s = np.asarray(node.scale, dtype=np.float64)
            try:
                per = np.broadcast_to(s, in_shape).reshape(in_shape[0], -1)
            except ValueError:
                return None
            if len(in_shape) not in (2, 3) or not np.all(per == per[:, :1]):
                return None
            c = in_shape[0]
            found = (ConvGeometry(tuple(in_shape), 1, 0, 1, c), per[:, 0].reshape((c, 1) + (1,) * (len(in_shape) - 1)))
        elif typ == "Flatten":
            bias = float_step(typ, frame, prepare(node, torch.float64))
            continue
        elif typ == "Delay":
            steps = _delay_steps(path, name, node, dt, n_cur)
            if steps.size and np.any(steps != steps.flat[0]):
                return None
            delay += int(steps.flat[0]) if steps.size else 0
            continue
        else:
            return None
        g2, k2 = found
        out_shape = g2.out_shape((1,) + k2.shape)
        # sizes from the file, bounded before torch pads the frame or numpy holds a composed kernel
        padded = (g2.in_shape[0],) + tuple(n + 2 * q for n, q in zip(g2.in_shape[1:], g2.padding))
        guards.check_elements(path, f"node '{name}' ({typ}): padded input frame", padded)
        guards.check_elements(path, f"node '{name}' ({typ}): output frame", out_shape)
        if conv is None:
            conv = found
        else:
            g1, k1 = conv
            extent = composed_kernel_size(g1, k1.shape[2:], g2, k2.shape[2:])
            guards.check_elements(path, f"node '{name}' ({typ}): kernel composed with the convolution before it",
                                  (k2.shape[0], g1.in_shape[0]) + extent)
            conv = compose(g1, k1, g2, k2)
            if conv is None:
                return None
        macs += _node_macs(node, in_shape)
        bias = float_step(typ, frame, prepare(node, torch.float64))
        if tuple(bias.shape[1:]) != tuple(out_shape):  # pragma: no cover - the geometry is torch's
            return None
    if not has_conv:
        return None
    g, k = conv
    guards.check_elements(path, f"{where}: convolution kernel with {delay + 1} delay taps", (delay + 1,) + k.shape)
    # the synapses (target, source) that counting and back ends may list (Projection.pairs): refused
    # here, at read time, by the same bound pairs() applies
    g.check_synapses((1,) + k.shape, path, where)
    used = g.offsets_in_frame(k.shape[2:]).any(dim=1).numpy().reshape(k.shape[2:])
    kernel = np.zeros((delay + 1,) + k.shape)
    kernel[delay] = np.where(used, k, 0.0)
    return KernelChain(g, kernel, macs), bias.reshape(-1).numpy()

def node_out_shape(node):
    ot = node.output_type.get("output") if getattr(node, "output_type", None) else None
    if ot is None:
        return (0,)
    return tuple(int(v) for v in np.asarray(ot).reshape(-1))
