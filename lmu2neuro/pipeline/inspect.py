"""What is inside a .nir file: nodes, edges, recurrent loops, metadata, and whether we can deploy it."""

from __future__ import annotations

import os

import numpy as np

from converters.nir.graph import execution_order, flatten_graph, node_type
from converters.nir.metadata import META_KEY, decode_meta
from converters.nir.nodes import INTNET_TYPES, PARAM_FIELDS
from converters.nir.read import is_ours, read_graph, read_intnet
from converters.netx.read import summarize_netx
from converters.network_file import file_kind
from lmu2neuro.analysis.counting import model_weights
from lmu2neuro.core.errors import UserError

MAX_EDGES_SHOWN = 30


def _shape(v) -> list[int] | None:
    if v is None:
        return None
    return [int(s) for s in np.asarray(v).reshape(-1)]


def inspect_nir(path: str | os.PathLike) -> dict:
    """A JSON-able summary of a NIR file (see ``format_summary`` for the text form)."""
    if file_kind(path) == "netx":
        return summarize_netx(path)
    graph = read_graph(path)
    nodes, edges = flatten_graph(graph)
    rows = []
    for name, node in nodes.items():
        params = sum(int(np.asarray(getattr(node, f)).size) for f in PARAM_FIELDS
                     if getattr(node, f, None) is not None and not isinstance(getattr(node, f), str))
        md = dict(node.metadata or {})
        rows.append({
            "name": name,
            "type": node_type(node),
            "input_shape": _shape((node.input_type or {}).get("input")),
            "output_shape": _shape((node.output_type or {}).get("output")),
            "parameters": params,
            "metadata": sorted(md),
        })
    # a loop without state has no defined value in any tool: an error, not a line of the summary
    _, delayed = execution_order(nodes, edges, str(path))
    loops = [list(e) for e in sorted(delayed)]
    unsupported = sorted({f"{r['name']} ({r['type']})" for r in rows if r["type"] not in INTNET_TYPES})
    lava_ok, reason, net = False, None, None
    try:
        net = read_intnet(path)
        lava_ok = True
    except UserError as exc:
        reason = str(exc)
    populations = [] if net is None else net.population_summary()
    if net is not None:
        for row in populations:  # the author's layer weights, apart from what the chip stores
            into = net.projections_into(row["name"])
            row["model_weights_in"] = sum(model_weights(s)[0] for s in into)
            row["helpers_in"] = sorted({s.helper for s in into if s.helper})
    meta_summary: dict = {}
    gm = graph.metadata or {}
    if is_ours(graph) and net is not None:  # read_intnet has validated the metadata
        m = decode_meta(gm[META_KEY])
        meta_summary = {k: m[k] for k in ("format", "dt", "input_size", "input_scale", "output", "populations", "reset")}
        meta_summary["projections"] = [
            {k: p[k] for k in ("name", "source", "target", "taps", "weight_exp")} for p in m["projections"]
        ]
    else:
        meta_summary = {k: (v if isinstance(v, (str, int, float)) else str(type(v).__name__)) for k, v in gm.items()}
    return {
        "file": str(path),
        "written_by_lmu2neuro": is_ours(graph),
        "nodes": rows,
        "edges": [list(e) for e in edges],
        "recurrent_edges": loops,
        "metadata": meta_summary,
        "total_parameters": int(sum(r["parameters"] for r in rows)),
        "lava_supported": lava_ok,
        "loihi_populations": populations,
        "unsupported_nodes": unsupported,
        "lava_reason": reason,
    }


def format_summary(info: dict) -> str:
    """The summary as text a person reads."""
    lines = [f"{info['file']}: {len(info['nodes'])} nodes, {len(info['edges'])} edges, "
             f"{info['total_parameters']} parameters"
             + (" (written by lmu2neuro)" if info["written_by_lmu2neuro"] else "")]
    w = max([len(r["name"]) for r in info["nodes"]] + [4])
    lines.append(f"  {'node':<{w}}  {'type':<9} {'in':>12} {'out':>12} {'params':>8}")
    for r in info["nodes"]:
        lines.append(f"  {r['name']:<{w}}  {r['type']:<9} {str(r['input_shape']):>12} {str(r['output_shape']):>12} "
                     f"{r['parameters']:>8}")
    shown = info["edges"][:MAX_EDGES_SHOWN]
    more = len(info["edges"]) - len(shown)
    lines.append(f"edges ({len(info['edges'])}): " + ", ".join(f"{a}->{b}" for a, b in shown)
                 + (f", ... {more} more (--json lists all)" if more else ""))
    if info["recurrent_edges"]:
        lines.append("recurrent loops (edge read one step late): "
                     + ", ".join(f"{a}->{b}" for a, b in info["recurrent_edges"]))
    if info["metadata"]:
        lines.append("metadata: " + ", ".join(f"{k}={v}" for k, v in info["metadata"].items() if k != "projections"))
    if info["loihi_populations"]:
        lines.append("Loihi populations (integers as deployed):")
        pw = max(len(p["name"]) for p in info["loihi_populations"])
        for p in info["loihi_populations"]:
            lines.append(f"  {p['name']:<{pw}}  n={p['size']:<5} du={p['du']:<5} dv={p['dv']:<5} vth={p['vth']:<7} "
                         f"bias_exp={p['bias_exp']} taps_in={p['incoming_taps']} "
                         f"weights_in={p.get('model_weights_in', 0)} stored_in={p.get('incoming_stored_weights', 0)} "
                         f"synapses_in={p.get('incoming_synapses', 0)}"
                         + (f"  helpers: {', '.join(p['helpers_in'])}" if p.get("helpers_in") else "")
                         + ("  conv" if p.get("incoming_conv") else "") + ("  readout" if p["readout"] else "")
                         + (f"  kind={p['kind']} {p.get('kind_params', {})}" if p.get("kind", "cuba_lif") != "cuba_lif"
                            else ""))
    if info["lava_supported"]:
        lines.append("Lava build: supported (every node lowers to Loihi integers)")
    else:
        lines.append(f"Lava build: NOT supported: {info['lava_reason']}")
    return "\n".join(lines)
