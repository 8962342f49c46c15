"""The deployment report: operation counts, energy per profile, chip cores, plots; JSON/MD/HTML.

`build_report` computes everything as one plain dict; `write_report` writes it (atomically) as
report.json, report.md, a self-contained report.html (plots embedded as base64 PNG) and the PNGs.
"""

from __future__ import annotations

import base64
import html
import math
import os
from pathlib import Path

from lmu2neuro.core import atomic, guards
from lmu2neuro.core.guards import sha256_of
from lmu2neuro.reports import plots
from lmu2neuro.analysis.counting import count_operations
from lmu2neuro.analysis.energy import dense_baseline
from lmu2neuro.analysis.plan import plan_profile
from lmu2neuro.core.errors import UserError
from lmu2neuro.core.intnet import IntNetwork
from lmu2neuro.analysis.profiles import Profile, load_profile
from lmu2neuro.analysis.system import system_rows
from lmu2neuro.analysis.traffic import load_traffic
from lmu2neuro.reports.units import fmt_quantity, fmt_range

BASELINE_PROFILES = ("cpu", "gpu", "mac45nm")
SCHEMA = "lmu2neuro.report/1"


def check_model_hash(traffic: dict, model_path: str | os.PathLike, traffic_path: str = "traffic") -> str:
    """The model file's sha256; UserError when the traffic was recorded from another file."""
    digest = sha256_of(model_path)
    recorded = traffic.get("model_sha256")
    if recorded is None:
        raise UserError(f"{traffic_path}: field 'model_sha256' missing")
    if recorded != digest:
        raise UserError(f"{traffic_path}: field 'model_sha256' is {str(recorded)[:12]}..., but {model_path} has "
                        f"{digest[:12]}... (traffic from a different model: rerun `lmu2neuro simulate` on it)")
    return digest


def _calibration(prof: Profile) -> list[dict]:
    return [{"measurement": c.measurement, "quantity": c.quantity, "reference": c.reference.value,
             "reference_source": c.reference.source, "estimate": c.estimate.value if c.estimate else None,
             "unit": c.reference.unit.split(" ")[0], "ratio": c.ratio, "benchmark": c.benchmark, "reasons": c.reasons}
            for c in prof.calibration]


def build_report(traffic: dict, net: IntNetwork, profiles: list[Profile], step_time_s: float | None = None,
                 traffic_source: str = "traffic", model_path: str | None = None,
                 frame_period_s: float | None = None) -> dict:
    """Counts, and per profile: chip mapping, time, energy, power (each with its range), as one dict."""
    if step_time_s is not None and not (step_time_s > 0 and math.isfinite(step_time_s)):
        raise UserError(f"--step-time: expected a positive, finite number of seconds, got {step_time_s}")
    if frame_period_s is not None and not (frame_period_s > 0 and math.isfinite(frame_period_s)):
        raise UserError(f"--frame-period: expected a positive, finite number of seconds, got {frame_period_s}")
    counts = count_operations(traffic, net, traffic_source)
    entries = []
    for prof in profiles:
        plan = plan_profile(counts, net, traffic, prof, step_time_s=step_time_s, frame_period_s=frame_period_s)
        mapping, est, tm = plan["mapping"], plan["energy"], plan["time"]
        e = est.to_dict()
        rows = []
        cores = {c.layer: c.cores for c in mapping.layers} if mapping else {}
        for lay, le in zip(counts.layers, est.layers):
            rows.append({"layer": lay.name, "neurons": lay.neurons, "firing_rate": lay.firing_rate,
                         "op_kind": le.op_kind, "ops": le.ops,
                         "acs": lay.acs if est.event_driven else None, "macs": lay.macs if est.event_driven else None,
                         "dense_macs": lay.dense_macs, "neuron_updates": lay.neuron_updates, "spikes": lay.spikes,
                         "energy_j": le.dynamic_j, "ac_j": le.ac_j, "mac_j": le.mac_j,
                         "neuron_j": le.neuron_j, "spike_j": le.spike_j, "cores": cores.get(lay.name)})
        total = est.total_j
        entries.append({
            "profile": prof.name, "profile_path": prof.path, "kind": prof.kind, "floor": prof.floor,
            "description": " ".join(prof.description.split()), "label": est.label,
            "energy_per_inference_j": total[0] if total else est.dynamic_j[0],
            "dynamic_j": est.dynamic_j[0], "static_j": est.static_chips_j[0] if est.static_chips_j else None,
            "energy": e, "time": tm.to_dict() if tm else None, "power_w": plan["power_w"], "realtime": plan["realtime"],
            "step_time_s": tm.step_time_s[0] if tm else None, "event_driven": est.event_driven, "layers": rows,
            "message_j": est.message_j[0] if est.message_j else None,
            "dynamic_by_frame_j": est.dynamic_by_frame_j,
            "cores": mapping.cores if mapping else None, "chips": mapping.chips if mapping else None,
            "tiles": mapping.tiles if mapping else None,
            "chip_mapping": mapping.to_dict() if mapping else None,
            "violations": [v.message for v in mapping.violations] if mapping else [],
            "sources": est.sources, "leaves_out": est.leaves_out + (tm.leaves_out if tm else
                                                                     ["latency: the profile has no time model or throughput"]),
            "assumptions": est.assumptions + (mapping.assumptions[:3] if mapping else []),
            "calibration": _calibration(prof),
            "system": system_rows(prof.name, tm.latency_s[0] if tm else None) if prof.kind == "neuromorphic" else None,
        })
    baseline = []
    for n in BASELINE_PROFILES:
        prof = load_profile(n)
        baseline.append(dict(dense_baseline(counts, prof), description=" ".join(prof.description.split())))
    return {
        "schema": SCHEMA, "traffic": traffic_source, "model": model_path,
        "model_sha256": traffic.get("model_sha256"), "backend": traffic.get("backend"),
        "samples": counts.samples, "timesteps": counts.timesteps, "dt": traffic.get("dt"),
        "frame_period_s": frame_period_s,
        "accuracy": traffic.get("accuracy"), "accuracy_by_frame": traffic.get("accuracy_by_frame"),
        "accuracy_on": _accuracy_on(traffic, counts.samples),
        "fidelity": traffic.get("fidelity"),
        # (a) the model's own compute, under NeuroBench's names; (b) the chip's work, helpers named
        "neurobench": counts.neurobench,
        "chip_work": {k: counts.totals[k] for k in ("chip_synaptic_ops", "helper_synaptic_ops",
                                                     "helper_synaptic_ops_by_kind", "neuron_updates", "spikes")},
        "counts": counts.to_dict(), "profiles": entries, "dense_baseline": baseline,
        "note": ("Per inference (one sample of `timesteps` frames), averaged over the traffic's samples. Every figure "
                 "is an estimate with its [low-high] range from the profile's sources. Total = dynamic + static over "
                 "the latency, on the basis named; 'dynamic only' where a profile has no static power or no time; "
                 "a compute-only floor counts arithmetic only. See each profile's leaves_out."),
    }


def _accuracy_on(traffic: dict, samples: int) -> str:
    """Which samples the traffic's accuracy is on, in words."""
    inputs = traffic.get("inputs") or {}
    where = inputs.get("source") if isinstance(inputs, dict) else None
    return f"{samples} samples" + (f" ({where})" if where else " (the samples `simulate` ran)")


def _fmt(x, unit="") -> str:
    if x is None:
        return "n/a"
    if isinstance(x, (int, float)) and float(x).is_integer() and abs(x) < 1e12:
        return f"{int(x):,}{unit}"
    if abs(x) >= 1000:
        return f"{x:,.0f}{unit}"
    if abs(x) >= 0.01:
        return f"{x:.4g}{unit}"
    return f"{x:.3g}{unit}"


def _r(d: dict | None, unit: str | None = None) -> str:
    """'estimate [low-high]' of a range dict (in the prefix that fits ``unit``: 157 us), or n/a."""
    if d is None:
        return "n/a"
    if unit is not None:
        return fmt_range(d["estimate"], d["low"], d["high"], unit)
    def num(v: float) -> str:
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"
    if d["low"] == d["high"]:
        return num(d["estimate"])
    return f"{num(d['estimate'])} [{num(d['low'])}-{num(d['high'])}]"


def _count_tables(rep: dict) -> list[tuple[str, list[str], list[list[str]], str]]:
    """(a) the model's own compute under NeuroBench's names; (b) the chip's work, helpers named."""
    nb, cw = rep["neurobench"], rep["chip_work"]
    so = nb["SynapticOperations"]
    return [("The model's own compute per inference (NeuroBench 2.3 metrics)",
            ["SynapticOperations: Dense", "Effective_MACs", "Effective_ACs", "ActivationSparsity", "MembraneUpdates",
             "ParameterCount", "ConnectionSparsity", "Footprint (bytes, deployed)"],
            [[_fmt(so["Dense"]), _fmt(so["Effective_MACs"]), _fmt(so["Effective_ACs"]), _fmt(nb["ActivationSparsity"]),
              _fmt(nb["MembraneUpdates"]), _fmt(nb["ParameterCount"]), _fmt(nb["ConnectionSparsity"]),
              _fmt(nb["Footprint"])]],
            "The model as its author wrote it, by NeuroBench's definitions: Dense = every Linear / Conv layer's MACs "
            "every step (padding excluded; a pooling folded into a matrix counts as the pooling: nothing); "
            "effective ops have a nonzero input and weight, graded inputs MACs, spikes ACs; bias not counted. Synapses "
            "a conversion added (reset self connections, spike-count readouts, bias sources) count nothing here. "
            "MembraneUpdates = neurons x steps (an upper bound on NeuroBench's, which skips an unchanged membrane); "
            "Footprint at the deployed widths (NeuroBench's: the float model's bytes). Conventional baselines use "
            "these counts. docs/counting.md."),
           ("The chip's work per inference (every synaptic event the deployed network performs)",
            ["synaptic events", "of which by helpers", "helpers by kind", "neuron updates", "spikes sent"],
            [[_fmt(cw["chip_synaptic_ops"]), _fmt(cw["helper_synaptic_ops"]),
              "; ".join(f"{k}: {_fmt(v)}" for k, v in cw["helper_synaptic_ops_by_kind"].items()) or "none",
              _fmt(cw["neuron_updates"]), _fmt(cw["spikes"])]],
            "What the neuromorphic energy and time estimates charge: the model's own events plus those of the "
            "helpers a conversion added, named here.")]


def _tables(rep: dict) -> list[tuple[str, list[str], list[list[str]], str]]:
    """(title, header, rows, caption) shared by the Markdown and HTML writers."""
    out = _count_tables(rep)
    rows = []
    for p in rep["profiles"]:
        e, tm = p["energy"], p["time"]
        rows.append([p["profile"], p["label"], _r(e["dynamic_j"], "J"), _r(e["static_chips_j"], "J"), _r(e["total_j"], "J"),
                     _r(tm and {"estimate": tm["latency_s"][0], "low": tm["latency_s"][1], "high": tm["latency_s"][2]}, "s"),
                     _r(tm and {"estimate": tm["throughput_per_s"][0], "low": tm["throughput_per_s"][2],
                                "high": tm["throughput_per_s"][1]}),
                     _r(p["power_w"] and p["power_w"].get("total", p["power_w"]["dynamic"]), "W"),
                     _fmt(p["cores"]), _fmt(p["chips"]), str(len(p["violations"]))])
    out.append(("Energy, latency and power per inference by profile: estimate [low-high]",
                ["profile", "what the energy is", "dynamic", "static", "total", "latency",
                 "inferences/s", "power", "cores", "chips", "limit violations"], rows,
                "Static = static power x latency on the basis in 'what the energy is' (n/a: no static power or no "
                "latency, and the total is then not given). Power = total (or dynamic, for dynamic only) / latency. "
                "Latency of a neuromorphic profile from its time model (slowest core + barrier per step), of a "
                "conventional one from dense MACs / the device's throughput, both estimates; inferences/s one at a "
                "time. A compute-only floor has no time."))
    rows = []
    for p in rep["profiles"]:
        e = p["energy"]
        if e["static_chips_j"] is None:
            continue
        rows.append([p["profile"], e["static_basis"], _r(e["static_chips_j"], "J"), _r(e["static_pro_rata_j"], "J"),
                     _r(e["static_realtime_j"], "J")])
    if rows:
        out.append(("Static energy per inference on each basis", ["profile", "basis of the total", "chips occupied",
                    "pro rata for the cores used", "over T x frame period"], rows,
                    "Chips occupied: what a deployment pays. Pro rata: the network's share of a chip (cores used / "
                    "cores per chip). Over T x frame period: the chips stay on between frames when fed in real time "
                    "(--frame-period)."))
    if rep.get("frame_period_s"):
        rows = [[p["profile"], _r(p["realtime"]["factor"]) if p["realtime"] else "n/a",
                 ("yes" if p["realtime"]["keeps_up"] else ("at the estimate only" if p["realtime"]["keeps_up_at_estimate"]
                                                          else "no")) if p["realtime"] else "n/a"]
                for p in rep["profiles"]]
        out.append((f"Real time: one frame every {rep['frame_period_s']:g} s", ["profile", "real-time factor (step time / "
                    "frame period)", "keeps up"], rows,
                    "Below 1 the device finishes a step before the next frame arrives; 'yes' only when the high end "
                    "of the step time does."))
    out += _system_tables(rep) + _fidelity_tables(rep)
    basis = rep["dense_baseline"][0].get("basis", "") if rep["dense_baseline"] else ""
    out.append(("Dense non-spiking baseline (the same network as an ANN): tabled profiles",
                ["profile", "ANN passes", "MACs", "energy", "what it is", "source"],
                [[b["profile"] + (" (compute-only floor)" if b.get("floor") else ""), str(b.get("passes", "")),
                  _fmt(b["dense_macs"]), fmt_quantity(b["dynamic_j"], "J"),
                  "published, not measured here: " + b.get("description", ""), b["sources"]["energy.mac"]]
                 for b in rep["dense_baseline"]],
                f"{basis}. Leaves out memory traffic, I/O and static power. Each profile keeps the year and conditions "
                "of its measurement (its description and source); `lmu2neuro baseline` measures this machine."))
    out += _measured_tables(rep)
    for p in rep["profiles"]:
        kind = p["layers"][0]["op_kind"] if p["layers"] else "ops"
        q = lambda v: fmt_quantity(v, "J")  # noqa: E731
        rows = [[r["layer"], str(r["neurons"]), f"{100 * r['firing_rate']:.2f}%", _fmt(r["ops"]), q(r["ac_j"] + r["mac_j"]),
                 q(r["neuron_j"]), q(r["spike_j"]), q(r["energy_j"]), _fmt(r["cores"])] for r in p["layers"]]
        if p["message_j"]:
            rows.append(["(messages between cores)", "", "", "", "", "", "", q(p["message_j"]), ""])
        srcs = "; ".join(f"{k}: {v['value']}" for k, v in p["sources"].items())
        out.append((f"Per layer on {p['profile']} ({p['label']})",
                    ["layer", "neurons", "firing rate", kind, "synaptic energy", "neuron energy",
                     "spike energy", "dynamic energy", "cores"], rows,
                    f"Synaptic energy = the '{kind}' column x the per-op energy. Sources: {srcs}. "
                    "Leaves out: " + "; ".join(p["leaves_out"]) + "."))
        tm = p["time"]
        if tm and tm.get("per_core"):
            top = sorted(tm["per_core"], key=lambda c: -c["mean_busy_s"])[:8]
            out.append((f"Busiest cores on {p['profile']}", ["core", "layer", "neurons", "mean busy time per step"],
                        [[str(c["core"]), c["layer"], str(c["neurons"]), fmt_quantity(c["mean_busy_s"], "s")] for c in top],
                        f"Step time = the slowest core + barrier ({fmt_quantity(tm['barrier_s'][0], 's')} for {tm['tiles']} tile(s)); "
                        "a badly balanced mapping shows here as one core far busier than the rest."))
    return out


def _system_tables(rep: dict) -> list[tuple[str, list[str], list[list[str]], str]]:
    """Per neuromorphic profile: the chip-only estimate beside what a system adds (analysis.system)."""
    out = []
    for p in rep["profiles"]:
        if not p.get("system"):
            continue
        e, tm = p["energy"], p["time"]
        rows = [["chip: dynamic (modelled)", _r(e["dynamic_j"], "J"), "this report's estimate"],
                ["chip: static over the latency (modelled)", _r(e["static_chips_j"], "J"), e["static_basis"] or "n/a"]]
        for r in p["system"]:
            val = ("not modelled" if r["value"] is None else
                   f"{fmt_quantity(r['value'], r['unit'].split(' ')[0])}{' ' + r['unit'].split(' ', 1)[1] if ' ' in r['unit'] else ''}")
            if r["energy_j"] is not None:
                val += f" = {fmt_quantity(r['energy_j'], 'J')} per inference over the modelled latency"
            rows.append([f"system: {r['part']}", val, r["evidence"]])
        lat = fmt_quantity(tm["latency_s"][0], "s") if tm else "n/a"
        out.append((f"Chip and system on {p['profile']}", ["part", "per inference", "evidence"], rows,
                    f"The chip-only estimate (modelled latency {lat}) beside what a whole system adds, with the published "
                    "evidence where it exists and 'not modelled' where none does; shown beside the estimate, never "
                    "added into it."))
    return out


def _fidelity_tables(rep: dict) -> list[tuple[str, list[str], list[list[str]], str]]:
    """Float model vs deployed integers: the traffic's fidelity block, or the export's .fidelity.json."""
    fid = rep.get("fidelity")
    if not fid:
        return []
    n = fid.get("samples")
    split = f"{fid.get('dataset')} {fid.get('split')} split, " if fid.get("dataset") else ""
    on = fid.get("on") or f"{split}{n} samples"
    rows = [["prediction agreement (float vs deployed)", _fmt(fid.get("prediction_agreement")), on],
            ["float accuracy", _fmt(fid.get("float_accuracy")), on],
            ["deployed (integer) accuracy", _fmt(fid.get("int_accuracy")), on]]
    for name, lay in (fid.get("layers") or {}).items():
        rows.append([f"spikes, layer {name}: deployed / float", _fmt(lay.get("spike_ratio")),
                     f"{_fmt(lay.get('int_spikes'))} / {_fmt(lay.get('float_spikes'))}"])
    warn = fid.get("warn_below")
    cap = (f"Source: {fid.get('source', 'n/a')}" + (f" ({fid['file']})" if fid.get("file") else "") +
           (f". Agreement below {warn:g} is flagged." if warn is not None else "."))
    return [("Fidelity: the float model beside the deployed integers", ["quantity", "value", "on"], rows, cap)]


def _measured_tables(rep: dict) -> list[tuple[str, list[str], list[list[str]], str]]:
    """The rows `lmu2neuro baseline` measured on a real machine, with the tabled estimate's ratio."""
    m = rep.get("measured_baseline")
    if not m:
        return []
    rows = []
    for r in m["measured"]:
        e = r.get("energy_j_per_inference")
        energy = (fmt_quantity(e, "J") if e is not None else
                  ("<= " + fmt_quantity(r["energy_bound_j_per_inference"], "J") + " (bound)"
                   if r.get("energy_bound_j_per_inference") is not None else "not measured"))
        rows.append([r["network"], str(r["batch"]), str(r["passes"]),
                     f"{fmt_quantity(r['latency_s'], 's')} (fastest {fmt_quantity(r.get('latency_min_s'), 's')})",
                     f"{r['throughput_per_s']:.4g}", energy, r["energy_basis"]])
    t = m["tabled"]
    ratios = "; ".join(f"{k}: tabled '{t['profile']}' {fmt_quantity(t[k]['latency_s'], 's')} = "
                       f"{t[k]['latency_ratio_to_measured']:.3g}x the batch-1 measurement (median run)"
                       for k in ("ann", "snn_dense") if k in t and "latency_ratio_to_measured" in t[k])
    return [(f"Measured here: {m['device_name']} ({m['device']})",
             ["network", "batch", "passes", "latency per call: median", "inferences/s", "energy per inference",
              "energy basis"],
             rows, f"Measured by `lmu2neuro baseline` ({m.get('source_file', '')}), torch {m['torch']}"
                   f"{', %s threads' % m['threads'] if m.get('threads') else ''}. {ratios}.")]


def _calibration_lines(p: dict) -> list[str]:
    out = []
    for c in p["calibration"]:
        if c["ratio"] is None:
            out.append(f"{c['measurement']}: {c['quantity']} {c['reference']:.3g} {c['unit']} measured; not rebuilt "
                       f"({'; '.join(c['reasons'])}) [{c['benchmark']}]")
        else:
            out.append(f"{c['measurement']}: {c['quantity']} estimate {c['estimate']:.3g} {c['unit']} vs "
                       f"{c['reference']:.3g} {c['unit']} = {c['ratio']:.3g}x ({'; '.join(c['reasons'])}) [{c['benchmark']}]")
    return out


FIGURES = [
    ("energy_per_layer.png", "Dynamic energy per inference per layer for each profile (J, log scale)."),
    ("firing_rate.png", "Firing rate per spiking layer (% of neurons spiking per step), averaged over samples."),
    ("raster.png", "Spikes of one sample (time step vs neuron, layers stacked)."),
    ("streaming.png", "Accuracy after t frames (readout argmax after t frames) and cumulative dynamic energy per inference."),
]


def render_figures(rep: dict, traffic: dict) -> dict[str, bytes]:
    """PNG bytes of every report figure, by file name."""
    profiles = rep["profiles"]
    names = [r["layer"] for r in profiles[0]["layers"]] if profiles else [x["name"] for x in rep["counts"]["layers"]]
    srcs = "; ".join(f"{p['profile']}: {p['sources'].get('energy.ac', p['sources'].get('energy.mac', {})).get('value', 'n/a')}"
                     for p in profiles)
    figs = {"energy_per_layer.png": plots.layer_energy(
        names, {p["profile"]: [r["energy_j"] for r in p["layers"]] for p in profiles},
        f"Dynamic energy at the estimate (messages between cores not per layer); leaves out memory traffic and I/O. "
        f"Per-op sources: {srcs}")}
    spiking = [x for x in rep["counts"]["layers"] if x["kind"] != "readout"]
    figs["firing_rate.png"] = plots.firing_rates(
        [x["name"] for x in spiking], [x["firing_rate"] for x in spiking],
        f"Source: {rep['traffic']} ({rep['backend']} backend, {rep['samples']} samples x {rep['timesteps']} steps)")
    ras = traffic.get("raster") or {}
    sizes = {x["name"]: x["neurons"] for x in rep["counts"]["layers"]}
    events = {k: v for k, v in (ras.get("layers") or {}).items() if k in sizes}
    if events:
        figs["raster.png"] = plots.raster(events, sizes, rep["timesteps"], ras.get("sample", 0),
                                          f"Source: {rep['traffic']}, field raster")
    figs["streaming.png"] = plots.streaming(
        rep.get("accuracy_by_frame"), {p["profile"]: p["dynamic_by_frame_j"] for p in profiles},
        "Dynamic energy, per-op sources and omissions as in energy_per_layer.png. "
        "Energy per frame split from per-step spike and input counts (exact at the last frame); "
        "accuracy from the traffic's accuracy_by_frame" + ("" if rep.get("accuracy_by_frame") else " (not recorded: no labels)"))
    return figs


def to_markdown(rep: dict, figures: list[str]) -> str:
    lines = [f"# lmu2neuro deployment report", "",
             f"Model `{rep['model']}` (sha256 {str(rep['model_sha256'])[:12]}...), traffic `{rep['traffic']}` "
             f"({rep['backend']}, {rep['samples']} samples x {rep['timesteps']} steps), accuracy {_fmt(rep['accuracy'])} "
             f"on {rep['accuracy_on']}.", "",
             rep["note"], ""]
    for title, header, rows, caption in _tables(rep):
        lines += [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines += ["", caption, ""]
    for p in rep["profiles"]:
        lines += [f"### {p['profile']}: calibration", ""]
        cal = _calibration_lines(p)
        lines += [f"- {c}" for c in cal] or ["- not checked against any measurement yet"]
        lines.append("")
        if p["violations"] or p["assumptions"]:
            lines += [f"### {p['profile']}: limits and assumptions", ""]
            lines += [f"- limit violated: {v}" for v in p["violations"]]
            lines += [f"- assumed: {a}" for a in p["assumptions"]]
            lines.append("")
    for name, caption in FIGURES:
        if name in figures:
            lines += [f"![{caption}]({name})", "", f"*{caption}*", ""]
    return "\n".join(lines)


def to_html(rep: dict, figures: dict[str, bytes]) -> str:
    e = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>lmu2neuro report</title>",
             "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:.5em 0;display:block;max-width:100%;overflow-x:auto}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
             "th{background:#f3f3f3}td:first-child,td.t{text-align:left}.cap{font-size:.85em;color:#555}"
             "img{max-width:100%}</style>",
             "</head><body><h1>lmu2neuro deployment report</h1>",
             f"<p>Model <code>{e(str(rep['model']))}</code> (sha256 {e(str(rep['model_sha256'])[:12])}...), traffic "
             f"<code>{e(str(rep['traffic']))}</code> ({e(str(rep['backend']))}, {rep['samples']} samples x "
             f"{rep['timesteps']} steps), accuracy {e(_fmt(rep['accuracy']))} on {e(rep['accuracy_on'])}.</p>"
             f"<p>{e(rep['note'])}</p>",
             "<p>Files beside this page: " + ", ".join(
                 f"<a href='{e(n)}'>{e(n)}</a>" for n in ["report.json", "report.md", *rep.get("figures", [])]) + "</p>"]
    for title, header, rows, caption in _tables(rep):
        parts.append(f"<h2>{e(title)}</h2><table><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>")
        parts += ["<tr>" + "".join(f"<td class='t'>{e(c)}</td>" if _is_text(c) else f"<td>{e(c)}</td>" for c in r)
                  + "</tr>" for r in rows]
        parts.append(f"</table><p class='cap'>{e(caption)}</p>")
    for p in rep["profiles"]:
        cal = [f"<li>{e(c)}</li>" for c in _calibration_lines(p)] or ["<li>not checked against any measurement yet</li>"]
        parts.append(f"<h3>{e(p['profile'])}: calibration</h3><ul>{''.join(cal)}</ul>")
        items = [f"<li>limit violated: {e(v)}</li>" for v in p["violations"]]
        items += [f"<li>assumed: {e(a)}</li>" for a in p["assumptions"]]
        if items:
            parts.append(f"<h3>{e(p['profile'])}: limits and assumptions</h3><ul>{''.join(items)}</ul>")
    for name, caption in FIGURES:
        if name in figures:
            b64 = base64.b64encode(figures[name]).decode("ascii")
            parts.append(f"<figure><img alt='{e(caption)}' src='data:image/png;base64,{b64}'>"
                         f"<figcaption class='cap'>{e(caption)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _is_text(cell: str) -> bool:
    """A cell of words (a source, a basis), read left-aligned; figures stay right-aligned."""
    return len(cell) > 30 and sum(ch.isalpha() for ch in cell) > len(cell) / 2


def write_report(rep: dict, traffic: dict, out_dir: str | os.PathLike) -> list[Path]:
    """Write report.json, report.md, report.html and the PNGs into out_dir (each atomically)."""
    out = Path(out_dir)
    figures = render_figures(rep, traffic)
    rep = dict(rep, figures=sorted(figures))
    written = []
    for name, data in figures.items():
        atomic.write_bytes(out / name, data)
        written.append(out / name)
    atomic.write_json(out / "report.json", rep)
    atomic.write_text(out / "report.md", to_markdown(rep, list(figures)))
    atomic.write_text(out / "report.html", to_html(rep, figures))
    return written + [out / "report.json", out / "report.md", out / "report.html"]


def load_side_file(path, flag: str, needs: tuple[str, ...]) -> dict:
    """A JSON file another command wrote (a baseline, a fidelity report), checked for ``needs``."""
    from lmu2neuro.core.documents import load_json

    # a regular file, bounded in size, nesting and number length, as traffic.json is
    data = load_json(path, flag, "a JSON file that command writes")
    missing = [k for k in needs if not isinstance(data, dict) or k not in data]
    if missing:
        raise UserError(f"{path}: {flag}: field '{missing[0]}' missing (expected the file that command writes)")
    return data


def make_report(traffic_path: str | os.PathLike, model_path: str | os.PathLike | None, profile_names: list[str],
                out_dir: str | os.PathLike, step_time_s: float | None = None, frame_period_s: float | None = None,
                measured: str | os.PathLike | None = None) -> dict:
    """Everything `lmu2neuro report` does: check inputs, compute, write; returns the report dict.

    ``model_path`` None: the model the traffic names (its sha256 is checked all the same).
    ``measured``: a JSON file of `lmu2neuro baseline`, shown beside the tabled profiles. The
    fidelity block is the traffic's, else the export's MODEL.fidelity.json beside the model.
    """
    if not profile_names:
        raise UserError("--profile: give at least one profile name or YAML path (see `lmu2neuro profiles`)")
    for flag, v in (("--step-time", step_time_s), ("--frame-period", frame_period_s)):
        if v is not None and not (v > 0 and math.isfinite(v)):
            raise UserError(f"{flag}: expected a positive, finite number of seconds, got {v}")
    profiles = [load_profile(n) for n in profile_names]  # bad profiles fail before any heavy work
    traffic = load_traffic(traffic_path)
    if model_path is None:
        model_path = traffic.get("model")
        if not isinstance(model_path, str) or not model_path or len(model_path) > 4096 or "\0" in model_path:
            raise UserError(f"{traffic_path}: field 'model' missing; pass --model MODEL.nir")
        if not Path(model_path).is_file():
            raise UserError(f"{traffic_path}: field 'model' names {model_path}, which is not a file here; pass "
                            "--model MODEL.nir")
    guards.require_file(model_path, "model file", "the .nir graph the traffic was simulated from")
    check_model_hash(traffic, model_path, str(traffic_path))
    from converters.network_file import read_network_file

    # at the dt it was simulated with: another tool's graph is quantized for it
    net = read_network_file(model_path, dt=traffic.get("dt"))
    base = load_side_file(measured, "--measured", ("measured", "tabled", "device")) if measured is not None else None
    rep = build_report(traffic, net, profiles, step_time_s, str(traffic_path), str(model_path), frame_period_s)
    if base is not None:
        rep["measured_baseline"] = dict(base, source_file=str(measured))
    sibling = Path(model_path).with_name(Path(model_path).stem + ".fidelity.json")
    if rep["fidelity"] is None and sibling.is_file():  # `export --model` writes it beside the network
        fid = load_side_file(sibling, "fidelity report", ("prediction_agreement", "samples"))
        from lmu2neuro.analysis.traffic import FidelityFile, validate_with

        validate_with(FidelityFile, fid, str(sibling))  # the fields the report formats, typed and in range
        rep["fidelity"] = dict(fid, file=str(sibling))
    write_report(rep, traffic, out_dir)
    return rep
