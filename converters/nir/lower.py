"""Anyone's NIR graph -> IntNetwork, quantized by forward Euler at a stated dt.

``lower_graph(graph, path, dt, input_scale)`` (reached through ``converters.nir.read.read_intnet``):
any chain of stateless synapse nodes (``nodes.SYNAPSE_TYPES``: Linear / Affine / Scale / Conv1d /
Conv2d / pooling / Flatten) and Delays between neurons becomes one projection (a dense matrix per
delay tap; a node without a closed form here is composed by applying its float step from
``converters.nir.nodes`` to the identity basis), and each neuron (LIF, CubaLIF, IF, LI, CubaLI, I)
becomes a Loihi population by forward Euler at ``dt`` (what the NIR paper's backends do):
``dv = round(4096 dt / tau_mem)``, ``du = round(4096 dt / tau_syn) - 1`` (4095 when there is no
synaptic state), per-step input gain ``g = (dt/tau_mem) r (dt/tau_syn) w_in`` (LIF: ``dt r / tau``,
IF / I: ``dt r``) and bias ``(dt/tau_mem) v_leak``. Each spiking neuron gets its own voltage scale
``vth / v_threshold``, so per-neuron thresholds become one integer threshold and the scale folds
into that neuron's weights and bias; neurons of one node with different decays become one
population per (du, dv) (``<node>.<k>``). A graph whose output is a spiking population gets a
readout population ``<name>.count`` that counts its spikes (integer network outputs are readouts).
A Threshold node becomes a population with both decays 4095 (Loihi's shortest memory: 1/4096
of the last step survives) and gain 1. What cannot be expressed (recurrence between
populations, v_reset != 0, a non-spiking neuron feeding others) is named in a ``UserError``,
never dropped.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch

from converters.nir.graph import execution_order, flatten_graph, node_type, one_line
from converters.nir.nodes import INTNET_TYPES, KINDS, NEURON_TYPES, SPIKING_TYPES, SYNAPSE_TYPES, float_step, prepare
from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core import guards
from lmu2neuro.core.errors import UserError
from lmu2neuro.core.intnet import IntNetwork, IntNetworkError, Population, Projection

# du of a neuron without synaptic state: the whole current is replaced every step
NO_CURRENT_STATE = fx.DECAY_UNITY - 1


def _arr(node, f, n=None):
    # neuron parameters of a conv layer are (C, H, W): one value per neuron in C order
    v = np.asarray(getattr(node, f), dtype=np.float64).reshape(-1)
    return np.broadcast_to(v, (n,)).copy() if n is not None else v


def _check_parameters(path, name, node) -> None:
    """Every numeric parameter finite, every time constant positive: named, before any arithmetic
    turns a NaN into an arbitrary integer or a zero tau into an infinite weight."""
    if KINDS[node_type(node)].role in ("graph", "io"):
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
        du, dv, gain, bias = np.full(n, NO_CURRENT_STATE), fx.dv_from_removed(k), k * r, k * vl
    elif typ in ("CubaLIF", "CubaLI"):
        tm = _arr(node, "tau_mem")
        n = tm.size
        ts = _arr(node, "tau_syn", n)
        ks, km = dt / ts, dt / tm
        r, vl, w_in = _arr(node, "r", n), _arr(node, "v_leak", n), _arr(node, "w_in", n)
        du = fx.du_from_removed(ks)
        dv, gain, bias = fx.dv_from_removed(km), km * r * ks * w_in, km * vl
    elif typ in ("IF", "I"):
        r = _arr(node, "r")
        n = r.size
        du, dv, gain, bias = np.full(n, NO_CURRENT_STATE), np.zeros(n, dtype=np.int64), dt * r, np.zeros(n)
    elif typ == "Threshold":
        # Stateless: the shortest memory Loihi has (both decays 4095 keep 1/4096 of the last
        # step, truncated toward zero) and the whole input every step, independent of dt.
        n = _arr(node, "threshold").size
        du = dv = np.full(n, NO_CURRENT_STATE)
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
        if KINDS[typ].role == "io":
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
            a, c, shape = _dense_map(path, name, node, in_shape)
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


def lower_graph(graph, path, dt: float, input_scale: float | None) -> IntNetwork:
    """A third-party ``nir.NIRGraph`` (read from ``path``, named in errors) as an IntNetwork at ``dt`` s per step."""
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
            keep_syn = fx.current_removed(du)
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
            bias_mant, bias_exp = fx.quantize_bias(bias_ss * scale * (1 << fx.ACT_SHIFT))
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


