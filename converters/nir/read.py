"""NIR file -> IntNetwork: exact for our own files, quantized at a stated dt for anyone else's.

``read_graph(path)`` opens and checks a .nir file and returns the ``nir.NIRGraph``; every problem
(not HDF5, truncated, not NIR, unknown node type, missing parameter, mismatched shapes) is one
``UserError`` line naming the file, the node and the field.

``read_intnet(path, dt=None, input_scale=None)``:
- a file written by ``converters.nir.export`` carries the Loihi integers as metadata and is rebuilt
  exactly (same arrays, same spikes);
- any other graph is lowered: any chain of Linear / Affine / Scale / Conv1d / Conv2d / pooling /
  Flatten / Delay between neurons becomes one projection (a dense matrix per delay tap), and each
  neuron (LIF, CubaLIF, IF, LI, CubaLI, I) becomes a Loihi population by forward Euler at ``dt`` (what the NIR paper's backends do):
  ``dv = round(4096 dt / tau_mem)``, ``du = round(4096 dt / tau_syn) - 1`` (4095 when there is no
  synaptic state), per-step input gain ``g = (dt/tau_mem) r (dt/tau_syn) w_in`` (LIF: ``dt r / tau``,
  IF / I: ``dt r``) and bias ``(dt/tau_mem) v_leak``. Each spiking neuron gets its own voltage scale
  ``vth / v_threshold``, so per-neuron thresholds become one integer threshold and the scale folds
  into that neuron's weights and bias; neurons of one node with different decays become one
  population per (du, dv) (``<node>.<k>``). ``dt`` defaults to the graph's stated dt, else 1e-4 s, the
  convention of every graph in the NIR paper. A graph whose output is a spiking population gets a
  readout population ``<name>.count`` that counts its spikes (integer network outputs are readouts).
  A Threshold node becomes a population with both decays 4095 (Loihi's shortest memory: 1/4096
  of the last step survives) and gain 1. What cannot be expressed (recurrence between
  populations, v_reset != 0, a non-spiking neuron feeding others) is named in a ``UserError``,
  never dropped.
"""

from __future__ import annotations

import collections
import math
import os
from typing import Any

import numpy as np

from converters.nir.export import FORMAT, META_KEY, decode_meta
from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core import guards
from lmu2neuro.core.errors import UserError
from lmu2neuro.core.intnet import IntNetwork, IntNetworkError, Population, Projection

NIR_PAPER_DT = 1e-4

# Fields each node type must carry in the file (what nir.read passes to the constructor).
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "Input": ("shape",),
    "Output": ("shape",),
    "Affine": ("weight", "bias"),
    "Linear": ("weight",),
    "Scale": ("scale",),
    "Conv1d": ("weight", "stride", "padding", "dilation", "groups", "bias"),
    "Conv2d": ("weight", "stride", "padding", "dilation", "groups", "bias"),
    "SumPool2d": ("kernel_size", "stride", "padding"),
    "AvgPool2d": ("kernel_size", "stride", "padding"),
    "Delay": ("delay",),
    "Flatten": ("start_dim", "end_dim"),
    "Threshold": ("threshold",),
    "I": ("r",),
    "IF": ("r", "v_threshold"),
    "LI": ("tau", "r", "v_leak"),
    "LIF": ("tau", "r", "v_leak", "v_threshold"),
    "CubaLI": ("tau_syn", "tau_mem", "r", "v_leak", "w_in"),
    "CubaLIF": ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "w_in"),
    "NIRGraph": ("nodes", "edges"),
}
NEURON_TYPES = ("I", "IF", "LI", "LIF", "CubaLI", "CubaLIF", "Threshold")
SPIKING_TYPES = ("IF", "LIF", "CubaLIF", "Threshold")
STATEFUL_TYPES = ("I", "IF", "LI", "LIF", "CubaLI", "CubaLIF", "Delay")
# what read_intnet composes into one dense projection (a Delay becomes taps)
SYNAPSE_TYPES = ("Linear", "Affine", "Scale", "Conv1d", "Conv2d", "SumPool2d", "AvgPool2d", "Flatten", "Delay")
INTNET_TYPES = ("Input", "Output", "NIRGraph") + SYNAPSE_TYPES + NEURON_TYPES


def _one_line(msg: Any) -> str:
    return " ".join(str(msg).split())


# -- reading and checking the file ------------------------------------------------------------------
def _check_node_group(path, name: str, grp) -> None:
    import h5py

    if "type" not in grp:
        raise UserError(f"{path}: node '{name}': missing field 'type'")
    typ = grp["type"][()]
    typ = typ.decode("utf-8") if isinstance(typ, bytes) else str(typ)
    if typ not in REQUIRED_FIELDS:
        raise UserError(
            f"{path}: node '{name}': unknown node type '{typ}' (expected one of {', '.join(REQUIRED_FIELDS)})"
        )
    for fld in REQUIRED_FIELDS[typ]:
        if fld not in grp:
            raise UserError(f"{path}: node '{name}' ({typ}): missing parameter '{fld}'")
    if typ == "NIRGraph":
        for sub, sg in grp["nodes"].items():
            if not isinstance(sg, h5py.Group):
                raise UserError(f"{path}: node '{name}.{sub}': expected a group")
            _check_node_group(path, f"{name}.{sub}" if name else sub, sg)
        return
    # neuron parameters are per neuron: every array must have one shape
    if typ in NEURON_TYPES:
        fields = [f for f in REQUIRED_FIELDS[typ] if f != "w_in"] + [f for f in ("v_reset",) if f in grp]
        ref_f = fields[0]
        ref = np.shape(grp[ref_f][()])
        for f in fields[1:]:
            shp = np.shape(grp[f][()])
            if shp != ref:
                raise UserError(
                    f"{path}: node '{name}' ({typ}): parameter '{f}' has shape {shp}, expected {ref} like '{ref_f}'"
                )
    if typ == "Affine":
        w, b = np.shape(grp["weight"][()]), np.shape(grp["bias"][()])
        if len(w) != 2 or b != (w[0],):
            raise UserError(f"{path}: node '{name}' (Affine): parameter 'bias' has shape {b}, expected ({w[0] if w else '?'},)")
    if typ in ("Linear", "Affine") and np.ndim(grp["weight"][()]) < 2:
        raise UserError(f"{path}: node '{name}' ({typ}): parameter 'weight' must be a matrix")


def read_graph(path: str | os.PathLike, type_check: bool = True):
    """Open a .nir file and return its ``nir.NIRGraph``; bad files raise a one-line UserError."""
    import h5py
    import nir

    p = guards.require_file(path, "NIR file", "a .nir graph")
    guards.check_file_size(p, "NIR file")
    if not h5py.is_hdf5(p):
        raise UserError(f"{path}: not an HDF5 file (a .nir graph is HDF5, written by nir.write)")
    try:
        # declared sizes, links and nesting first: nothing below reads data the guard has not bounded
        guards.check_hdf5(p)
        with h5py.File(p, "r") as f:
            if "node" not in f or not isinstance(f["node"], h5py.Group):
                raise UserError(f"{path}: an HDF5 file but not a NIR graph: no 'node' group")
            _check_node_group(path, "", f["node"])
    except UserError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError) as exc:
        raise UserError(f"{path}: unreadable HDF5 (truncated or corrupt file): {_one_line(exc)}") from None
    try:
        return nir.read(p, type_check=type_check)
    except OSError as exc:
        raise UserError(f"{path}: unreadable HDF5 (truncated or corrupt file): {_one_line(exc)}") from None
    except Exception as exc:  # nir raises ValueError/AssertionError/KeyError on malformed graphs
        raise UserError(f"{path}: not a valid NIR graph: {type(exc).__name__}: {_one_line(exc)}") from None


def is_ours(graph) -> bool:
    md = getattr(graph, "metadata", None) or {}
    if META_KEY not in md:
        return False
    try:
        return decode_meta(md[META_KEY]).get("format") == FORMAT
    except (ValueError, TypeError, AttributeError):
        return False


# -- graph utilities shared with the torch reader -----------------------------------------------------
def flatten_graph(graph, prefix: str = "") -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """Inline nested NIRGraphs: node 'sub' becomes 'sub.<name>'; edges into a subgraph go to its
    Input nodes, edges out of it leave from its Output nodes (which become pass-through nodes)."""
    import nir

    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    entry: dict[str, list[str]] = {}
    exit_: dict[str, list[str]] = {}
    for name, node in graph.nodes.items():
        full = f"{prefix}{name}"
        if isinstance(node, nir.NIRGraph):
            sub_nodes, sub_edges = flatten_graph(node, f"{full}.")
            nodes.update(sub_nodes)
            edges += sub_edges
            entry[full] = [f"{full}.{k}" for k, v in node.nodes.items() if isinstance(v, nir.Input)]
            exit_[full] = [f"{full}.{k}" for k, v in node.nodes.items() if isinstance(v, nir.Output)]
        else:
            nodes[full] = node
            entry[full] = exit_[full] = [full]
    for a, b in graph.edges:
        for s in exit_[f"{prefix}{a}"]:
            for d in entry[f"{prefix}{b}"]:
                edges.append((s, d))
    return nodes, edges


def node_type(node) -> str:
    return type(node).__name__


def execution_order(nodes: dict[str, Any], edges: list[tuple[str, str]], where: str = "graph"):
    """Order the nodes for one time step and pick the edges that carry the previous step's value.

    Depth-first from the inputs; an edge back to a node on the current path closes a cycle and is
    read one step late. Every cycle must pass through a stateful node (a neuron or a Delay):
    a cycle of stateless nodes has no defined value and raises a UserError naming its nodes.
    Returns (order, delayed_edges).
    """
    succ: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        succ[a].append(b)
    # a stateless cycle: what remains cyclic once stateful nodes are removed
    stateless = {n for n in nodes if node_type(nodes[n]) not in STATEFUL_TYPES}
    color: dict[str, int] = {}

    def find_cycle(start):
        stack = [(start, iter(succ[start]))]
        path = [start]
        color[start] = 1
        while stack:
            n, it = stack[-1]
            nxt = next((m for m in it if m in stateless), None)
            if nxt is None:
                color[n] = 2
                stack.pop()
                path.pop()
                continue
            if color.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in color:
                color[nxt] = 1
                stack.append((nxt, iter(succ[nxt])))
                path.append(nxt)
        return None

    for n in sorted(stateless):
        if n not in color:
            cyc = find_cycle(n)
            if cyc:
                raise UserError(
                    f"{where}: cycle without state {' -> '.join(cyc)}: a recurrent loop must pass through a "
                    "neuron or a Delay (expected one of " + ", ".join(STATEFUL_TYPES) + ")"
                )
    roots = [n for n in nodes if node_type(nodes[n]) == "Input"]
    roots += [n for n in nodes if n not in roots and not any(b == n for _, b in edges)]
    state: dict[str, int] = {}
    delayed: set[tuple[str, str]] = set()
    for r in roots + list(nodes):
        if r in state:
            continue
        stack = [(r, iter(succ[r]))]
        state[r] = 1
        while stack:
            n, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                state[n] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                # the step delay sits on the edge leaving the last stateful node of the loop, so a
                # stateless node inside the loop (a recurrent Affine) still sees its bias at step 0
                path = [m for m, _ in stack]
                loop = path[path.index(nxt):]
                last = max(i for i, m in enumerate(loop) if node_type(nodes[m]) in STATEFUL_TYPES)
                delayed.add((loop[last], loop[last + 1]) if last + 1 < len(loop) else (n, nxt))
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(succ[nxt])))
    order = _topological([n for n in nodes], [e for e in edges if e not in delayed])
    if order is None:  # moving the delays created a same-step loop: delay every edge out of a stateful node in a loop
        delayed |= {(a, b) for a, b in edges if node_type(nodes[a]) in STATEFUL_TYPES}
        order = _topological([n for n in nodes], [e for e in edges if e not in delayed])
    assert order is not None
    return order, delayed


def _topological(names: list[str], edges: list[tuple[str, str]]) -> list[str] | None:
    # linear in nodes + edges: a graph from elsewhere may hold thousands of nodes
    indeg = {n: 0 for n in names}
    succ: dict[str, list[str]] = {n: [] for n in names}
    for a, b in edges:
        indeg[b] += 1
        succ[a].append(b)
    ready = collections.deque(n for n in names if indeg[n] == 0)
    order = []
    while ready:
        n = ready.popleft()
        order.append(n)
        for b in succ[n]:
            indeg[b] -= 1
            if indeg[b] == 0:
                ready.append(b)
    return order if len(order) == len(names) else None


# -- our own files: exact ------------------------------------------------------------------------------
def _intnet_from_ours(graph, path) -> IntNetwork:
    gm = decode_meta(graph.metadata[META_KEY])

    def node_meta(name):
        if name not in graph.nodes:
            raise UserError(f"{path}: node '{name}' named in the graph metadata is missing")
        md = graph.nodes[name].metadata or {}
        if META_KEY not in md:
            raise UserError(f"{path}: node '{name}': missing metadata field '{META_KEY}'")
        return decode_meta(md[META_KEY]), md

    pops = []
    for name in gm["populations"]:
        m, md = node_meta(name)
        if "bias_mant" not in md:
            raise UserError(f"{path}: node '{name}': missing metadata field 'bias_mant'")
        pops.append(
            Population(name=name, size=int(np.asarray(md["bias_mant"]).shape[0]), du=int(m["du"]), dv=int(m["dv"]),
                       vth=int(m["vth"]), bias_mant=np.asarray(md["bias_mant"], dtype=np.int64),
                       bias_exp=int(m["bias_exp"]), readout=bool(m["readout"]), meta=m.get("meta") or {})
        )
    projs = []
    for pm in gm["projections"]:
        mants, origin = [], {}
        for n in pm["nodes"]:
            m, md = node_meta(n)
            if "weight_mant" not in md:
                raise UserError(f"{path}: node '{n}': missing metadata field 'weight_mant'")
            w = np.asarray(md["weight_mant"], dtype=np.int64)
            mants.append(w if m.get("form") == "lmu_integrator" else w[None])
            origin = m.get("origin") or {}
        weights = np.concatenate(mants, axis=0)
        projs.append(Projection(name=pm["name"], source=pm["source"], target=pm["target"], weights=weights,
                                weight_exp=int(pm["weight_exp"]), origin=origin))
    try:
        return IntNetwork(input_size=int(gm["input_size"]), input_scale=float(gm["input_scale"]), populations=pops,
                          projections=projs, output=gm["output"], input_name=gm["input_name"],
                          dt=gm.get("net_dt") or gm.get("dt"), meta=gm.get("net_meta") or {})
    except IntNetworkError as exc:
        raise UserError(f"{path}: metadata does not form a valid integer network: {exc}") from None


# -- anyone's graph: quantized ----------------------------------------------------------------------
def _arr(node, f, n=None):
    # neuron parameters of a conv layer are (C, H, W): one value per neuron in C order
    v = np.asarray(getattr(node, f), dtype=np.float64).reshape(-1)
    return np.broadcast_to(v, (n,)).copy() if n is not None else v


def _decay_int(k: np.ndarray) -> np.ndarray:
    """Per-step fraction removed (dt / tau) -> Loihi's 12-bit decay, clipped to its range."""
    return np.clip(np.round(np.asarray(k, dtype=np.float64) * fx.DECAY_UNITY), 0, fx.DECAY_UNITY - 1).astype(np.int64)


def _check_parameters(path, name, node) -> None:
    """Every numeric parameter finite, every time constant positive: named, before any arithmetic
    turns a NaN into an arbitrary integer or a zero tau into an infinite weight."""
    if node_type(node) in ("NIRGraph", "Input", "Output"):
        return
    for field, value in vars(node).items():
        if field in ("metadata", "input_type", "output_type") or isinstance(value, (str, bytes, dict)):
            continue
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise UserError(f"{path}: node '{name}' ({node_type(node)}): parameter '{field}' is not numeric") from None
        if not np.all(np.isfinite(arr)):
            raise UserError(f"{path}: node '{name}' ({node_type(node)}): parameter '{field}' holds NaN or infinite "
                            "values; expected finite numbers")
        if field.startswith("tau") and np.any(arr <= 0):
            raise UserError(f"{path}: node '{name}' ({node_type(node)}): parameter '{field}' has a value "
                            f"{float(arr.min()):g}; expected time constants > 0 s")


def _neuron_dynamics(path, name, node, dt):
    """-> dict(du (n,), dv (n,), gain (n,), bias (n,) per-step voltage, vth (n,) or None, n, type)."""
    typ = node_type(node)
    if typ in ("LIF", "LI"):
        tau = _arr(node, "tau")
        n = tau.size
        k = dt / tau
        r, vl = _arr(node, "r", n), _arr(node, "v_leak", n)
        du, dv, gain, bias = np.full(n, fx.DECAY_UNITY - 1), _decay_int(k), k * r, k * vl
    elif typ in ("CubaLIF", "CubaLI"):
        tm = _arr(node, "tau_mem")
        n = tm.size
        ts = _arr(node, "tau_syn", n)
        ks, km = dt / ts, dt / tm
        r, vl, w_in = _arr(node, "r", n), _arr(node, "v_leak", n), _arr(node, "w_in", n)
        du = np.clip(np.round(ks * fx.DECAY_UNITY) - 1, 0, fx.DECAY_UNITY - 1).astype(np.int64)
        dv, gain, bias = _decay_int(km), km * r * ks * w_in, km * vl
    elif typ in ("IF", "I"):
        r = _arr(node, "r")
        n = r.size
        du, dv, gain, bias = np.full(n, fx.DECAY_UNITY - 1), np.zeros(n, dtype=np.int64), dt * r, np.zeros(n)
    elif typ == "Threshold":
        # Stateless: the shortest memory Loihi has (both decays 4095 keep 1/4096 of the last
        # step, truncated toward zero) and the whole input every step, independent of dt.
        n = _arr(node, "threshold").size
        du = dv = np.full(n, fx.DECAY_UNITY - 1)
        gain, bias = np.ones(n), np.zeros(n)
    else:  # pragma: no cover - callers only pass neurons
        raise AssertionError(typ)
    vth = None
    if typ in SPIKING_TYPES:
        field = "threshold" if typ == "Threshold" else "v_threshold"
        vth = _arr(node, field, n)
        if np.any(vth <= 0):
            raise UserError(f"{path}: node '{name}': parameter '{field}' must be > 0 for a Loihi neuron")
        v_reset = getattr(node, "v_reset", None)
        if v_reset is not None and np.any(np.asarray(v_reset) != 0):
            raise UserError(f"{path}: node '{name}': parameter 'v_reset' is not 0; Loihi neurons reset to zero (expected 0)")
    return {"du": du.astype(np.int64), "dv": dv.astype(np.int64), "gain": gain, "bias": bias, "vth": vth, "n": n,
            "type": typ}


def _groups(d) -> list[np.ndarray]:
    """Neuron indices sharing one (du, dv): a Loihi population has one decay pair."""
    keys = list(zip(d["du"].tolist(), d["dv"].tolist()))
    seen: dict[tuple[int, int], list[int]] = {}
    for i, k in enumerate(keys):
        seen.setdefault(k, []).append(i)
    return [np.asarray(v) for v in seen.values()]


def _node_shape(node, key: str) -> tuple[int, ...] | None:
    t = getattr(node, f"{key}_type", None) or {}
    v = t.get(key) if isinstance(t, dict) else None
    if v is None:
        return None
    a = np.asarray(v).reshape(-1)
    return tuple(int(s) for s in a) if a.size and a.dtype.kind in "iuf" else None


def _dense_map(path, name, node, shape: tuple[int, ...], dt: float):
    """A stateless linear NIR node as ``y = A x + c`` on C-order flattened tensors.

    Applies nir_torch's own per-step code to the zero input (-> c) and to the identity basis
    (-> A, with any bias set to zero so that A holds the weights exactly, not w + b - b), so the
    lowering and the float reference cannot disagree on padding, stride, groups or Flatten's dims.
    Returns (A (n_out, n_in), c (n_out,), output shape).
    """
    import copy
    from types import SimpleNamespace

    import torch

    from converters.nir.float_executor import NIRTorch

    typ = node_type(node)
    n = int(np.prod(shape)) if shape else 1
    guards.check_elements(path, f"node '{name}' ({typ}): dense matrix of its {n} inputs", (n + 1, n))

    def apply(nd, x):
        model = NIRTorch(SimpleNamespace(nodes={name: nd}, edges=[]), dt, where=str(path))
        try:
            return model._step(name, x, {})
        except (RuntimeError, ValueError) as exc:
            raise UserError(f"{path}: node '{name}' ({typ}): cannot take an input of shape {shape}: "
                            f"{_one_line(exc)[:160]}") from None

    c = apply(node, torch.zeros((1,) + tuple(shape), dtype=torch.float64))
    out_shape = tuple(int(s) for s in c.shape[1:])
    guards.check_elements(path, f"node '{name}' ({typ}): dense matrix", (int(np.prod(out_shape)), n))
    linear = node
    if getattr(node, "bias", None) is not None:
        linear = copy.copy(node)
        linear.bias = np.zeros_like(np.asarray(node.bias, dtype=np.float64))
    y = apply(linear, torch.eye(n, dtype=torch.float64).reshape((n,) + tuple(shape)))
    return y.reshape(n, -1).T.numpy(), c.reshape(-1).numpy(), out_shape


def _trace_synapse_chain(path, nodes, preds, start, dt, target, delayed=frozenset()):
    """Walk back from `start` (a predecessor of neuron `target`) to a neuron or Input and compose
    the linear, stateless nodes on the way into one dense map per delay.

    An edge in `delayed` (execution_order's loop edges, read one step late as nir_torch does) adds
    one step to every tap. Returns (source, taps {steps: matrix (n_target_side, n_source)},
    bias (n_target_side,)); a bias is applied at every step, also while a Delay is still filling.
    """
    chain = []
    late = int((start, target) in delayed)
    cur = start

    def passthrough(n):  # an Input / Output inside an inlined subgraph
        return node_type(nodes[n]) in ("Input", "Output") and len(preds.get(n, [])) == 1

    while node_type(nodes[cur]) not in NEURON_TYPES + ("Input", "Output") or passthrough(cur):
        typ = node_type(nodes[cur])
        if typ not in SYNAPSE_TYPES + ("Input", "Output"):
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
    shape = _out_shape(nodes[source])
    n_src = int(np.prod(shape))
    # the chain is composed through a dense identity: its size is what this reader can afford
    guards.check_elements(path, f"node '{source}' ({node_type(nodes[source])}) with {n_src:,} outputs feeding "
                          f"'{target}' (composed as an {n_src} x {n_src} matrix)", (n_src, n_src))
    taps = {0: np.eye(n_src)}
    bias = np.zeros(n_src)
    for name in reversed(chain):
        node = nodes[name]
        typ = node_type(node)
        n_cur = next(iter(taps.values())).shape[0]
        if typ in ("Input", "Output"):
            continue
        if typ in ("Linear", "Affine") and len(shape) <= 1:
            w = np.asarray(node.weight, dtype=np.float64)
            if w.ndim != 2:
                raise UserError(f"{path}: node '{name}' ({typ}): parameter 'weight' must be a matrix")
            if w.shape[1] != n_cur:
                raise UserError(f"{path}: node '{name}' ({typ}): parameter 'weight' has {w.shape[1]} inputs, expected {n_cur}")
            taps = {k: w @ m for k, m in taps.items()}
            bias = w @ bias + (np.asarray(node.bias, dtype=np.float64).reshape(-1) if typ == "Affine" else 0.0)
            shape = (w.shape[0],)
        elif typ == "Scale" and np.asarray(node.scale).size in (1, n_cur):
            s = np.asarray(node.scale, dtype=np.float64).reshape(-1)
            taps = {k: s[:, None] * m for k, m in taps.items()}
            bias = s * bias
        elif typ == "Delay":
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
            a, c, shape = _dense_map(path, name, node, in_shape, dt)
            taps = {k: a @ m for k, m in taps.items()}
            bias = a @ bias + c
    if late:
        taps = {k + late: m for k, m in taps.items()}
    return source, taps, bias


def _out_shape(node):
    ot = node.output_type.get("output") if getattr(node, "output_type", None) else None
    if ot is None:
        return (0,)
    return tuple(int(v) for v in np.asarray(ot).reshape(-1))


def _bias_to_int(b: np.ndarray) -> tuple[np.ndarray, int]:
    peak = float(np.max(np.abs(b))) if b.size else 0.0
    exp = 0
    while exp < fx.BIAS_EXP_MAX and peak / (1 << exp) > fx.BIAS_MANT_MAX:
        exp += 1
    mant = np.clip(np.round(b / (1 << exp)), fx.BIAS_MANT_MIN, fx.BIAS_MANT_MAX).astype(np.int64)
    return mant, exp


def _intnet_from_thirdparty(graph, path, dt, input_scale) -> IntNetwork:
    import torch

    nodes, edges = flatten_graph(graph)
    # a loop without state is an error before anything else; loop edges carry the previous step
    _, delayed = execution_order(nodes, edges, str(path))
    preds: dict[str, list[str]] = {n: [] for n in nodes}
    for a, b in edges:
        preds[b].append(a)
    for n, node in nodes.items():
        if node_type(node) not in INTNET_TYPES:
            raise UserError(
                f"{path}: node '{n}' ({node_type(node)}) is not supported by the integer network / Lava build "
                f"(supported: {', '.join(INTNET_TYPES)})"
            )
        _check_parameters(path, n, node)
    inputs = [n for n in nodes if node_type(nodes[n]) == "Input" and not preds[n]]
    outputs = [n for n in nodes if node_type(nodes[n]) == "Output" and not any(a == n for a, _ in edges)]
    if len(inputs) != 1:
        raise UserError(f"{path}: {len(inputs)} graph inputs; the integer network takes exactly one Input")
    if len(outputs) < 1:
        raise UserError(f"{path}: no Output node")
    in_name = inputs[0]
    neurons = [n for n in nodes if node_type(nodes[n]) in NEURON_TYPES]
    dyn = {n: _neuron_dynamics(path, n, nodes[n], dt) for n in neurons}
    incoming: dict[str, list] = {n: [] for n in neurons}
    for n in neurons:
        for p in preds[n]:
            src, taps, bias = _trace_synapse_chain(path, nodes, preds, p, dt, n, delayed)
            if src in dyn and dyn[src]["vth"] is None:
                raise UserError(
                    f"{path}: node '{src}' ({dyn[src]['type']}) is a non-spiking neuron feeding '{n}'; Loihi "
                    "populations pass spikes only (expected a spiking neuron or the Input)"
                )
            incoming[n].append((src, taps, bias, p))
    # topological order of neurons; a neuron feeding itself (through a loop edge, so one step late)
    # is a recurrent projection within its population, the only recurrence Lava delivers in time
    order: list[str] = []
    placed = {in_name}
    remaining = list(neurons)
    while remaining:
        ready = [n for n in remaining if all(src in placed or src == n for src, *_ in incoming[n])]
        if not ready:
            # walk unplaced sources back until a neuron repeats: that is a loop, not just downstream of one
            walk = [remaining[0]]
            while True:
                nxt = next(s for s, *_ in incoming[walk[-1]] if s not in placed and s != walk[-1])
                if nxt in walk:
                    loop = walk[walk.index(nxt):][::-1]
                    break
                walk.append(nxt)
            raise UserError(
                f"{path}: recurrent loop between neurons '{loop[0]}' and '{loop[1]}' ("
                + " -> ".join(loop + [loop[0]]) + "): the integer network / Lava build supports recurrence "
                "only within one population (a neuron node feeding back onto itself); Lava cannot deliver a "
                "loop through two populations within one step"
            )
        for n in ready:
            order.append(n)
            placed.add(n)
            remaining.remove(n)
    out_src = preds[outputs[0]]
    while len(out_src) == 1 and node_type(nodes[out_src[0]]) == "Output":  # a subgraph's Output, inlined
        out_src = preds[out_src[0]]
    if len(out_src) != 1 or out_src[0] not in dyn:
        raise UserError(f"{path}: Output '{outputs[0]}' must be fed directly by one neuron node")
    out_name = out_src[0]

    x_scale = 1.0 if input_scale is None else float(input_scale)
    in_size = int(np.prod(_out_shape(nodes[in_name])))
    # each NIR neuron node becomes one population per distinct (du, dv): (population, neuron indices)
    split: dict[str, list[tuple[str, np.ndarray]]] = {in_name: [(in_name, np.arange(in_size))]}
    for n in order:
        groups = _groups(dyn[n])
        if len(groups) > 1 and dyn[n]["vth"] is None:
            raise UserError(f"{path}: node '{n}': parameter 'tau' differs between the neurons of a non-spiking "
                            "readout; the integer readout has one decay (expected a uniform value)")
        split[n] = [(n if len(groups) == 1 else f"{n}.{k}", idx) for k, idx in enumerate(groups)]
        # recurrent weights from a later decay group into an earlier one would be a loop between two
        # Loihi populations (a group feeding a later group, or itself, is fine)
        for src, taps, _, via in incoming[n]:
            if src != n or len(groups) == 1:
                continue
            for a, rows in enumerate(groups):
                for cols in groups[a + 1:]:
                    if any(np.any(m[np.ix_(rows, cols)]) for m in taps.values()):
                        raise UserError(
                            f"{path}: node '{n}': parameter 'tau' differs between its neurons, so it becomes one "
                            f"Loihi population per decay, and its recurrent weights ('{via}') would form a loop "
                            "between those populations, which Lava cannot deliver within a step (expected a "
                            "uniform tau for a recurrent neuron node)")
    pops, projs = [], []
    for n in order:
        d = dyn[n]
        for pop_name, rows in split[n]:
            du, dv = int(d["du"][rows[0]]), int(d["dv"][rows[0]])
            gain = d["gain"][rows]
            keep_syn = (du + 1) / fx.DECAY_UNITY
            # per-neuron voltage scale S: spiking -> one integer threshold; readout -> weights fill 8 bits.
            # The worst-case synaptic current (every source at its largest value, graded input 127, on
            # every tap, accumulated by the current decay) must not wrap Loihi's 24-bit current.
            peak_w = np.zeros(rows.size)
            peak_cur = np.zeros(rows.size)
            bias_ss = d["bias"][rows].copy()
            for src, taps, bias, _ in incoming[n]:
                per_src = 1.0 / x_scale if src == in_name else 1.0
                x_max = 127 if src == in_name else 1
                for m in taps.values():
                    if m.shape[0] != d["n"]:
                        raise UserError(f"{path}: node '{n}': receives {m.shape[0]} values, expected {d['n']}")
                    mr = np.abs(m[rows])
                    peak_w = np.maximum(peak_w, mr.max(axis=1) * np.abs(gain) * per_src)
                    peak_cur += mr.sum(axis=1) * np.abs(gain) * per_src * x_max / keep_syn
                bias_ss = bias_ss + gain / keep_syn * bias[rows]
            w_cap = fx.WEIGHT_MAX * 2.0**7
            b_cap = fx.BIAS_MANT_MAX * 2.0**fx.BIAS_EXP_MAX / (1 << fx.ACT_SHIFT)
            cur_cap = 0.9 * fx.STATE_MAX / (1 << fx.ACT_SHIFT)
            if d["vth"] is not None:
                rel = 1.0 / d["vth"][rows]  # S_i = vth_int * rel_i
                limits = [fx.VTH_MAX // 2]
                if np.any(peak_w > 0):
                    limits.append(w_cap / float(np.max(peak_w * rel)))
                    limits.append(cur_cap / float(np.max(peak_cur * rel)))
                if np.any(bias_ss != 0):
                    limits.append(b_cap / float(np.max(np.abs(bias_ss) * rel)))
                # below one, even the smallest threshold mantissa would clip weights or bias to
                # Loihi's ranges: a different network, so refuse it by name, value and limit
                if np.any(peak_w > 0) and w_cap / float(np.max(peak_w * rel)) < 1:
                    raise UserError(
                        f"{path}: node '{n}': a synaptic weight of {float(np.max(peak_w * rel)):.4g} thresholds per "
                        f"input unit exceeds Loihi's weight limit {int(w_cap)} (8-bit mantissa << 7) at every "
                        "threshold mantissa >= 1 (expected weights at most that many times the threshold)")
                if np.any(bias_ss != 0) and b_cap / float(np.max(np.abs(bias_ss) * rel)) < 1:
                    raise UserError(
                        f"{path}: node '{n}': a bias of {float(np.max(np.abs(bias_ss) * rel)):.4g} thresholds per step "
                        f"exceeds Loihi's bias limit {b_cap:.4g} (13-bit mantissa << 7, in synaptic units) at every "
                        "threshold mantissa >= 1")
                vth_int = int(max(1, math.floor(min(limits))))
                scale = vth_int * rel
                readout = False
            else:
                top = float(np.max(peak_w)) if np.any(peak_w > 0) else 1.0
                scale = np.full(rows.size, min(fx.WEIGHT_MAX / top, cur_cap / max(float(np.max(peak_cur)), 1e-300)))
                vth_int, readout = fx.VTH_MAX, True
            bias_mant, bias_exp = _bias_to_int(bias_ss * scale * (1 << fx.ACT_SHIFT))
            pops.append(Population(name=pop_name, size=int(rows.size), du=du, dv=dv, vth=vth_int, bias_mant=bias_mant,
                                   bias_exp=bias_exp, readout=readout,
                                   meta={"nir_node": n, "nir_type": d["type"], "neurons": rows.tolist(),
                                         "voltage_scale": scale.tolist()}))
            for src, taps, _, via in incoming[n]:
                per_src = 1.0 / x_scale if src == in_name else 1.0
                k = max(taps) + 1
                for src_pop, cols in split[src]:
                    guards.check_elements(path, f"node '{n}': projection from '{src_pop}' with {k} delay taps",
                                          (k, rows.size, cols.size))
                    w = np.zeros((k, rows.size, cols.size))
                    for j, m in taps.items():
                        w[j] = m[np.ix_(rows, cols)] * (gain * scale * per_src)[:, None]
                    if not np.any(w):
                        continue
                    mant, exp = fx.quantize_weights(torch.as_tensor(w))
                    base = f"{via}->{pop_name}" if via != src else f"{src}->{pop_name}"
                    name = base if len(split[src]) == 1 else f"{base}[{src_pop}]"
                    projs.append(Projection(name=name, source=src_pop, target=pop_name, weights=mant.numpy(),
                                            weight_exp=int(exp), origin={"kind": "nir", "via": via}))
    if dyn[out_name]["vth"] is not None:
        output = f"{out_name}.count"
        size = dyn[out_name]["n"]
        pops.append(Population(name=output, size=size, du=fx.DECAY_UNITY - 1, dv=0, vth=fx.VTH_MAX,
                               bias_mant=np.zeros(size, dtype=np.int64), readout=True,
                               meta={"role": "spike counter added by read_intnet", "added_by_tool": True}))
        for pop_name, rows in split[out_name]:
            w = np.zeros((1, size, rows.size), dtype=np.int64)
            w[0, rows, np.arange(rows.size)] = 2
            projs.append(Projection(name=f"{pop_name}->{output}", source=pop_name, target=output, weights=w,
                                    weight_exp=0, origin={"kind": "spike_count"}))
    else:
        output = split[out_name][0][0]
    try:
        return IntNetwork(input_size=in_size, input_scale=x_scale, populations=pops, projections=projs,
                          output=output, input_name=in_name, dt=dt,
                          meta={"source": "nir", "file": str(path), "discretisation": "forward Euler", "dt": dt})
    except IntNetworkError as exc:
        raise UserError(f"{path}: cannot be lowered to Loihi integers: {exc}") from None


def read_intnet(path: str | os.PathLike, dt: float | None = None, input_scale: float | None = None) -> IntNetwork:
    """Read a .nir file as an IntNetwork (exact for our files; forward-Euler quantized at dt otherwise).

    For files written by ``export_nir`` the integers are fixed: the stored dt and input scale are
    used, and a different ``dt`` is refused. For other graphs: ``dt`` defaults to the graph's stated dt, else
    1e-4 s; ``input_scale`` maps float input -> ``clip(round(x * input_scale), -128, 127)``,
    default 1 (spike or small-integer inputs).
    """
    graph = read_graph(path)
    ours = is_ours(graph)
    try:
        if ours:
            net = _intnet_from_ours(graph, path)
            if dt is not None and not (net.dt and math.isclose(dt, net.dt)):
                raise UserError(f"{path}: dt = {dt} given, but this file carries its own dt = {net.dt} s, for which "
                                "its Loihi integers were computed (expected no dt, or the same)")
            return net
        where = f"{path}: dt = {dt}"
        if dt is None:
            md = graph.metadata or {}
            dt = float(md["dt"]) if "dt" in md and np.ndim(md["dt"]) == 0 else NIR_PAPER_DT
            where = f"{path}: graph metadata field 'dt' = {dt}"
        if not (dt > 0 and math.isfinite(dt)):
            raise UserError(f"{where}: expected a positive, finite number of seconds per step")
        return _intnet_from_thirdparty(graph, path, float(dt), input_scale)
    except UserError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError, MemoryError) as exc:
        # The checks above name what they know; a file from elsewhere (or a corrupted one of ours)
        # can still hold values of the wrong kind deep inside, and that is bad input, not a crash.
        what = "lmu2neuro metadata" if ours else "graph parameters"
        raise UserError(f"{path}: malformed {what} ({type(exc).__name__}: {_one_line(exc)[:200]}); expected "
                        + ("the metadata `lmu2neuro export` writes" if ours else "numeric NIR parameters of "
                           "consistent shapes")) from None
