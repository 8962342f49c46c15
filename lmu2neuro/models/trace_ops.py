"""A traced term as plain data (``Program``: the model's own operations between a term's sources and
its target, replayed on the model's modules) and the ops the declared graph runs from it:
``TracedOp`` (a linear term, its taps found by one-hot frames) and ``FeedbackOp`` (a recurrent
layer's own spikes, one and two steps late)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from lmu2neuro.core import guards
from lmu2neuro.models.graph import Op
from lmu2neuro.models.trace_conv import COUNTED, attr_of, layer_geometry, like_of, neurobench_macs, shapes_seen


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
                slots.append(attr_of(root, target))
        return get(self.result)

    def run_frames(self, root: nn.Module, xs: list[torch.Tensor]) -> torch.Tensor:
        """Flat sources (B, T, n_i) -> flat target (B, T, n)."""
        b, t = xs[0].shape[:2]
        ins = [x.reshape(b, t, *shape) for x, shape in zip(xs, self.source_shapes)]
        return self.evaluate(root, ins).reshape(b, t, -1)


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
        like = like_of(self.root)
        convs = self.geometry() or [None] * len(p.sources)
        if self.dense and any(c is not None for c in p.chains):  # expanded on request: guarded as any dense term
            check_dense(p, f"the input of '{p.name}'")
        sizes = [math.prod(s) for s in p.source_shapes]
        rows = 1 + sum(n for n, c in zip(sizes, convs) if c is None)  # the zero frame, then one-hot frames
        probes, first = [], 1
        for n, c in zip(sizes, convs):
            z = torch.zeros(rows, n, **like)
            if c is None:
                z[first:first + n] = torch.eye(n, **like)
                first += n
            probes.append(z[:, None])
        seen = shapes_seen(self.modules(), lambda: self.run(probes))
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
        biases = sum(int(m.bias.numel()) for m in self.modules() if isinstance(m, COUNTED) and m.bias is not None)
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
            else layer_geometry(rec, tuple(self.shape))
        return None if geo is None or geo.problem((2,) + tuple(rec.weight.shape)) else [geo]

    def taps(self):
        n = math.prod(self.shape)
        like = like_of(self.root)
        layer = self.layer()
        rec_mod = layer.recurrent
        # NeuroBench counts the recurrent layer once per step if it is a Linear / Conv, else (one
        # weight per neuron) nothing; the zero tap 0 is no layer's work
        origin = {"kind": "recurrent", "layers": [f"{self.path}.recurrent"],
                  "ann_macs": neurobench_macs(rec_mod, (1, *self.shape)),
                  "ann_weights": int(rec_mod.weight.numel()) if isinstance(rec_mod, COUNTED) else 0,
                  "ann_biases": int(rec_mod.bias.numel()) if isinstance(rec_mod, COUNTED) and rec_mod.bias is not None
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


def check_dense(prog: Program, where: str, which: list[bool] | None = None) -> None:
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
