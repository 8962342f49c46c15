"""Any model built from ``models.layers``, traced into the declared graph (``models.graph``).

``LoihiModel(model, frame_shape, max_len)`` wraps a user's ``nn.Module``. Its forward over whole
sequences is traced once with ``torch.fx`` (the layers of ``models.layers`` are leaves), and the
trace is cut at the neuron layers: every neuron layer becomes a node (a Loihi population), and
everything computed between the signals it depends on (the quantized input, other neuron layers'
spikes) and its input becomes one ``Term`` whose op re-runs exactly those operations. The model's
output becomes the readout node. So the wrapper has what a hand-declared architecture has, and
everything downstream takes it unchanged: ``graph.run`` (float), ``quantize.run_qat`` (QAT),
``lmu2neuro.deploy.lower`` (the ``IntNetwork``) and ``deploy.integer_forward`` (the integer mode,
the one integer executor on the lowered network).

What a traced term may contain: the per-frame linear layers of ``models.layers`` (``Linear``,
``Conv1d``, ``Conv2d``, sum and average pooling, ``Flatten``), ``nn.Linear``, ``nn.Identity``, and
additions, subtractions, scalar products, concatenations and reshapes of frames.

A term from one source that is a chain of convolutions and poolings (with Flatten and reshapes that
keep each frame's C order, the identity on populations) is a convolution: its geometry is the
chain's composed by ``core.conv.compose`` (structurally, on all-one kernels, so the groups do not
depend on the weights' values), its kernel the same ``compose`` of the layers' own kernels in torch
(differentiable, so QAT trains the layers through it), its bias the chain run
on a zero frame. It deploys as one conv projection, the kernel stored once (``Op.geometry``); a
chain of reshapes alone on a (C, ...) frame is the identity, a depthwise kernel of ones. A term
that is a sum of such parts, one per source (a residual block: conv(s1) + s0), is one conv
projection per source. Any other part's weights (``Op.taps``) are found by running it on one-hot
frames (its dense matrix, within the size guard ``core.guards.max_elements``), as is a chain that
does not compose (a padded convolution after another layer). When traced, each term is checked on random sequences against its
affine map (the kernel applied by ``ConvGeometry.apply``, or the matrix), so an operation that is not
linear or mixes time steps is refused, naming the layers, instead of being deployed wrongly. A
layer that cannot be lowered (max pooling, batch norm, dropout, snnTorch's own neurons,
``nn.Flatten``) is a ``UserError`` naming its path in the model and what to use instead.

An ``RLeaky`` layer adds a recurrent term: its ``recurrent`` map of its own spikes, one step late
(taps ``[0, W]``; a recurrent ``nn.Conv2d`` as a kernel with taps ``[0, K]``), which ``graph.run``
and ``run_qat`` scan frame by frame and the integer network holds as a projection from the
population to itself.

The model's forward takes ``x`` of shape (batch, time, *frame_shape) and returns per-frame outputs
(batch, time, classes); the wrapper's ``forward`` averages them over time (the readout population
integrates them: argmax of its last voltage is argmax of the mean). ``max_len`` is the longest
sequence the deployed readout is scaled for (``models.quantize``).
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import fx, nn

from lmu2neuro.core import guards
from lmu2neuro.core.conv import ConvGeometry, compose, regroup, resolve_padding
from lmu2neuro.core.errors import UserError
from lmu2neuro.core.fixed_point import calibrated_input_scale
from lmu2neuro.models.graph import INPUT, Node, Op, Readout, Spiking, Term, run
from lmu2neuro.models.layers import (
    LINEAR_LAYERS,
    AvgPool1d,
    AvgPool2d,
    Conv1d,
    Conv2d,
    Flatten,
    InputQuantizer,
    Linear,
    OneToOne,
    Recurrent,
    SumPool1d,
    SumPool2d,
)
from lmu2neuro.models.neurons import NEURON_MODULES, LoihiLIF
from lmu2neuro.models.quantize import run_qat

READOUT = "readout"

# -- what may sit between neuron layers ----------------------------------------------------------------
_WEIGHTED = (Linear, nn.Linear, Conv1d, Conv2d)
_MODULES = LINEAR_LAYERS + (nn.Linear, nn.Identity)
_FUNCTIONS = {
    operator.add, operator.sub, operator.neg, operator.pos, operator.mul, operator.truediv, operator.getitem,
    getattr, torch.add, torch.sub, torch.mul, torch.div, torch.neg, torch.cat, torch.flatten, torch.reshape,
    torch.transpose, torch.permute, torch.squeeze, torch.unsqueeze, torch.sum, torch.mean, F.linear,
}
_METHODS = {
    "add", "sub", "mul", "div", "neg", "view", "reshape", "flatten", "unflatten", "permute", "transpose",
    "contiguous", "squeeze", "unsqueeze", "sum", "mean", "size", "clone", "dim",
}
# products: at most one factor may carry a signal (else the map is not linear in the signals)
_PRODUCTS = {operator.mul, torch.mul, "mul", operator.truediv, torch.div, "div", F.linear}


def _hint(module: nn.Module) -> str:
    """What to use instead of a layer that cannot be lowered."""
    import snntorch

    name = type(module).__name__
    if isinstance(module, snntorch.SpikingNeuron):
        ours = {"Leaky": "Leaky", "Synaptic": "Synaptic", "RLeaky": "RLeaky", "RSynaptic": "RSynaptic"}.get(name, "Leaky")
        return (f"snnTorch's {name} steps one frame per call with its own reset rule; use "
                f"lmu2neuro.models.layers.{ours}, which runs whole sequences with Loihi's reset")
    if isinstance(module, nn.Flatten):
        return "nn.Flatten folds time into the features; use lmu2neuro.models.layers.Flatten (each frame)"
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        return f"use lmu2neuro.models.layers.{name}, which applies the convolution to every frame"
    if isinstance(module, (nn.MaxPool1d, nn.MaxPool2d)):
        return "max pooling is not linear; use lmu2neuro.models.layers.SumPool2d / AvgPool2d (or the 1d ones)"
    if isinstance(module, (nn.AvgPool1d, nn.AvgPool2d)):
        return f"use lmu2neuro.models.layers.{name}, which pools every frame"
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
        return "batch norm between neuron layers is not supported yet; remove it or fold it into the weights"
    if isinstance(module, nn.Dropout):
        return "dropout is not supported between neuron layers (QAT and deployment need a fixed map); remove it"
    return ("not a linear per-frame layer; between neuron layers Loihi deploys only linear maps "
            "(lmu2neuro.models.layers: Linear, Conv1d, Conv2d, SumPool, AvgPool, Flatten)")


def _refuse(path: str, module: nn.Module) -> UserError:
    return UserError(f"model layer '{path}' ({type(module).__name__}): cannot be lowered to Loihi: {_hint(module)}")


class _Tracer(fx.Tracer):
    """Our layers and neurons (and snnTorch's, to refuse them by name) are leaves."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        import snntorch

        if isinstance(m, NEURON_MODULES + (InputQuantizer, OneToOne) + LINEAR_LAYERS + (snntorch.SpikingNeuron,)):
            return True
        return super().is_leaf_module(m, qualname)


# -- a traced term: the operations between its sources and its target, as plain data --------------------
@dataclass(frozen=True)
class Slot:
    """A value in a program: sources first (0..k-1), then one per instruction."""

    index: int


@dataclass
class Program:
    """Operations re-run on given source values: ``(kind, target, args, kwargs)`` per instruction,
    kind one of fx's ``call_module`` (target: module path), ``call_function``, ``call_method``,
    ``get_attr``; args hold ``Slot`` references."""

    sources: list[str]  # signal names (INPUT or a population)
    source_shapes: list[tuple[int, ...]]  # each source's frame shape in the model
    out_shape: tuple[int, ...]  # the target's frame shape
    instructions: list[tuple] = field(default_factory=list)
    result: Slot | None = None
    layers: list[str] = field(default_factory=list)  # module paths, in order
    parts: list[str] = field(default_factory=list)  # projection name per source
    name: str = ""
    chains: list = field(default_factory=list)  # per source: its ConvChain when its part is a convolution

    @property
    def size(self) -> int:
        return math.prod(self.out_shape)

    def evaluate(self, root: nn.Module, values: list[torch.Tensor]) -> torch.Tensor:
        slots = list(values)

        def get(a):
            if isinstance(a, Slot):
                return slots[a.index]
            if isinstance(a, (list, tuple)):
                return type(a)(get(v) for v in a)
            if isinstance(a, dict):
                return {k: get(v) for k, v in a.items()}
            return a

        for kind, target, args, kwargs in self.instructions:
            args, kwargs = get(args), get(kwargs)
            if kind == "call_module":
                slots.append(root.get_submodule(target)(*args, **kwargs))
            elif kind == "call_function":
                slots.append(target(*args, **kwargs))
            elif kind == "call_method":
                slots.append(getattr(args[0], target)(*args[1:], **kwargs))
            else:  # get_attr
                slots.append(_attr(root, target))
        return get(self.result)

    def run_frames(self, root: nn.Module, xs: list[torch.Tensor]) -> torch.Tensor:
        """Flat sources (B, T, n_i) -> flat target (B, T, n)."""
        b, t = xs[0].shape[:2]
        ins = [x.reshape(b, t, *shape) for x, shape in zip(xs, self.source_shapes)]
        return self.evaluate(root, ins).reshape(b, t, -1)


# -- a chain of convolutions and poolings as one convolution ----------------------------------------------
_POOLS = (SumPool1d, SumPool2d, AvgPool1d, AvgPool2d)
_RESHAPES_M = {"flatten", "view", "reshape", "unflatten", "contiguous"}
_RESHAPES_F = {torch.flatten, torch.reshape}


@dataclass(frozen=True)
class ConvStep:
    path: str  # the layer's module path
    geometry: ConvGeometry  # on the frame the layer receives


@dataclass
class ConvChain:
    """Convolution and pooling layers applied one after another to one source (reshapes between
    them keep the frames' C order); ``geometry``: the one convolution they compose into."""

    steps: list[ConvStep]
    geometry: ConvGeometry
    kernel_shape: tuple[int, ...]  # one tap: (C_out, C_in // groups, *k)

    def kernel(self, root: nn.Module, like: dict) -> torch.Tensor:
        """The composed kernel (C_out, C_in // groups, *k), differentiable in the layers' weights."""
        if not self.steps:  # the identity: a depthwise kernel of ones
            return torch.ones(self.kernel_shape, **like)
        k, geo = None, None
        for step in self.steps:
            k2 = _layer_kernel(root.get_submodule(step.path), step.geometry, like)
            if k is None:
                k, geo = k2, step.geometry
            else:  # the full kernel (groups 1), regrouped once at the end by the chain's structure
                geo, k = compose(geo, k, step.geometry, k2, groups=1)
        return k if len(self.steps) == 1 else regroup(k, self.geometry.groups)

    def ann_macs(self, root: nn.Module) -> int:
        """The convolution layers' own MACs per frame, NeuroBench's count (``ConvGeometry.macs``:
        padded positions count nothing; pooling counts none)."""
        total = 0
        for step in self.steps:
            mod = root.get_submodule(step.path)
            if isinstance(mod, (Conv1d, Conv2d)):
                total += step.geometry.macs((1,) + tuple(mod.weight.shape))
        return total


def _layer_geometry(mod: nn.Module, in_shape: tuple[int, ...]) -> ConvGeometry | None:
    """A convolution or pooling layer on frames of ``in_shape`` as a geometry, or None when it is
    not a zero-padded convolution one geometry states (a padding mode, an uneven 'same' padding)."""
    dims = len(in_shape) - 1
    if isinstance(mod, _POOLS):
        if mod.dims != dims:
            return None
        return ConvGeometry.pool(in_shape, mod.kernel_size, mod.stride, mean=mod.mean)[0]
    if not isinstance(mod, (nn.Conv1d, nn.Conv2d)) or mod.padding_mode != "zeros" or len(mod.kernel_size) != dims:
        return None
    padding = resolve_padding(mod.padding, mod.kernel_size, mod.dilation)
    if padding is None:
        return None
    return ConvGeometry(in_shape, mod.stride, padding, mod.dilation, mod.groups)


def _layer_kernel(mod: nn.Module, geometry: ConvGeometry, like: dict) -> torch.Tensor:
    """The layer's kernel of one tap (C_out, C_in // groups, *k): a convolution's weight; a pooling's
    constant depthwise window (ones, or their mean)."""
    if isinstance(mod, _POOLS):
        return ConvGeometry.pool(geometry.in_shape, mod.kernel_size, geometry.stride, mean=mod.mean, **like)[1]
    return mod.weight


_ADDS = {operator.add, torch.add, "add"}


def _conv_parts(ops: list[fx.Node], sources: list[fx.Node], modules: dict, values: dict,
                target: fx.Node) -> list[ConvChain | None]:
    """Per source, its part of the program as a convolution (``_conv_chain``) or None (dense). With
    several sources the program must be a sum (a tree of additions) of parts of one source each."""
    if len(sources) == 1:
        return [_conv_chain(ops, sources, modules, values)]
    leaves, stack = [], [target]
    while stack:
        n = stack.pop()
        if (n not in sources and n.op in ("call_function", "call_method") and n.target in _ADDS and not n.kwargs
                and len(n.args) == 2 and all(isinstance(a, fx.Node) for a in n.args)):
            stack.extend(n.args)
        else:
            leaves.append(n)
    inside = set(ops)
    upstream = []  # per leaf: (its operations, the sources it reads)
    for leaf in leaves:
        seen, reads, todo = set(), set(), [leaf]
        while todo:
            n = todo.pop()
            if n in sources:
                reads.add(n)
            elif n in inside and n not in seen:
                seen.add(n)
                todo.extend(n.all_input_nodes)
        upstream.append(([n for n in ops if n in seen], reads))
    out = []
    for src in sources:
        mine = [(chain_ops, reads) for chain_ops, reads in upstream if src in reads]
        ok = len(mine) == 1 and mine[0][1] == {src}
        out.append(_conv_chain(mine[0][0], [src], modules, values) if ok else None)
    return out


def _conv_chain(ops: list[fx.Node], sources: list[fx.Node], modules: dict, values: dict) -> ConvChain | None:
    """``ops`` as one convolution of its single source (see the module docstring), or None. No
    layer at all (only reshapes) is the identity, a depthwise kernel of ones, for a (C, ...) frame."""
    if len(sources) != 1:
        return None
    prev, steps, geo, kern = sources[0], [], None, None
    for n in ops:
        out = values.get(n)
        if n.all_input_nodes != [prev] or not isinstance(out, torch.Tensor) or tuple(out.shape[:2]) != (2, 3):
            return None  # not a chain of per-frame maps, one after another
        if n.op == "call_module" and isinstance(modules[n.target], (Conv1d, Conv2d) + _POOLS):
            mod = modules[n.target]
            step = _layer_geometry(mod, tuple(values[prev].shape[2:]))
            if step is None or len(n.args) != 1 or n.kwargs:
                return None
            ones = np.ones(tuple(_layer_kernel(mod, step, {}).shape))  # structure only: no cancellation
            if step.problem((1,) + ones.shape):
                return None
            if geo is None:
                geo, kern = step, ones
            else:
                both = compose(geo, kern, step, ones)
                if both is None:
                    return None
                geo, kern = both
            steps.append(ConvStep(n.target, step))
        elif not (n.op == "call_module" and isinstance(modules[n.target], Flatten)
                  or n.op == "call_method" and n.target in _RESHAPES_M
                  or n.op == "call_function" and n.target in _RESHAPES_F):
            return None  # reshapes keeping (batch, time) keep each frame's C order: the identity here
        prev = n
    if not steps:
        shape = tuple(values[sources[0]].shape[2:])
        if len(shape) not in (2, 3):
            return None
        return ConvChain([], ConvGeometry.pointwise(shape), (shape[0], 1) + (1,) * (len(shape) - 1))
    if math.prod(geo.out_shape((1,) + kern.shape)) != math.prod(values[prev].shape[2:]):
        return None
    return ConvChain(steps, geo, tuple(kern.shape))


_COUNTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)  # NeuroBench's connection layers (blocks/layer.py)


def _shapes_seen(mods: list[nn.Module], run) -> dict:
    """{module: the input shape it saw} for the NeuroBench-counted layers among ``mods`` while
    ``run()`` ran, and "out": what it returned."""
    seen: dict = {}

    def note(mod, args) -> None:  # a pre-hook that returns something would replace the input
        seen.setdefault(mod, tuple(args[0].shape))

    hooks = [m.register_forward_pre_hook(note) for m in mods if isinstance(m, _COUNTED)]
    try:
        seen["out"] = run()
    finally:
        for h in hooks:
            h.remove()
    return seen


def neurobench_macs(mod: nn.Module, shape: tuple[int, ...]) -> int:
    """NeuroBench's Dense count of one call of ``mod`` on one sample (neurobench 2.3
    metrics/utils/layers/macs.py): a copy with all-one weights and no bias on an all-one input,
    its outputs summed; 0 for a layer NeuroBench does not count. ``shape``: the input it saw, the
    first axis the batch (one sample of it is counted)."""
    if not isinstance(mod, _COUNTED):
        return 0
    import copy

    ones = copy.deepcopy(mod)
    with torch.no_grad():
        ones.weight.fill_(1.0)
        if ones.bias is not None:
            ones.bias.zero_()
        return int(round(float(ones(torch.ones((1, *shape[1:]), dtype=ones.weight.dtype,
                                               device=ones.weight.device)).sum())))


def _like(root: nn.Module) -> dict:
    """The model's float type and device (probes and checks run in them)."""
    p = next((p for p in root.parameters() if p.is_floating_point()), None)
    return {"dtype": torch.get_default_dtype(), "device": "cpu"} if p is None else {"dtype": p.dtype,
                                                                                     "device": p.device}


def _attr(root: nn.Module, path: str):
    obj = root
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(eq=False)
class TracedOp(Op):
    """A traced term: ``run`` re-runs the model's own operations on the flat source signals; ``taps``
    is their affine map, found by running them on one-hot frames (differentiable in the weights)."""

    root: nn.Module
    program: Program
    dense: bool = False  # expand a convolution into its matrix anyway (the lowering before conv projections)

    def run(self, xs):
        return self.program.run_frames(self.root, xs)

    def step(self, xs, state):
        return self.program.run_frames(self.root, [x[:, None] for x in xs])[:, 0], None

    def geometry(self):
        chains = self.program.chains
        if self.dense or all(c is None for c in chains):
            return None
        return [None if c is None else c.geometry for c in chains]

    def taps(self):
        """Per source its kernel (a convolution part) or its matrix, found by one-hot frames of the
        dense sources (the others zero); the bias is the output for zero frames. A term with a
        convolution part states each part's origin in ``origin["parts"]``."""
        p = self.program
        like = _like(self.root)
        convs = self.geometry() or [None] * len(p.sources)
        if self.dense and any(c is not None for c in p.chains):  # expanded on request: guarded as any dense term
            _check_dense(p, f"the input of '{p.name}'")
        sizes = [math.prod(s) for s in p.source_shapes]
        rows = 1 + sum(n for n, c in zip(sizes, convs) if c is None)  # the zero frame, then one-hot frames
        probes, first = [], 1
        for n, c in zip(sizes, convs):
            z = torch.zeros(rows, n, **like)
            if c is None:
                z[first:first + n] = torch.eye(n, **like)
                first += n
            probes.append(z[:, None])
        seen = _shapes_seen(self.modules(), lambda: self.run(probes))
        y = seen.pop("out")[:, 0]  # (rows, out)
        bias = y[0]
        weights, parts, first = [], [], 1
        for n, c, chain in zip(sizes, convs, p.chains or [None] * len(sizes)):
            if c is None:
                weights.append((y[first:first + n] - bias).T[None])  # (1, out, n)
                parts.append({"kind": "dense"})
                first += n
                continue
            kernel = chain.kernel(self.root, like)
            weights.append(kernel[None])
            parts.append({"kind": f"conv{c.dims}d", "ann_macs": chain.ann_macs(self.root)})  # kept if != macs()
        origin = {"kind": "dense", "layers": list(p.layers)}
        helpers = {getattr(m, "helper", None) for m in self.modules()}
        if p.layers and None not in helpers:  # only layers a conversion added (e.g. a spike-count readout)
            origin["helper"] = ", ".join(sorted(helpers))
        # the layers' bias parameters, stated once: with the first part, whose synapse carries the bias
        biases = sum(int(m.bias.numel()) for m in self.modules() if isinstance(m, _COUNTED) and m.bias is not None)
        if any(c is not None for c in convs):
            origin["parts"] = parts
            parts[0]["ann_biases"] = biases
        elif len(sizes) == 1:  # the layers' own count, e.g. a Linear after a pooling folded into its matrix
            origin["ann_macs"] = sum(neurobench_macs(m, shape) for m, shape in seen.items())
            origin["ann_weights"] = sum(int(m.weight.numel()) for m in seen)
            origin["ann_biases"] = biases
        return weights, bias, origin

    def modules(self):
        return [self.root.get_submodule(path) for path in self.program.layers]


@dataclass(eq=False)
class FeedbackOp(Op):
    """A recurrent layer's (``layers.Recurrent``) feedback of its own spikes: taps [0, W] (one step
    late), or [0, W, W2] with a second tap (two steps late); its step state is the spikes before."""

    root: nn.Module
    path: str  # the recurrent neuron layer
    shape: tuple[int, ...]  # its frame shape
    dense: bool = False  # expand a recurrent convolution into its matrix anyway

    def layer(self) -> nn.Module:
        return self.root.get_submodule(self.path)

    def run(self, xs):
        raise RuntimeError("a recurrent term runs frame by frame (models.graph.run_recurrent)")

    def step(self, xs, state):
        prev = xs[0]
        prev2 = torch.zeros_like(prev) if state is None else state
        frame = (prev.shape[0], *self.shape)
        return self.layer().feedback(prev.reshape(frame), prev2.reshape(frame)).reshape(prev.shape[0], -1), prev

    def geometry(self):
        layer = self.layer()
        rec = layer.recurrent
        geo = None if self.dense or len(self.shape) not in (2, 3) or layer.recurrent2 is not None \
            else _layer_geometry(rec, tuple(self.shape))
        return None if geo is None or geo.problem((2,) + tuple(rec.weight.shape)) else [geo]

    def taps(self):
        n = math.prod(self.shape)
        like = _like(self.root)
        layer = self.layer()
        rec_mod = layer.recurrent
        # NeuroBench counts the recurrent layer once per step if it is a Linear / Conv, else (one
        # weight per neuron) nothing; the zero tap 0 is no layer's work
        origin = {"kind": "recurrent", "layers": [f"{self.path}.recurrent"],
                  "ann_macs": neurobench_macs(rec_mod, (1, *self.shape)),
                  "ann_weights": int(rec_mod.weight.numel()) if isinstance(rec_mod, _COUNTED) else 0,
                  "ann_biases": int(rec_mod.bias.numel()) if isinstance(rec_mod, _COUNTED) and rec_mod.bias is not None
                  else 0}
        if getattr(rec_mod, "helper", None):
            origin["helper"] = rec_mod.helper
        if self.geometry():
            w = layer.recurrent.weight
            bias = self.step([torch.zeros(1, n, **like)], None)[0][0]
            return [torch.stack([torch.zeros_like(w), w])], bias, origin
        probes = torch.cat([torch.zeros(1, n, **like), torch.eye(n, **like)])
        y, _ = self.step([probes], None)
        bias = y[0]
        w = (y[1:] - bias).T
        taps = [torch.zeros_like(w), w]
        if layer.recurrent2 is not None:
            frame = (n + 1, *self.shape)
            y2 = layer.recurrent2(probes.reshape(frame)).reshape(n + 1, -1)
            taps.append((y2[1:] - y2[0]).T)
        return [torch.stack(taps)], bias, origin

    def modules(self):
        layer = self.layer()
        return [layer.recurrent] + ([] if layer.recurrent2 is None else [layer.recurrent2])


# -- tracing -----------------------------------------------------------------------------------------
@dataclass
class Population:
    name: str
    path: str  # the neuron layer's module path
    shape: tuple[int, ...]
    program: Program
    recurrent: bool


@dataclass
class Trace:
    """A model's structure as plain data: bound to the modules again on every ``nodes`` call."""

    quantizer: str | None  # the InputQuantizer's module path
    frame_shape: tuple[int, ...]
    populations: list[Population]
    readout: Program

    def nodes(self, root: nn.Module, dense: bool = False) -> list[Node]:
        """The declared graph on ``root``'s modules; ``dense``: convolutions as matrices (checks)."""
        out = []
        for pop in self.populations:
            p = pop.program
            terms = [Term(p.name, list(p.sources), TracedOp(root, p, dense), parts=list(p.parts))]
            if pop.recurrent:
                terms.append(Term("recurrent", [pop.name], FeedbackOp(root, pop.path, pop.shape, dense)))
            node = Node(pop.name, terms, Spiking(None, root.get_submodule(pop.path), 1.0), layer=pop.path,
                        shape=pop.shape)
            node.term_layers = {id(t): (t.op.program.layers[-1] if isinstance(t.op, TracedOp) and t.op.program.layers
                                        else f"{pop.path}.recurrent" if isinstance(t.op, FeedbackOp) else "")
                                for t in terms}
            out.append(node)
        r = self.readout
        term = Term(r.name, list(r.sources), TracedOp(root, r, dense), parts=list(r.parts))
        node = Node(READOUT, [term], Readout(), layer=r.layers[-1] if r.layers else "", shape=r.out_shape)
        node.term_layers = {id(term): node.layer}
        out.append(node)
        return out


def trace(model: nn.Module, frame_shape: tuple[int, ...]) -> Trace:
    """The structure of ``model`` (see the module docstring); UserError for what cannot deploy."""
    cls = type(model).__name__
    graph = trace_method(model, "forward", hint=(
        "write forward over whole sequences, x of shape (batch, time, ...), with no Python branch or loop on the "
        "input's values or length (layers.Leaky etc. scan time themselves; their per-step call is for running, "
        "not for export)"))
    modules = dict(model.named_modules())
    nodes = list(graph.nodes)
    order = {n: i for i, n in enumerate(nodes)}
    placeholders = [n for n in nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise UserError(f"model {cls}: forward takes {len(placeholders)} arguments; expected one, the input "
                        "(batch, time, *frame)")
    (x_node,) = placeholders
    outputs = [n for n in nodes if n.op == "output"]
    result = outputs[0].args[0]
    if not isinstance(result, fx.Node):
        raise UserError(f"model {cls}: forward returns {type(result).__name__}; expected one tensor of per-frame "
                        "outputs (batch, time, classes)")

    for n in nodes:  # refuse what cannot deploy by name, before running anything
        if n.op == "call_module":
            mod = modules[n.target]
            if not isinstance(mod, NEURON_MODULES + (InputQuantizer,) + _MODULES):
                raise _refuse(n.target, mod)
    values = _shapes(model, nodes, x_node, frame_shape)

    # the boundaries: the (quantized) input and every neuron layer's spikes
    boundary: dict[fx.Node, str] = {}
    pops: list[tuple[fx.Node, str]] = []
    quantizer = None
    seen_paths: set[str] = set()
    for n in nodes:
        if n.op != "call_module":
            continue
        mod = modules[n.target]
        if isinstance(mod, InputQuantizer):
            if quantizer is not None:
                raise UserError(f"model layer '{n.target}' (InputQuantizer): a second input quantizer; the "
                                f"model's input is quantized once, by '{quantizer}'")
            if len(n.args) != 1 or n.args[0] is not x_node or n.kwargs:
                raise UserError(f"model layer '{n.target}' (InputQuantizer): must be applied to the model's input "
                                "itself, first")
            quantizer = n.target
            boundary[n] = INPUT
        elif isinstance(mod, NEURON_MODULES):
            if n.target in seen_paths:
                raise UserError(f"model layer '{n.target}' ({type(mod).__name__}): called more than once; each "
                                "neuron layer is one population, called once on the whole sequence")
            seen_paths.add(n.target)
            if len(n.args) != 1 or n.kwargs:
                raise UserError(f"model layer '{n.target}' ({type(mod).__name__}): called with a state; in the "
                                "traced forward call it once on the whole sequence: spk = lif(x)")
            name = n.target if n.target not in (INPUT, READOUT) else f"{n.target}_lif"
            boundary[n] = name
            pops.append((n, name))
    if quantizer is None:
        boundary[x_node] = INPUT
    else:
        other = [u for u in x_node.users if not (u.op == "call_module" and u.target == quantizer)]
        if other:
            raise UserError(f"model {cls}: the input is used by '{_where(other[0])}' before (or besides) the input "
                            f"quantizer '{quantizer}'; everything must take the quantized input")
    if result in boundary and result is not x_node:
        what = boundary[result]
        raise UserError(f"model {cls}: forward returns the spikes of '{what}'; end with a linear layer "
                        "(e.g. layers.Linear) whose per-frame output the readout integrates")

    trace_pops = []
    for n, name in pops:
        mod = modules[n.target]
        target = n.args[0]
        if not isinstance(target, fx.Node):
            raise UserError(f"model layer '{n.target}': its input is a constant, not a signal")
        prog = _program(model, modules, target, boundary, order, values, name)
        shape = tuple(values[n].shape[2:])
        trace_pops.append(Population(name, n.target, shape, prog, isinstance(mod, Recurrent)))
    readout = _program(model, modules, result, boundary, order, values, READOUT)
    t = Trace(quantizer, tuple(frame_shape), trace_pops, readout)
    _check_linear(model, t)
    return t


def _where(n: fx.Node) -> str:
    return str(n.target) if n.op in ("call_module", "call_method") else getattr(n.target, "__name__", str(n.target))


@torch.no_grad()
def _shapes(model, nodes, x_node, frame_shape) -> dict:
    """Every traced value on a zero input of 2 samples x 3 frames (the input quantizer as identity)."""
    env: dict = {x_node: torch.zeros(2, 3, *frame_shape, **_like(model))}
    modules = dict(model.named_modules())
    for n in nodes:
        if n.op in ("placeholder", "output"):
            continue
        args = fx.node.map_arg(n.args, lambda a: env[a])
        kwargs = fx.node.map_arg(n.kwargs, lambda a: env[a])
        try:
            if n.op == "call_module":
                mod = modules[n.target]
                env[n] = args[0] if isinstance(mod, InputQuantizer) else mod(*args, **kwargs)
            elif n.op == "call_function":
                env[n] = n.target(*args, **kwargs)
            elif n.op == "call_method":
                env[n] = getattr(args[0], n.target)(*args[1:], **kwargs)
            else:
                env[n] = _attr(model, n.target)
        except UserError:
            raise
        except Exception as exc:
            msg = " ".join(str(exc).split())[:160]
            raise UserError(f"model {type(model).__name__}: at '{_where(n)}' on frames of shape {tuple(frame_shape)}: "
                            f"{type(exc).__name__}: {msg} (is frame_shape right?)") from None
    return env


def _program(model, modules, target: fx.Node, boundary: dict, order: dict, values: dict, what: str) -> Program:
    """The operations from the boundary signals to ``target``, checked op by op."""
    sources: list[fx.Node] = []
    inside: set[fx.Node] = set()
    stack = [target]
    while stack:
        n = stack.pop()
        if n in boundary:
            if n not in sources:
                sources.append(n)
            continue
        if n in inside:
            continue
        if n.op == "placeholder":  # the raw input reached without the quantizer: refused earlier
            continue
        inside.add(n)
        stack.extend(n.all_input_nodes)
    sources.sort(key=order.get)
    where = f"the input of '{what}'" if what != READOUT else "the model's output"
    if not sources:
        raise UserError(f"model {type(model).__name__}: {where} depends on no signal (neither the input nor a "
                        "neuron layer)")
    # which values carry a signal (depend on a source)
    carries = set(sources)
    ops = sorted(inside, key=order.get)
    for n in ops:
        if any(a in carries for a in n.all_input_nodes):
            carries.add(n)
    layers: list[str] = []
    for n in ops:
        if n not in carries:
            continue
        if n.op == "call_module":
            mod = modules[n.target]
            if isinstance(mod, NEURON_MODULES) or not isinstance(mod, _MODULES):
                raise _refuse(n.target, mod)
            layers.append(n.target)
        elif n.op == "call_function" and n.target not in _FUNCTIONS or \
                n.op == "call_method" and n.target not in _METHODS:
            raise UserError(f"model {type(model).__name__}: operation '{_where(n)}' in {where} is not one Loihi can "
                            "deploy between neuron layers (only linear per-frame maps: layers, +, -, scalar *, "
                            "reshapes, cat)")
        if n.op in ("call_function", "call_method") and n.target in _PRODUCTS:
            factors = [a for a in n.all_input_nodes if a in carries and isinstance(values.get(a), torch.Tensor)]
            divisor = (n.target in (operator.truediv, torch.div, "div") and len(n.args) > 1
                       and isinstance(n.args[1], fx.Node) and n.args[1] in carries)
            if len(factors) > 1 or divisor:
                raise UserError(f"model {type(model).__name__}: '{_where(n)}' in {where} multiplies or divides "
                                "signals by each other; only products with constants are linear")
    # plain-data instructions
    slot = {s: Slot(i) for i, s in enumerate(sources)}
    instructions = []
    for n in ops:
        args = fx.node.map_arg(n.args, lambda a: slot[a])
        kwargs = fx.node.map_arg(n.kwargs, lambda a: slot[a])
        slot[n] = Slot(len(sources) + len(instructions))
        instructions.append((n.op, n.target, args, kwargs))
    out = values[target]
    if not isinstance(out, torch.Tensor) or out.ndim < 3 or tuple(out.shape[:2]) != (2, 3):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise UserError(f"model {type(model).__name__}: {where} has shape {shape} on 2 samples x 3 frames; "
                        "expected (batch, time, ...) per frame (nothing may mix time steps or samples)")
    names = [boundary[s] for s in sources]
    prog = Program(names, [tuple(values[s].shape[2:]) for s in sources], tuple(out.shape[2:]), instructions,
                   slot[target], layers)
    weighted = [p for p in layers if isinstance(modules[p], _WEIGHTED)]
    prog.name = weighted[-1] if weighted else (layers[-1] if layers else f"from_{names[0]}")
    prog.parts = _part_names(ops, sources, names, modules, prog.name)
    prog.chains = _conv_parts(ops, sources, modules, values, target)
    for name, chain in zip(names, prog.chains):
        if chain is not None:
            guards.check_elements("model", f"{where}: the convolution kernel from '{name}'", chain.kernel_shape)
    _check_dense(prog, where, [c is None for c in prog.chains])
    return prog


def _check_dense(prog: Program, where: str, which: list[bool] | None = None) -> None:
    """The size guard of the parts found by one-hot probes (``which``: per source; default all):
    their matrices and the probe."""
    which = [True] * len(prog.sources) if which is None else which
    shapes = [s for s, w in zip(prog.source_shapes, which) if w]
    for name, shape, w in zip(prog.sources, prog.source_shapes, which):
        if w:
            guards.check_elements("model", f"{where}: the dense matrix from '{name}'", (prog.size, math.prod(shape)))
    if shapes:
        guards.check_elements("model", f"{where}: the one-hot probe of its weights",
                              (1 + sum(math.prod(s) for s in shapes), prog.size))


def _part_names(ops, sources, names, modules, default) -> list[str]:
    """A projection name per source: the first weighted layer on its way, else 'from_<source>'."""
    if len(sources) == 1:
        return [default]
    parts = []
    for src, name in zip(sources, names):
        reach = {src}
        first = None
        for n in ops:
            if any(a in reach for a in n.all_input_nodes):
                reach.add(n)
                if first is None and n.op == "call_module" and isinstance(modules[n.target], _WEIGHTED):
                    first = n.target
        part = first or f"from_{name}"
        parts.append(part if part not in parts else f"{part}.from_{name}")
    return parts


@torch.no_grad()
def _check_linear(model: nn.Module, t: Trace) -> None:
    """Every traced term against its affine map (taps) on random sequences: refuses what is not a
    per-frame linear map of its sources (a function the op list let through, or time mixing)."""
    g = torch.Generator().manual_seed(0)
    for node in t.nodes(model):
        for term in node.terms:
            _check_term(model, node, term, g)


def _check_term(model: nn.Module, node: Node, term: Term, g: torch.Generator) -> None:
    op = term.op
    weights, bias, _ = op.taps()
    convs = op.geometry() or [None] * len(weights)
    like = _like(model)

    def apply(x, w, conv):  # one tap of a matrix, or of a kernel by the core's own convolution
        if conv is None:
            return x @ w.T
        return conv.apply(w, x.reshape(-1, conv.in_size)).reshape(*x.shape[:-1], -1)

    def sources(n):
        return torch.randn(*n, generator=g, dtype=like["dtype"]).to(like["device"])

    if isinstance(op, FeedbackOp):  # one frame of the spikes before, through the tap of delay 1
        mats = [weights[0][1]]
        xs = [sources((4, math.prod(op.shape)))]
        got = op.step(xs, None)[0]
        layers = f"'{op.path}.recurrent'"
    else:
        mats = [w[0] for w in weights]
        xs = [sources((2, 3, math.prod(s))) for s in op.program.source_shapes]
        got = op.run(xs)
        layers = ", ".join(f"'{p}'" for p in op.program.layers) or "no layers"
    want = bias + sum(apply(x, w, c) for x, w, c in zip(xs, mats, convs))
    err = float((got - want).abs().max()) if got.numel() else 0.0
    # float32 rounding of sums of this size stays far below 1e-4 of it; a nonlinearity does not
    scale = (1.0 + float(sum(apply(x.abs(), w.abs(), c).max() for x, w, c in zip(xs, mats, convs)))
             + float(bias.abs().max()))
    if not err <= 1e-4 * scale:
        raise UserError(f"model {type(model).__name__}: the operations into '{node.name}' ({layers}) are not a "
                        f"per-frame linear map of {', '.join(term.sources)} (off by {err:.3g} on a random "
                        "sequence): nothing between neuron layers may be nonlinear or mix time steps")


# -- the wrapper ---------------------------------------------------------------------------------------
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


# -- a hand-built architecture's forward, traced -------------------------------------------------------
def trace_method(model: nn.Module, method: str,
                 hint: str = "it may not branch or loop on the input's values or length") -> fx.Graph:
    """``model.<method>(x)`` traced with the tracer above (its ``get_attr`` targets are ``model``'s
    module paths). For an architecture that writes its forward with ``models.graph``'s term and body
    calls, which ``graph.nodes_from_trace`` turns into its declared graph; ``trace`` uses it for
    ``forward``. A failure is a UserError ending in ``hint``."""
    tracer = _Tracer()
    tracer.traced_func_name = method
    try:
        return tracer.trace(model)
    except UserError:
        raise
    except Exception as exc:  # fx raises TraceError, TypeError, ... from inside the user's method
        msg = " ".join(str(exc).split())[:200]
        raise UserError(f"model {type(model).__name__}: its {method} could not be traced ({type(exc).__name__}: "
                        f"{msg}); {hint}") from None
