"""A model's structure, declared once: nodes fed by synaptic terms, run three ways.

An architecture declares its graph (``model.graph()``): a list of ``Node`` in topological order.
A node sums its ``Term`` s (each a linear, causal map of one or more earlier signals) and passes
the sum through its ``body`` (a spiking neuron after batch norm, an activation, or nothing).
The same declaration drives

- training: ``run(nodes, x)``, the layer-by-layer float forward over whole sequences;
- streaming: ``StreamState`` steps the same nodes one frame at a time (``models.streaming``);
- deployment: every term states its weights per delay tap (``Term.taps``), which
  ``models.quantize`` folds and quantizes into Loihi integers for QAT and for lowering.

A term may state a source's weights as a convolution kernel (``Op.geometry``): it is then stored,
quantized and applied as one (``models.quantize``), never expanded into its matrix.

A term whose sources include its own node is recurrent (snnTorch's RLeaky): it feeds the node its
output of the step before, so such a node runs frame by frame (``run_recurrent``).

So a new architecture is one models file that builds its modules and writes its forward with the
term and body calls at the end of this file (``temporal_conv``, ``memory``, ``dense_bn``, ``spiking``
...), whose graph ``nodes_from_trace`` finds by tracing that forward (the LMUFormers); or, for a model
built from ``models.layers``, no file at all: ``models.trace`` finds its graph by tracing.
The term ops below wrap the model's own modules, so parameters, checkpoints and gradients are the
modules'; an op only says how to run them and what weights they amount to.
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import fx, nn

from lmu2neuro.core.errors import UserError

INPUT = "input"  # the name of the graph's input signal


# -- shared pieces of float execution ---------------------------------------------------------------
def conv_time(conv: nn.Conv1d, x: torch.Tensor, causal: bool) -> torch.Tensor:
    """A temporal Conv1d on x (B, T, C): causal (left padding k-1) or 'same' (the paper's)."""
    k = conv.kernel_size[0]
    xt = x.transpose(1, 2)
    if causal:
        xt = F.pad(xt, (k - 1, 0))
    else:
        left = (k - 1) // 2
        xt = F.pad(xt, (left, k - 1 - left))
    return conv(xt).transpose(1, 2)


def bn_time(bn: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm1d over channels of x (B, T, C) (statistics over batch and time, as Conv1d BN)."""
    return bn(x.transpose(1, 2)).transpose(1, 2)


def bn_frame(bn: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    """Batch norm of one frame (B, C) with the running statistics (inference)."""
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)


def bn_fold(bn: nn.BatchNorm1d) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale, shift) of batch norm with its running statistics: bn(x) = scale * x + shift."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


def _matrix(module: nn.Module) -> torch.Tensor:
    """The (out, in) matrix of a Linear or a 1x1 Conv1d."""
    return module.weight.reshape(module.weight.shape[0], -1)


# -- term ops: how one synaptic input runs, and what weights it amounts to ----------------------------
class Op:
    """A linear, causal map of the source signals. ``run`` takes whole sequences (B, T, n) and
    ``step`` one frame (B, n) with the op's state; ``taps`` gives the weights per source as
    (taps, out, in) with tap j delaying by j steps, the bias (or None) and the origin kind."""

    causal = True

    def run(self, xs: list[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def step(self, xs: list[torch.Tensor], state):
        raise NotImplementedError

    def taps(self) -> tuple[list[torch.Tensor], torch.Tensor | None, dict]:
        raise NotImplementedError(f"{type(self).__name__} has no Loihi projection")

    def geometry(self) -> list | None:
        """Per source, the ``core.conv.ConvGeometry`` whose kernel ``taps`` gives instead of a matrix
        (then the weights are (taps, C_out, C_in // groups, *k) and the bias is per target neuron),
        or None for a matrix; None for all: every source is dense."""
        return None

    def modules(self) -> list[nn.Module]:
        return []


@dataclass(eq=False)
class TemporalConv(Op):
    """A temporal Conv1d: causal (left padding), or the paper's 'same' padding (not deployable)."""

    conv: nn.Conv1d
    causal: bool = True

    def run(self, xs):
        return conv_time(self.conv, xs[0], self.causal)

    def step(self, xs, state):
        k = self.conv.kernel_size[0]
        x_t = xs[0]
        buf = x_t.new_zeros(x_t.shape[0], x_t.shape[1], k) if state is None else state
        buf = torch.cat([buf[:, :, 1:], x_t[:, :, None]], dim=2)
        return F.conv1d(buf, self.conv.weight, self.conv.bias)[:, :, 0], buf

    def taps(self):
        if not self.causal:
            raise UserError(
                "model config: field 'causal' is false: the temporal convolutions use 'same' padding and need "
                "future frames; only causal models (causal: true) can be deployed"
            )
        # tap j = kernel[..., k-1-j]: the causal conv's newest input has the last kernel weight
        return ([self.conv.weight.flip(-1).permute(2, 0, 1)], self.conv.bias,
                {"kind": "conv", "kernel": self.conv.kernel_size[0], "causal": True})

    def modules(self):
        return [self.conv]


@dataclass(eq=False)
class Dense(Op):
    """A Linear or 1x1 Conv1d on the concatenation of its sources (``widths``: their sizes)."""

    module: nn.Module
    widths: list[int] | None = None

    def run(self, xs):
        x = xs[0] if len(xs) == 1 else torch.cat(xs, dim=-1)
        if isinstance(self.module, nn.Conv1d):
            return conv_time(self.module, x, True)
        return self.module(x)

    def step(self, xs, state):
        x = xs[0] if len(xs) == 1 else torch.cat(xs, dim=-1)
        return F.linear(x, _matrix(self.module), self.module.bias), None

    def taps(self):
        w = _matrix(self.module)
        parts = [w] if self.widths is None else list(torch.split(w, self.widths, dim=1))
        return [p[None] for p in parts], self.module.bias, {"kind": "dense"}

    def modules(self):
        return [self.module]


@dataclass(eq=False)
class DenseBN(Op):
    """A 1x1 Conv1d followed by batch norm (folded with its running statistics at deployment)."""

    conv: nn.Conv1d
    bn: nn.BatchNorm1d

    def run(self, xs):
        return bn_time(self.bn, conv_time(self.conv, xs[0], True))

    def step(self, xs, state):
        return bn_frame(self.bn, F.linear(xs[0], _matrix(self.conv), self.conv.bias)), None

    def taps(self):
        s, t = bn_fold(self.bn)
        return [s[None, :, None] * _matrix(self.conv)[None]], s * self.conv.bias + t, {"kind": "dense"}

    def modules(self):
        return [self.conv, self.bn]


@dataclass(eq=False)
class Memory(Op):
    """The LMU memory of a single scalar source: an LTI filter, deployed as ``max_len`` FIR taps."""

    memory: nn.Module  # lmu2neuro.models.lmu.LMUMemory
    max_len: int

    def run(self, xs):
        return self.memory(xs[0][..., 0])

    def step(self, xs, state):
        m = self.memory.step(state, xs[0][:, 0])
        return m, m

    def taps(self):
        h = self.memory.impulse(self.max_len).to(torch.float32)  # (d, taps)
        return ([h.T[:, :, None]], None, {"kind": "lmu_fir", "order": self.memory.order,
                                          "theta": self.memory.theta, "dt": 1.0, "taps": self.max_len})

    def modules(self):
        return [self.memory]


@dataclass(eq=False)
class Identity(Op):
    """A residual path of the non-spiking model (a graded value has no Loihi projection)."""

    def run(self, xs):
        return xs[0]

    def step(self, xs, state):
        return xs[0], None


# -- node bodies: what a node does with the sum of its terms --------------------------------------------
class Body:
    spiking = False
    readout = False

    def run(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def step(self, x: torch.Tensor, state):
        raise NotImplementedError


@dataclass(eq=False)
class Spiking(Body):
    """Batch norm (or none), the neuron's input factor ``gain`` (SpikingJelly's 1/tau), then a LoihiLIF."""

    bn: nn.BatchNorm1d | None
    neuron: nn.Module  # lmu2neuro.models.neurons.LoihiLIF
    gain: float
    spiking = True

    def run(self, x):
        return self.neuron(self.gain * (x if self.bn is None else bn_time(self.bn, x)))

    def step(self, x, state):
        drive = self.gain * (x if self.bn is None else bn_frame(self.bn, x))
        spk, state = self.neuron.step(drive, self.neuron.init_state(drive) if state is None else state)
        return spk, state


@dataclass(eq=False)
class Activation(Body):
    """A non-spiking node: ``after(fn(x))`` with an optional batch norm after the activation."""

    fn: object = None  # a function of a tensor, or None for the identity
    after: nn.BatchNorm1d | None = None

    def run(self, x):
        y = x if self.fn is None else self.fn(x)
        return y if self.after is None else bn_time(self.after, y)

    def step(self, x, state):
        y = x if self.fn is None else self.fn(x)
        return (y if self.after is None else bn_frame(self.after, y)), None


@dataclass(eq=False)
class Readout(Body):
    """The head: the sum of its terms is the frame's output (logits); on Loihi an integrating,
    never-spiking population."""

    readout = True

    def run(self, x):
        return x

    def step(self, x, state):
        return x, None


# -- the declaration ------------------------------------------------------------------------------------
@dataclass(eq=False)
class Term:
    """One synaptic input of a node: ``op`` applied to ``sources``. One Term object may feed several
    nodes (a residual stream); it then runs once per forward. ``parts`` names the projection from each
    source (default: the term's name)."""

    name: str
    sources: list[str]
    op: Op
    parts: list[str] | None = None

    def part_names(self) -> list[str]:
        return self.parts or [self.name]


@dataclass(eq=False)
class Node:
    name: str
    terms: list[Term]
    body: Body
    layer: str = ""  # the model's module path of the node's neuron (or head), for reports
    term_layers: dict = field(default_factory=dict)  # id(term) -> module path
    shape: tuple[int, ...] | None = None  # the frame its outputs form in the model, when known


def annotate(model: nn.Module, nodes: list[Node]) -> list[Node]:
    """Fill in the module paths of every node and term (``layer`` in reports and NIR metadata)."""
    where = {id(m): name for name, m in model.named_modules()}
    for node in nodes:
        body_module = getattr(node.body, "neuron", None)
        if body_module is None and node.terms and node.terms[0].op.modules():
            body_module = node.terms[0].op.modules()[0]
        node.layer = where.get(id(body_module), "") if body_module is not None else ""
        for term in node.terms:
            mods = term.op.modules()
            node.term_layers[id(term)] = where.get(id(mods[0]), "") if mods else ""
    return nodes


def is_recurrent(node: Node, term: Term) -> bool:
    """A term that feeds a node its own output (snnTorch's RLeaky): it acts one step late."""
    return node.name in term.sources


def run_recurrent(node: Node, total: torch.Tensor) -> torch.Tensor:
    """A spiking node with recurrent terms over a whole sequence: frame by frame, each recurrent
    term's ``step`` gets the node's output of the step before (zero at the first step).

    ``total`` (B, T, n) is the sum of the node's other terms. The body runs its ``step`` (batch
    norm, if any, with running statistics, as in streaming)."""
    if not node.body.spiking:
        raise ValueError(f"node '{node.name}': only a spiking node can feed itself back")
    rec = [t for t in node.terms if is_recurrent(node, t)]
    prev = torch.zeros_like(total[:, 0])
    body_state, op_states, out = None, {}, []
    for t in range(total.shape[1]):
        x_t = total[:, t]
        for term in rec:
            y, op_states[id(term)] = term.op.step([prev], op_states.get(id(term)))
            x_t = x_t + y
        prev, body_state = node.body.step(x_t, body_state)
        out.append(prev)
    return torch.stack(out, dim=1)


def run(nodes: list[Node], x: torch.Tensor, spikes: dict | None = None) -> torch.Tensor:
    """The float forward over whole sequences: x (B, T, F) -> the last node's output (B, T, C).

    ``spikes`` collects each spiking node's output. Terms shared by several nodes run once, and a
    node sums its terms in the declared order (so a residual stream adds up as the model wrote it).
    A node with recurrent terms (``is_recurrent``) runs frame by frame (``run_recurrent``).
    """
    values = {INPUT: x}
    done: dict[int, torch.Tensor] = {}
    for node in nodes:
        total = None
        recurrent = False
        for term in node.terms:
            if is_recurrent(node, term):
                recurrent = True
                continue
            if id(term) not in done:
                done[id(term)] = term.op.run([values[s] for s in term.sources])
            total = done[id(term)] if total is None else total + done[id(term)]
        if recurrent:
            values[node.name] = run_recurrent(node, total)
        else:
            values[node.name] = node.body.run(total)
        if spikes is not None and node.body.spiking:
            spikes[node.name] = values[node.name]
    return values[nodes[-1].name]


class StreamState:
    """The graph run one frame at a time: each op and body keeps what it needs from the past."""

    def __init__(self, nodes: list[Node]):
        self.nodes = nodes
        self.state: dict[int, object] = {}
        self.last: dict[str, torch.Tensor] = {}  # each node's output of the frame before

    def step(self, x_t: torch.Tensor, spikes: dict | None = None) -> torch.Tensor:
        values = {INPUT: x_t}
        done: dict[int, torch.Tensor] = {}
        for node in self.nodes:
            total = None
            for term in node.terms:
                if is_recurrent(node, term):
                    continue
                if id(term) not in done:
                    done[id(term)], self.state[id(term)] = term.op.step(
                        [values[s] for s in term.sources], self.state.get(id(term)))
                total = done[id(term)] if total is None else total + done[id(term)]
            for term in node.terms:  # the node's own output of the frame before
                if is_recurrent(node, term):
                    prev = self.last.get(node.name)
                    y, self.state[id(term)] = term.op.step([torch.zeros_like(total) if prev is None else prev],
                                                           self.state.get(id(term)))
                    total = total + y
            values[node.name], self.state[id(node)] = node.body.step(total, self.state.get(id(node)))
            self.last[node.name] = values[node.name]
            if spikes is not None and node.body.spiking:
                spikes[node.name] = values[node.name]
        return values[self.nodes[-1].name]


# -- a graph written as a forward, found by tracing ---------------------------------------------------------
# An architecture whose ops state their own taps (a causal temporal convolution, the LMU memory's
# impulse response, a 1x1 convolution with batch norm folded into each consumer) writes its forward
# with the calls below: each term call runs its op (``Op.run``) and each body call its body
# (``Body.run``), so the forward is ordinary torch code, and sums of term calls are a node's input.
# Traced with torch.fx (``models.tracer.trace_method``), every such call is one leaf, and
# ``nodes_from_trace`` maps the trace onto the same ``Term`` and ``Node`` objects a hand declaration
# would give: the graph is found from the forward, not written twice. What a term sums into stays a
# list of terms (not a tensor), so a residual stream consumed by several nodes keeps one Term per
# contribution, shared by every consumer, in the order the forward adds them.

def _leaf(fn):
    """``fn`` runs as written, or, called with a traced value (an fx Proxy), is recorded as one call."""

    @functools.wraps(fn)
    def call(*args, **kwargs):
        proxies: list[fx.Proxy] = []
        fx.node.map_aggregate((args, kwargs), lambda a: proxies.append(a) if isinstance(a, fx.Proxy) else None)
        if proxies:
            return proxies[0].tracer.create_proxy("call_function", call, args, kwargs)
        return fn(*args, **kwargs)

    return call


_TERM_OPS: dict = {}  # term call -> its Op class
_BODIES: dict = {}  # body call -> a function of the call's arguments giving the Body


def _term_call(op_cls: type, doc: str):
    def term(sources, *args, name: str, parts: list[str] | None = None):
        xs = list(sources) if isinstance(sources, (list, tuple)) else [sources]
        return op_cls(*args).run(xs)

    term.__name__ = term.__qualname__ = f"term_{op_cls.__name__}"
    term.__doc__ = doc
    call = _leaf(term)
    _TERM_OPS[call] = op_cls
    return call


temporal_conv = _term_call(TemporalConv, "temporal_conv(x, conv, causal, name=): a ``TemporalConv`` term.")
dense = _term_call(Dense, "dense(x or [x1, x2, ..], module, widths, name=, parts=): a ``Dense`` term.")
dense_bn = _term_call(DenseBN, "dense_bn(x, conv, bn, name=): a ``DenseBN`` term (1x1 conv, batch norm).")
memory = _term_call(Memory, "memory(u, lmu_memory, max_len, name=): a ``Memory`` term (the LMU as FIR taps).")
identity = _term_call(Identity, "identity(x, name=): an ``Identity`` term (a graded residual path).")

_ACTIVATIONS = {None: None, "relu": F.relu, "gelu": F.gelu}  # by name: a traced call records plain data


def _body_call(make, doc: str, name: str):
    def body(total, *args, name: str):
        return make(*args).run(total)

    body.__name__ = body.__qualname__ = name
    body.__doc__ = doc
    call = _leaf(body)
    _BODIES[call] = make
    return call


spiking = _body_call(Spiking, "spiking(total, bn, neuron, gain, name=): a node with a ``Spiking`` body.", "spiking")
activation = _body_call(lambda fn=None, after=None: Activation(_ACTIVATIONS[fn], after),
                        "activation(total, fn ('relu', 'gelu' or None), after (a BN or None), name=): a node "
                        "with an ``Activation`` body.", "activation")
readout = _body_call(Readout, "readout(total, name=): the head node (``Readout``).", "readout")


def nodes_from_trace(model: nn.Module, graph: fx.Graph) -> list[Node]:
    """The declared graph of a traced forward written with the term and body calls above.

    ``graph``'s ``get_attr`` targets are module paths of ``model``. A term call's sources must be the
    input or nodes' outputs; a body call's input a term or a sum of terms; the forward returns the
    last node's output. Anything else is a ``UserError`` naming the operation."""
    cls = type(model).__name__
    values: dict = {}  # fx node -> a signal name, a list of Terms, a module, or a constant
    nodes: list[Node] = []
    inputs = [n for n in graph.nodes if n.op == "placeholder"]
    if len(inputs) != 1:
        raise UserError(f"model {cls}: the traced forward takes {len(inputs)} arguments; expected one, the input")

    def resolve(a):  # fx's immutable lists back to plain ones (widths, parts)
        a = fx.node.map_arg(a, lambda n: values[n])
        return [resolve(v) for v in a] if isinstance(a, list) else tuple(resolve(v) for v in a) \
            if isinstance(a, tuple) else a

    def signals(a, what):
        srcs = list(a) if isinstance(a, (list, tuple)) else [a]
        got = [values.get(s) if isinstance(s, fx.Node) else None for s in srcs]
        if not all(isinstance(g, str) for g in got):
            raise UserError(f"model {cls}: {what}: a source is not the input or a node's output (apply a "
                            "body call to a sum of terms before using it as a source)")
        return got

    for n in graph.nodes:
        if n.op == "placeholder":
            values[n] = INPUT
        elif n.op == "get_attr":
            values[n] = model.get_submodule(n.target)
        elif n.op == "call_function" and n.target in _TERM_OPS:
            name = n.kwargs["name"]
            sources = signals(n.args[0], f"term '{name}'")
            op = _TERM_OPS[n.target](*resolve(n.args[1:]))
            parts = n.kwargs.get("parts")
            values[n] = [Term(name, sources, op, parts=None if parts is None else list(parts))]
        elif n.op == "call_function" and n.target in _BODIES:
            name = n.kwargs["name"]
            terms = values.get(n.args[0]) if isinstance(n.args[0], fx.Node) else None
            if not (isinstance(terms, list) and terms):
                raise UserError(f"model {cls}: node '{name}': its input is not a term or a sum of terms")
            nodes.append(Node(name, list(terms), _BODIES[n.target](*resolve(n.args[1:]))))
            values[n] = name
        elif (n.op == "call_function" and n.target in (operator.add, torch.add) and len(n.args) == 2 and not n.kwargs
              and all(isinstance(values.get(a), list) for a in n.args)):
            values[n] = values[n.args[0]] + values[n.args[1]]
        elif n.op == "output":
            if not nodes or values.get(n.args[0]) != nodes[-1].name:
                raise UserError(f"model {cls}: the traced forward must return the output of its last node")
        else:
            what = n.target if isinstance(n.target, str) else getattr(n.target, "__name__", str(n.target))
            raise UserError(f"model {cls}: operation '{what}' in the traced forward is neither a term call, a body "
                            "call nor a sum of terms (models.graph)")
    return annotate(model, nodes)
