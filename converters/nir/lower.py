"""Anyone's NIR graph -> IntNetwork, quantized by forward Euler at a stated dt.

``lower_graph(graph, path, dt, input_scale, reset, conv, refractory)`` (reached through
``converters.nir.read.read_intnet``): any chain of stateless synapse nodes (``nodes.SYNAPSE_TYPES``:
Linear / Affine / Scale / Conv1d / Conv2d / pooling / Flatten) and Delays between neurons becomes
one projection. A chain that composes into one convolution (Conv1d / Conv2d, sum / average pooling
as a depthwise constant kernel, a per-channel Scale, Flatten, a Delay of one length; several
composed by ``core.conv.compose``) is a convolutional projection whose kernel is stored once;
its size guards bound the kernel and its synapses, never a dense matrix. Its float kernel is the
dense path's matrix in another layout (offsets that only ever meet padding are dropped), so the
weight exponent, thresholds and spikes are the dense path's bit for bit (``conv=False`` forces the
dense path; tested). A neuron node split by decay, or thresholds that differ within a channel,
expand the convolution to the dense path. Any other chain is a dense matrix per delay tap (a node
without a closed form here is composed by applying its float step from ``converters.nir.nodes``
to the identity basis). ``origin["ann_macs"]`` records the chain's own MACs per step
(NeuroBench's count: each Conv at every output position, each Linear its weights, pooling none)
where they differ from the projection's ``macs()``; a population takes its neuron node's frame
((C, L) or (C, H, W)) as ``shape``. Each neuron (LIF, CubaLIF, IF, LI, CubaLI, I)
becomes a Loihi population by forward Euler at ``dt`` (what the NIR paper's backends do):
``dv = round(4096 dt / tau_mem)``, ``du = round(4096 dt / tau_syn) - 1`` (4095 when there is no
synaptic state), per-step input gain ``g = (dt/tau_mem) r (dt/tau_syn) w_in`` (LIF: ``dt r / tau``,
IF / I: ``dt r``) and bias ``(dt/tau_mem) v_leak``. Each spiking neuron gets its own voltage scale
``vth / v_threshold``, so per-neuron thresholds become one integer threshold and the scale folds
into that neuron's weights and bias; neurons of one node with different decays become one
population per (du, dv) (``<node>.<k>``). A graph whose output is a spiking population gets a
readout population ``<name>.count`` that counts its spikes (integer network outputs are readouts).
Spiking populations reset to zero (what NIR's v_reset = 0 states) unless ``reset="subtract"`` is
given (Loihi 2 only; snnTorch's default, which NIR cannot state); a readout never spikes.
A Threshold node becomes a population with both decays 4095 (Loihi's shortest memory: 1/4096
of the last step survives) and gain 1. What cannot be expressed (recurrence between
populations, v_reset != 0, a non-spiking neuron feeding others) is named in a ``UserError``,
never dropped.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from converters.nir.graph import execution_order, flatten_graph, node_type
from converters.nir.nodes import INTNET_TYPES, KINDS, NEURON_TYPES, NO_CURRENT_STATE, SPIKING_TYPES
from converters.nir.synapse_chain import KernelChain, node_out_shape, trace_synapse_chain
from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core import guards
from lmu2neuro.core.errors import UserError
from lmu2neuro.core.intnet import ALWAYS_ON, IntNetwork, IntNetworkError, Population, Projection


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
    n, du, dv, gain, bias = KINDS[typ].loihi(node, dt, _arr)  # the node kind's own mapping (nodes.py)
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


def lower_graph(graph, path, dt: float, input_scale: float | None, reset: str | None = None,
                conv: bool = True, refractory: int = 0) -> IntNetwork:
    """A third-party ``nir.NIRGraph`` (read from ``path``, named in errors) as an IntNetwork at ``dt`` s per step.

    ``reset``: what a spike does to every spiking population (``fixed_point.RESETS``); None is
    what NIR states, "zero" (NIR has no field for a subtract reset: snnTorch writes v_reset = 0
    for both mechanisms). ``refractory``: steps every spiking population is held after a spike
    (NIR has no field for it; snnTorch's RLeaky zero reset is 1). ``conv=False`` expands every
    convolution into dense matrices (the reference the convolution path is tested against)."""
    reset = fx.check_reset(reset) or "zero"
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
            src, taps, bias, macs = trace_synapse_chain(path, nodes, preds, p, dt, n, delayed, conv=conv)
            if isinstance(taps, KernelChain) and (len(_groups(dyn[n])) > 1 or
                                                (src in dyn and len(_groups(dyn[src])) > 1)):
                # neurons with different decays become several populations: a kernel shared across
                # them is not one projection, so this chain is a dense matrix per population pair
                taps = taps.dense_taps(path, f"node '{n}': input from '{src}'")
            if src in dyn and dyn[src]["vth"] is None:
                raise UserError(
                    f"{path}: node '{src}' ({dyn[src]['type']}) is a non-spiking neuron feeding '{n}'; Loihi "
                    "populations pass spikes only (expected a spiking neuron or the Input)"
                )
            incoming[n].append((src, taps, bias, p, macs))
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
    in_size = int(np.prod(node_out_shape(nodes[in_name])))
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
        for src, taps, _, via, _ in incoming[n]:
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
            # a synapse's bias enters the current: kept there (du < 4095), it comes from the always-on
            # source, exact every step; without a kept current it is the same as a voltage bias
            kept = du != NO_CURRENT_STATE
            current_bias = np.zeros(rows.size)
            for src, taps, bias, *_ in incoming[n]:
                per_src = 1.0 / x_scale if src == in_name else 1.0
                x_max = 127 if src == in_name else 1
                if isinstance(taps, KernelChain):  # unsplit target: rows are all its neurons
                    row_max, row_sum = taps.row_peaks()
                    peak_w = np.maximum(peak_w, row_max * np.abs(gain) * per_src)
                    peak_cur += row_sum * np.abs(gain) * per_src * x_max / keep_syn
                    current_bias = current_bias + gain * bias[rows]
                    continue
                for m in taps.values():
                    if m.shape[0] != d["n"]:
                        raise UserError(f"{path}: node '{n}': receives {m.shape[0]} values, expected {d['n']}")
                    mr = np.abs(m[rows])
                    peak_w = np.maximum(peak_w, mr.max(axis=1) * np.abs(gain) * per_src)
                    peak_cur += mr.sum(axis=1) * np.abs(gain) * per_src * x_max / keep_syn
                current_bias = current_bias + gain * bias[rows]
            if kept:
                peak_w = np.maximum(peak_w, np.abs(current_bias))
                peak_cur += np.abs(current_bias) / keep_syn
            else:
                bias_ss = bias_ss + current_bias
                current_bias = np.zeros(rows.size)
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
            frame = node_out_shape(nodes[n])
            kw = dict(du=du, dv=dv, bias_mant=bias_mant, bias_exp=bias_exp,
                      meta={"nir_node": n, "nir_type": d["type"], "neurons": rows.tolist(),
                            "voltage_scale": scale.tolist()},
                      shape=frame if len(split[n]) == 1 and len(frame) in (2, 3)
                      and int(np.prod(frame)) == rows.size else None)
            pops.append(Population.readout_of(pop_name, int(rows.size), **kw) if readout else
                        Population(pop_name, int(rows.size), vth=vth_int, reset=reset, refractory=int(refractory),
                                   **kw))
            if np.any(current_bias != 0):
                mant, exp = fx.quantize_weights(torch.as_tensor((current_bias * scale)[None, :, None]))
                projs.append(Projection(name=f"{ALWAYS_ON}->{pop_name}", source=ALWAYS_ON, target=pop_name,
                                        weights=mant.numpy(), weight_exp=int(exp),
                                        origin={"kind": "nir", "helper": "bias source"}))
            for src, taps, _, via, macs in incoming[n]:
                per_src = 1.0 / x_scale if src == in_name else 1.0
                base = f"{via}->{pop_name}" if via != src else f"{src}->{pop_name}"
                origin = {"kind": "nir", "via": via}
                if isinstance(taps, KernelChain):
                    factor = (gain * scale * per_src).reshape(taps.kernel.shape[1], -1)
                    if np.all(factor == factor[:, :1]):  # one factor per output channel: the kernel holds it
                        w = taps.kernel * factor[:, 0].reshape((1, -1) + (1,) * (taps.kernel.ndim - 2))
                        if not np.any(w):
                            continue
                        mant, exp = fx.quantize_weights(torch.as_tensor(w))
                        projs.append(Projection(name=base, source=src, target=pop_name, weights=mant.numpy(),
                                                weight_exp=int(exp), origin={**origin, "ann_macs": int(macs)},
                                                conv=taps.geometry))  # ann_macs kept where it differs from macs()
                        continue
                    # thresholds that differ within a channel scale each neuron's weights differently
                    taps = taps.dense_taps(path, f"node '{n}': input from '{src}' (thresholds differ within a channel)")
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
                    name = base if len(split[src]) == 1 else f"{base}[{src_pop}]"
                    whole = len(split[src]) == 1 and len(split[n]) == 1  # a split part has no MACs of its own
                    projs.append(Projection(name=name, source=src_pop, target=pop_name, weights=mant.numpy(),
                                            weight_exp=int(exp),
                                            origin={**origin, "ann_macs": int(macs)} if whole else dict(origin)))
    if dyn[out_name]["vth"] is not None:
        output = f"{out_name}.count"
        size = dyn[out_name]["n"]
        pops.append(Population.readout_of(output, size, meta={"role": "spike counter added by read_intnet",
                                                              "added_by_tool": True}))
        for pop_name, rows in split[out_name]:
            w = np.zeros((1, size, rows.size), dtype=np.int64)
            w[0, rows, np.arange(rows.size)] = 2
            projs.append(Projection(name=f"{pop_name}->{output}", source=pop_name, target=output, weights=w,
                                    weight_exp=0, origin={"kind": "spike_count", "helper": "spike-count readout"}))
    else:
        output = split[out_name][0][0]
    if any(s.source == ALWAYS_ON for s in projs):
        pops.insert(0, Population.always_on())
    try:
        return IntNetwork(input_size=in_size, input_scale=x_scale, populations=pops, projections=projs,
                          output=output, input_name=in_name, dt=dt,
                          meta={"source": "nir", "file": str(path), "discretisation": "forward Euler", "dt": dt})
    except IntNetworkError as exc:
        raise UserError(f"{path}: cannot be lowered to Loihi integers: {exc}") from None


