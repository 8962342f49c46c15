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
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

from lmu2neuro.core import guards
from lmu2neuro.core.errors import UserError
from lmu2neuro.models.graph import INPUT, Node, Readout, Spiking, Term
from lmu2neuro.models.layers import LINEAR_LAYERS, Conv1d, Conv2d, InputQuantizer, Linear, OneToOne, Recurrent
from lmu2neuro.models.neurons import NEURON_MODULES
from lmu2neuro.models.trace_conv import attr_of, conv_parts, like_of
from lmu2neuro.models.trace_ops import FeedbackOp, Program, Slot, TracedOp, check_dense

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
    env: dict = {x_node: torch.zeros(2, 3, *frame_shape, **like_of(model))}
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
                env[n] = attr_of(model, n.target)
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
    prog.chains = conv_parts(ops, sources, modules, values, target)
    for name, chain in zip(names, prog.chains):
        if chain is not None:
            guards.check_elements("model", f"{where}: the convolution kernel from '{name}'", chain.kernel_shape)
    check_dense(prog, where, [c is None for c in prog.chains])
    return prog


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
    like = like_of(model)

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
