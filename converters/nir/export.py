"""IntNetwork -> standard NIR graph (nir 1.0.8), with the exact Loihi integers as node metadata.

The graph is continuous-time NIR that any NIR tool reads; it states the dynamics our integer
network approximates when simulated with forward Euler at the stored ``dt``. The integers that
make the deployment bit-exact travel alongside as metadata, so ``converters.nir.read.read_intnet``
rebuilds the IntNetwork exactly.

Units. One float unit of membrane voltage is one unit of Loihi synaptic input ``a`` (``v_int / 64``):
a tap's float weight is ``mantissa * 2**weight_exp``, a threshold is ``vth``, a bias is
``(bias_mant << bias_exp) / 64``. The graph's Input consumes the model's float features, so the
weights leaving the input are multiplied by ``input_scale`` (the deployed network quantizes
``x`` as ``clip(round(x * input_scale), -128, 127)``).

Mapping (forward Euler at dt reproduces the Loihi update up to its truncations):
- population, dv > 0, spiking   -> ``CubaLIF``: tau_syn = dt * 4096 / (du + 1), tau_mem = dt * 4096 / dv,
  w_in = tau_syn / dt, r = tau_mem / dt, v_leak = bias / (dv / 4096), v_reset = 0, v_threshold = vth;
  with du = 4095 the bias rides on the incoming Affine instead and v_leak = 0 (same per-step input)
- population, dv = 0, du = 4095 -> ``IF`` (spiking) or ``I`` (readout, never spikes), r = 1 / dt; the
  bias then rides as the bias of an ``Affine`` into the neuron (no v_leak exists there)
- readout with dv > 0           -> ``CubaLI`` (du < 4095) or ``LI`` (du = 4095)
- projection with k taps        -> per tap j an ``Affine``/``Linear`` and, for j > 0, a ``Delay`` of j * dt
- convolutional projection      -> per tap j a ``Conv1d`` / ``Conv2d`` (with its input shape) holding the
  deployed kernel (grouped kernels written with groups = 1, the zeros across groups spelled out:
  nir 1.0.8's type inference takes a grouped kernel's channels for the input's); a population fed
  only by convolutions is a neuron node of their output frame, and a dense projection out of it
  starts with a ``Flatten``; a bias the neuron node cannot hold rides on the convolution's
  per-channel bias. NIR has no reshape, so a convolution out of a flat population is refused.
- each population's refractory period (``Population.refractory``, steps held after a spike) is in
  its metadata only: NIR's LIF has no refractory field (a reader of the bare graph runs without it);
- each population's reset (``Population.reset``) and frame are in its metadata; NIR's v_reset = 0
  states the zero reset only (a subtract reset is ``v - v_threshold`` in the step it fires)
- projection of origin ``lmu_fir`` from a single neuron u -> ``Linear(B/theta)`` into an integrator
  ``I`` (r = 1/dt) with the recurrent ``Linear(A/theta)``, then ``Linear(G)``, the folded batch norm,
  into the target; G = diag(origin["bn_scale"]) when the lowering states it (else a least-squares
  fit to the quantized FIR), so G @ H matches the FIR to quantization error (stored as
  ``fit_relative_error`` in the node's metadata). This loop is exact in continuous time; run it
  with its zero-order-hold solution (``converters.nir.float_executor`` method "exact"): forward Euler on
  A/theta at the model's own step diverges (|1 + eig| > 1 already for order 16, theta 8).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from converters.nir.metadata import FORMAT, META_KEY, encode_meta
from lmu2neuro.core import atomic
from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core import neurons
from lmu2neuro.core.conv import ungroup
from lmu2neuro.core.errors import UserError
from lmu2neuro.core.intnet import IntNetwork, Population, Projection
from lmu2neuro.core.legendre import impulse_response, lmu_state_space

# Seconds per step when neither the caller nor the network states one: the NIR paper's convention,
# which snnTorch's importer hard-codes (it rejects a CubaLIF whose r != tau_mem / 1e-4).
DEFAULT_DT = 1e-4


# -- the exporter -----------------------------------------------------------------------------------
def _neuron_node(pop: Population, dt: float):
    """The continuous-time NIR neuron for one population, and the bias it could not hold (float/neuron)."""
    import nir

    n = pop.size
    ones = np.ones(n, dtype=np.float64)
    bias = np.asarray(pop.bias, dtype=np.float64) / (1 << fx.ACT_SHIFT)
    vth = ones * float(pop.vth)
    zero = np.zeros(n, dtype=np.float64)
    tau_syn = dt / fx.current_removed(pop.du)
    if pop.dv == 0:
        if pop.du != fx.DECAY_UNITY - 1:
            raise UserError(
                f"population '{pop.name}': du = {pop.du} with dv = 0 (a current-based neuron without "
                "leak) has no standard NIR node; expected dv > 0 or du = 4095"
            )
        r = ones / dt
        node = nir.I(r=r) if pop.readout else nir.IF(r=r, v_threshold=vth, v_reset=zero)
        return node, bias
    tau_mem = dt / fx.voltage_removed(pop.dv)
    keep = fx.voltage_removed(pop.dv)
    # Without synaptic state (du = 4095, tau_syn = dt) a bias on the incoming Affine is the same
    # per-step input as v_leak, and tools that reject v_leak != 0 (snnTorch's importer) still load it.
    carried = pop.du == fx.DECAY_UNITY - 1
    v_leak = zero if carried else bias / keep
    bias = bias if carried else None
    if pop.readout:
        if carried:
            return nir.LI(tau=ones * tau_mem, r=ones * tau_mem / dt, v_leak=v_leak), bias
        return (
            nir.CubaLI(
                tau_syn=ones * tau_syn, tau_mem=ones * tau_mem, r=ones * tau_mem / dt, v_leak=v_leak, w_in=ones * tau_syn / dt
            ),
            None,
        )
    node = nir.CubaLIF(
        tau_syn=ones * tau_syn,
        tau_mem=ones * tau_mem,
        r=ones * tau_mem / dt,
        v_leak=v_leak,
        v_threshold=vth,
        v_reset=zero,
        w_in=ones * tau_syn / dt,
    )
    return node, bias


def _lmu_expressible(net: IntNetwork, proj: Projection) -> bool:
    o = proj.origin or {}
    return (
        o.get("kind") == "lmu_fir"
        and net.size_of(proj.source) == 1
        and "order" in o
        and "theta" in o
        and int(o["order"]) > 0
    )



def _frames(net: IntNetwork) -> dict[str, tuple[int, ...]]:
    """The shape each population's (and the input's) NIR node states. NIR has no reshape, and a
    Conv node takes the frame (C, L) or (C, H, W): a population fed only by convolutions that
    agree is that frame (a dense projection out of it starts with a Flatten); anything fed by a
    dense projection is flat, and a convolution out of it cannot be stated."""
    frames: dict[str, tuple[int, ...]] = {}
    into_input = [s.conv.in_shape for s in net.projections if s.source == net.input_name and s.conv is not None]
    frames[net.input_name] = tuple(into_input[0]) if into_input and len(set(into_input)) == 1 else (net.input_size,)
    helpers = _helper_sources(net)
    for pop in net.populations:
        incoming = [s for s in net.projections_into(pop.name) if s.source not in helpers]
        outs = {tuple(s.out_shape) for s in incoming if s.conv is not None}
        all_conv = incoming and all(s.conv is not None for s in incoming)
        frames[pop.name] = next(iter(outs)) if all_conv and len(outs) == 1 else (pop.size,)
    for s in net.projections:
        if s.conv is not None and tuple(frames[s.source]) != tuple(s.conv.in_shape):
            raise UserError(f"projection '{s.name}': a convolution over the frame {tuple(s.conv.in_shape)} of "
                            f"'{s.source}', whose NIR node is {frames[s.source]} (it has dense or differently "
                            "shaped inputs, and NIR has no reshape); expected its inputs to be convolutions "
                            "with that output frame")
    return frames


def _reshape_params(node, frame) -> None:
    """A neuron node's per-neuron arrays in the population's frame (C order, as its neurons)."""
    if len(frame) == 1:
        return
    for key, value in list(vars(node).items()):
        if isinstance(value, np.ndarray) and value.ndim == 1 and value.size == int(np.prod(frame)):
            setattr(node, key, value.reshape(frame))
    node.__post_init__()  # the node's input / output types follow its parameters


def _conv_node(s: Projection, kernel: np.ndarray):
    """One tap of a convolution as nir.Conv1d / Conv2d. Written with groups = 1 and the grouped
    kernel expanded over all input channels (zeros across groups): nir 1.0.8 infers a grouped
    convolution's input channels as the kernel's, so its own type check rejects groups > 1;
    the metadata keeps the grouped integer kernel."""
    import nir

    c = s.conv
    c_out = kernel.shape[0]
    full = ungroup(np.array(kernel, dtype=np.float64), c.in_shape[0], c.groups)
    if c.dims == 1:
        return nir.Conv1d(input_shape=int(c.in_shape[1]), weight=full, stride=int(c.stride[0]),
                          padding=int(c.padding[0]), dilation=int(c.dilation[0]), groups=1, bias=np.zeros(c_out))
    return nir.Conv2d(input_shape=tuple(int(v) for v in c.in_shape[1:]), weight=full, stride=c.stride,
                      padding=c.padding, dilation=c.dilation, groups=1, bias=np.zeros(c_out))


def _helper_sources(net: IntNetwork) -> set[str]:
    """Helper populations a conversion added as sources (the always-on bias source): not written as
    NIR nodes. What they give is a constant synaptic current, which NIR states as the bias of the
    synapse node into the target (a Conv's or Affine's bias enters a CubaLIF's current); the exact
    integers travel in the graph metadata (``helpers``)."""
    return {p.name for p in net.populations if p.helper and not net.projections_into(p.name)}


def _helper_meta(net: IntNetwork, helpers: set[str]) -> dict:
    return {"populations": [{"name": p.name, "du": p.du, "dv": p.dv, "vth": p.vth, "bias_exp": p.bias_exp,
                             "bias_mant": [int(v) for v in p.bias_mant], "meta": p.meta, "reset": p.reset}
                            for p in net.populations if p.name in helpers],
            "projections": [{"name": s.name, "source": s.source, "target": s.target, "weight_exp": s.weight_exp,
                             "weights": np.asarray(s.weights, dtype=np.int64).tolist(), "origin": s.origin}
                            for s in net.projections if s.source in helpers]}


def _carry_bias(nodes: dict, first: str, s: Projection, pending_bias: dict) -> None:
    """Put a population's bias (that its IF / I / LI node cannot hold) on its first synapse: a
    Linear becomes an Affine; a convolution takes it as its per-channel bias."""
    import nir

    bias = pending_bias.pop(s.target)
    node = nodes[first]
    if s.conv is None:
        nodes[first] = nir.Affine(weight=node.weight, bias=bias)
    else:
        per = bias.reshape(s.out_shape[0], -1)
        if np.any(per != per[:, :1]):
            raise UserError(f"population '{s.target}': its bias differs within a channel, and its neuron node holds "
                            f"no bias; the convolution '{s.name}' that feeds it holds one per channel (expected one "
                            "bias per channel)")
        node.bias = per[:, 0].copy()
        return
    nodes[first].metadata = node.metadata

def build_graph(net: IntNetwork, dt: float | None = None):
    """The ``nir.NIRGraph`` for ``net`` (see the module docstring for the mapping)."""
    import nir

    dt = float(dt if dt is not None else (net.dt if net.dt is not None else DEFAULT_DT))
    if not dt > 0:
        raise UserError(f"dt = {dt}: expected a positive number of seconds per step")
    for pop in net.populations:
        neurons.kind(pop.kind).require("nir_node", f"population '{pop.name}'")
    if net.bias_input is not None:
        raise UserError(f"population '{net.bias_input.target}': the input drives its bias (lava-dl's netx input "
                        "layer); NIR has no form for an input into a bias: write it as netx (--format netx)")
    for name in [p.name for p in net.populations] + [s.name for s in net.projections]:
        if "/" in name:
            raise UserError(f"layer name '{name}': '/' cannot appear in a NIR node name")
    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    out_name = "output" if "output" not in {p.name for p in net.populations} else "output_node"
    in_name = net.input_name
    frames = _frames(net)
    nodes[in_name] = nir.Input(input_type={"input": np.array(frames[in_name])})

    pending_bias: dict[str, np.ndarray] = {}
    helpers = _helper_sources(net)
    for s in net.projections:  # a constant current from a helper source: the bias of the first synapse into it
        if s.source in helpers:
            if s.conv is not None or s.taps != 1 or net.population(s.target).du == fx.DECAY_UNITY - 1:
                raise UserError(f"projection '{s.name}': a helper source's synapse must be one dense tap into a "
                                "neuron with a current (du < 4095)")
            pending_bias[s.target] = pending_bias.get(s.target, 0.0) + \
                np.asarray(s.weights, dtype=np.float64)[0, :, 0] * 2.0 ** s.weight_exp
    for order, pop in enumerate(net.populations):
        if pop.name in helpers:
            continue
        node, bias = _neuron_node(pop, dt)
        _reshape_params(node, frames[pop.name])
        node.metadata = {
            META_KEY: encode_meta(
                {"role": "population", "name": pop.name, "index": order, "du": pop.du, "dv": pop.dv, "vth": pop.vth,
                 "bias_exp": pop.bias_exp, "readout": bool(pop.readout), "meta": pop.meta, "reset": pop.reset,
                 "refractory": int(pop.refractory),
                 "shape": None if pop.shape is None else [int(v) for v in pop.shape]}
            ),
            "bias_mant": np.asarray(pop.bias_mant, dtype=np.int64),
        }
        nodes[pop.name] = node
        if bias is not None and np.any(bias != 0):
            pending_bias[pop.name] = bias

    def flat_of(name: str) -> str:
        """The node that gives ``name``'s output as a flat vector (a Flatten after a frame)."""
        if len(frames[name]) == 1:
            return name
        flat = f"{name}.flat"
        if flat not in nodes:
            nodes[flat] = nir.Flatten(input_type={"input": np.array(frames[name])}, start_dim=0, end_dim=-1)
            edges.append((name, flat))
        return flat

    proj_meta = []
    for s in net.projections:
        if s.source in helpers:
            continue
        w = np.asarray(s.weights, dtype=np.int64)
        scale = 2.0**s.weight_exp * (net.input_scale if s.source == in_name else 1.0)
        info = {"role": "projection", "name": s.name, "source": s.source, "target": s.target,
                "weight_exp": s.weight_exp, "taps": s.taps, "origin": s.origin}
        feeding: list[str] = []  # nodes whose output is summed into the target
        if _lmu_expressible(net, s):
            d, theta = int(s.origin["order"]), float(s.origin["theta"])
            a, b = lmu_state_space(d)
            h = impulse_response(d, theta, s.taps)  # (d, taps)
            fir = w[:, :, 0].astype(np.float64) * scale  # (taps, n_target)
            bn = np.asarray(s.origin.get("bn_scale", []), dtype=np.float64).reshape(-1)
            if bn.shape == (d,) and net.size_of(s.target) == d:
                g = np.diag(bn)  # the lowering's own statement: fir[k, i] ~= bn_scale[i] * H[i, k]
            else:  # no usable statement: the least-squares fit of the quantized FIR
                g, *_ = np.linalg.lstsq(h.T, fir, rcond=None)  # fir ~= h.T @ g
                g = g.T  # (n_target, d)
            rel = float(np.linalg.norm(h.T @ g.T - fir) / max(np.linalg.norm(fir), 1e-300))
            nodes[f"{s.name}.B"] = nir.Linear(weight=b / theta)
            nodes[f"{s.name}.m"] = nir.I(r=np.ones(d) / dt)
            nodes[f"{s.name}.A"] = nir.Linear(weight=a / theta)
            nodes[f"{s.name}.bn"] = nir.Linear(weight=g)
            edges += [(s.source, f"{s.name}.B"), (f"{s.name}.B", f"{s.name}.m"), (f"{s.name}.m", f"{s.name}.A"),
                      (f"{s.name}.A", f"{s.name}.m"), (f"{s.name}.m", f"{s.name}.bn")]
            nodes[f"{s.name}.bn"].metadata = {
                META_KEY: encode_meta({**info, "form": "lmu_integrator", "fit_relative_error": rel}),
                "weight_mant": w.astype(np.int16),
            }
            feeding.append(f"{s.name}.bn")
            info["nodes"] = [f"{s.name}.bn"]
        else:
            info["nodes"] = []
            if s.conv is not None:
                c = s.conv
                info["conv"] = {"in_shape": list(c.in_shape), "stride": list(c.stride), "padding": list(c.padding),
                                "dilation": list(c.dilation), "groups": c.groups}
            for j in range(s.taps):
                tap = f"{s.name}.tap{j}"
                nodes[tap] = (nir.Linear(weight=w[j].astype(np.float64) * scale) if s.conv is None
                              else _conv_node(s, w[j].astype(np.float64) * scale))
                nodes[tap].metadata = {
                    META_KEY: encode_meta({**info, "form": "taps", "tap": j}),
                    "weight_mant": w[j].astype(np.int16),
                }
                src = s.source if s.conv is not None else flat_of(s.source)
                if j == 0:
                    edges.append((src, tap))
                else:
                    dly = f"{s.name}.delay{j}"
                    nodes[dly] = nir.Delay(delay=np.full(frames[s.source] if s.conv is not None else
                                                         net.size_of(s.source), j * dt))
                    edges += [(src, dly), (dly, tap)]
                if s.conv is not None and tuple(frames[s.target]) != tuple(s.out_shape):  # a flat target
                    nodes[f"{tap}.flat"] = nir.Flatten(input_type={"input": np.array(s.out_shape)}, start_dim=0,
                                                       end_dim=-1)
                    edges.append((tap, f"{tap}.flat"))
                    feeding.append(f"{tap}.flat")
                else:
                    feeding.append(tap)
                info["nodes"].append(tap)
        if s.target in pending_bias:  # an IF / I neuron's bias, a helper's current: the first synapse into it
            _carry_bias(nodes, info["nodes"][0], s, pending_bias)
        edges += [(f, s.target) for f in feeding]
        proj_meta.append({k: v for k, v in info.items() if k != "origin"})
    if pending_bias:
        raise UserError(f"population '{next(iter(pending_bias))}': has a bias but no incoming projection to carry it")

    nodes[out_name] = nir.Output(output_type={"output": np.array(frames[net.output])})
    edges.append((net.output, out_name))
    graph_meta = {
        "format": FORMAT,
        "dt": dt,
        "input_name": in_name,
        "input_size": net.input_size,
        "input_scale": float(net.input_scale),
        "output": net.output,
        "output_node": out_name,
        "populations": [p.name for p in net.populations if p.name not in helpers],
        "projections": proj_meta,
        "helpers": _helper_meta(net, helpers),
        # each population's reset is in its metadata ("subtract": v - v_threshold in the step it
        # fires, Loihi 2 only); NIR's v_reset = 0 states only the zero reset
        "reset": "/".join(sorted({p.reset for p in net.populations if not p.readout})) or "zero",
        "spike_condition": "v > v_threshold",
        "units": "voltage in units of Loihi synaptic input (v_int / 64); graph input = float features",
        "net_meta": net.meta,
        "net_dt": net.dt,
    }
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata={META_KEY: encode_meta(graph_meta)})


def export_nir(net: IntNetwork, path: str | os.PathLike, dt: float | None = None) -> None:
    """Write ``net`` as a standard NIR file (``nir.write``), atomically.

    ``dt`` (seconds per step) sets the continuous-time constants; default: ``net.dt``, else 1e-4 s.
    The file passes ``nir.read`` with type checking, and ``read_intnet`` rebuilds ``net`` exactly.
    """
    import nir

    graph = build_graph(net, dt)
    with atomic.atomic_path(path) as tmp:
        nir.write(tmp, graph)
        # nir.read type-checks every edge: fail here, before the file replaces anything, not in a
        # user's tool later
        try:
            nir.read(tmp)
        except Exception as exc:  # pragma: no cover - would be a bug in build_graph
            raise RuntimeError(f"{path}: the graph built does not pass nir.read: {exc}") from exc

