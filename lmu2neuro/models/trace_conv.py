"""What the tracer reads off the layers between two neuron layers: a chain of convolutions and
poolings composed into one convolution (``conv_chain``, its kernel stored once), a layer's geometry
and kernel, and NeuroBench's count of the layers as their author wrote them (``neurobench_macs``)."""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import numpy as np
import torch
from torch import fx, nn

from lmu2neuro.core.conv import ConvGeometry, compose, regroup, resolve_padding
from lmu2neuro.models.layers import AvgPool1d, AvgPool2d, Conv1d, Conv2d, Flatten, SumPool1d, SumPool2d


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
            k2 = layer_kernel(root.get_submodule(step.path), step.geometry, like)
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


def layer_geometry(mod: nn.Module, in_shape: tuple[int, ...]) -> ConvGeometry | None:
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


def layer_kernel(mod: nn.Module, geometry: ConvGeometry, like: dict) -> torch.Tensor:
    """The layer's kernel of one tap (C_out, C_in // groups, *k): a convolution's weight; a pooling's
    constant depthwise window (ones, or their mean)."""
    if isinstance(mod, _POOLS):
        return ConvGeometry.pool(geometry.in_shape, mod.kernel_size, geometry.stride, mean=mod.mean, **like)[1]
    return mod.weight


_ADDS = {operator.add, torch.add, "add"}


def conv_parts(ops: list[fx.Node], sources: list[fx.Node], modules: dict, values: dict,
                target: fx.Node) -> list[ConvChain | None]:
    """Per source, its part of the program as a convolution (``conv_chain``) or None (dense). With
    several sources the program must be a sum (a tree of additions) of parts of one source each."""
    if len(sources) == 1:
        return [conv_chain(ops, sources, modules, values)]
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
        out.append(conv_chain(mine[0][0], [src], modules, values) if ok else None)
    return out


def conv_chain(ops: list[fx.Node], sources: list[fx.Node], modules: dict, values: dict) -> ConvChain | None:
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
            step = layer_geometry(mod, tuple(values[prev].shape[2:]))
            if step is None or len(n.args) != 1 or n.kwargs:
                return None
            ones = np.ones(tuple(layer_kernel(mod, step, {}).shape))  # structure only: no cancellation
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


COUNTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)  # NeuroBench's connection layers (blocks/layer.py)


def shapes_seen(mods: list[nn.Module], run) -> dict:
    """{module: the input shape it saw} for the NeuroBench-counted layers among ``mods`` while
    ``run()`` ran, and "out": what it returned."""
    seen: dict = {}

    def note(mod, args) -> None:  # a pre-hook that returns something would replace the input
        seen.setdefault(mod, tuple(args[0].shape))

    hooks = [m.register_forward_pre_hook(note) for m in mods if isinstance(m, COUNTED)]
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
    if not isinstance(mod, COUNTED):
        return 0
    import copy

    ones = copy.deepcopy(mod)
    with torch.no_grad():
        ones.weight.fill_(1.0)
        if ones.bias is not None:
            ones.bias.zero_()
        return int(round(float(ones(torch.ones((1, *shape[1:]), dtype=ones.weight.dtype,
                                               device=ones.weight.device)).sum())))


def like_of(root: nn.Module) -> dict:
    """The model's float type and device (probes and checks run in them)."""
    p = next((p for p in root.parameters() if p.is_floating_point()), None)
    return {"dtype": torch.get_default_dtype(), "device": "cpu"} if p is None else {"dtype": p.dtype,
                                                                                     "device": p.device}


def attr_of(root: nn.Module, path: str):
    obj = root
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj
