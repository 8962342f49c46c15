"""`lmu2neuro report` (energy and chip resources from traffic) and `lmu2neuro profiles`."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        "report",
        help="energy, latency, power, chip cores and plots from a traffic.json and its model",
        description=(
            "Count synaptic operations per layer from TRAFFIC.json (written by `lmu2neuro simulate`) and the "
            "deployed model, map the network onto each profile's cores and chips, and estimate per inference: "
            "latency and throughput (time model: slowest core + barrier per step; conventional devices: ops / "
            "throughput), dynamic and static energy and average power, each as an estimate with its low-high "
            "range from the profile's sources. Writes DIR/report.json, report.md, a self-contained report.html "
            "and PNG plots. Example: `lmu2neuro report runs/traffic.json --profile loihi1 --profile loihi2 "
            "--profile cpu --frame-period 0.01 -o runs/report`."
        ),
    )
    p.add_argument("traffic", metavar="TRAFFIC.json", help="traffic file from `lmu2neuro simulate`")
    p.add_argument("--model", metavar="MODEL.nir",
                   help="the .nir file the traffic was recorded from (default: the one the traffic names; "
                        "checked by sha256 either way)")
    p.add_argument("--profile", action="append", metavar="NAME", default=None,
                   help="hardware profile: a shipped name (see `lmu2neuro profiles`) or a path to your own "
                        "YAML file; repeat for several (default: loihi1, loihi2, cpu)")
    p.add_argument("--step-time", type=float, default=None, metavar="SECONDS",
                   help="wall time of one time step on the device, replacing the modelled step time (static "
                        "energy = static power x chips x steps x step time)")
    p.add_argument("--frame-period", type=float, default=None, metavar="SECONDS",
                   help="one input frame arrives every SECONDS (e.g. 0.01 for 10 ms): reports the real-time "
                        "factor (step time / frame period) and whether each device keeps up, and the static "
                        "energy of staying on for T x frame period")
    p.add_argument("--measured", metavar="BASELINE.json", default=None,
                   help="a result of `lmu2neuro baseline -o`: its measured rows are shown beside the tabled profiles")
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="output folder (created if missing)")
    p.set_defaults(func=run_report)

    q = sub.add_parser("profiles", help="list the shipped hardware profiles and their key numbers",
                       description="List the hardware profiles shipped with lmu2neuro, or show one in full "
                                   "with every number's source: `lmu2neuro profiles loihi1`.")
    q.add_argument("name", nargs="?", help="show this profile (a name or a YAML path) in full")
    q.set_defaults(func=run_profiles)


def run_report(args) -> int:
    from lmu2neuro.reports.build import make_report

    names = args.profile or ["loihi1", "loihi2", "cpu"]
    from lmu2neuro.core.outdir import output_lock

    with output_lock(args.out):
        rep = make_report(args.traffic, args.model, names, args.out, args.step_time, args.frame_period,
                          measured=args.measured)
    for p in rep["profiles"]:
        print(format_profile_line(p))
        for v in p["violations"]:
            print(f"{'':>12}limit violated: {v}")
    print(f"wrote {args.out}/report.json, report.md, report.html and plots")
    return 0


def _rng(d: dict | None, unit: str) -> str:
    """'157 us [120-210 us]': in the prefix that fits (reports.units); a unitless value as is."""
    from lmu2neuro.reports.units import fmt_range

    if d is None:
        return "n/a"
    if unit:
        return fmt_range(d["estimate"], d["low"], d["high"], unit)
    if d["low"] == d["high"]:
        return f"{d['estimate']:.3g}"
    return f"{d['estimate']:.3g} [{d['low']:.3g}-{d['high']:.3g}]"


def format_profile_line(p: dict) -> str:
    """One profile's summary: energy, latency, power (estimate [low-high]), what the energy is, cores."""
    e, tm = p["energy"], p["time"]
    energy = e["total_j"] if e["total_j"] is not None else e["dynamic_j"]
    parts = [f"{p['profile']:>10}: {_rng(energy, 'J')} per inference ({p['label']})"]
    if tm:
        lat = {"estimate": tm["latency_s"][0], "low": tm["latency_s"][1], "high": tm["latency_s"][2]}
        parts.append(f"latency {_rng(lat, 's')}")
    if p["power_w"]:
        parts.append(f"power {_rng(p['power_w'].get('total', p['power_w']['dynamic']), 'W')}")
    if p["realtime"]:
        rt = p["realtime"]
        parts.append(f"real-time factor {_rng(rt['factor'], '')}".rstrip() + (" (keeps up)" if rt["keeps_up"] else
                     " (keeps up at the estimate only)" if rt["keeps_up_at_estimate"] else " (does NOT keep up)"))
    if p["cores"] is not None:
        bound = (p.get("chip_mapping") or {}).get("lower_bound_cores")
        parts.append(f"{p['cores']} cores on {p['chips']} chip(s)" + (f" (lower bound {bound})" if bound else ""))
    return "; ".join(parts)


def run_profiles(args) -> int:
    from lmu2neuro.analysis.profiles import load_profile, shipped_profiles

    if args.name:
        prof = load_profile(args.name)
        print(f"{prof.name} ({prof.kind}): {' '.join(prof.description.split())}")
        for field, q in prof.quantities():
            flag = "  [assumed: " + " ".join((q.why or "").split()) + "]" if q.assumed else ""
            rng = f" (range {q.lo:g}-{q.hi:g})" if q.has_range else ""
            print(f"  {field} = {q.value:g} {q.unit}{rng}, given as {q.given}\n      source: {q.source}{flag}")
            for end in ("low", "high"):
                if getattr(q, end) is not None:
                    print(f"      {end}: {getattr(q, end).source}")
        for c in prof.calibration:
            ratio = f"{c.ratio:.3g}x" if c.ratio is not None else "not rebuilt"
            print(f"  calibration: {c.measurement}, {c.quantity}: {ratio} [{c.benchmark}]")
        return 0
    for name, path in shipped_profiles().items():
        prof = load_profile(name)
        e = prof.energy
        parts = [f"{k} {getattr(e, k).value:.3g} J" for k in ("ac", "mac", "neuron_update") if getattr(e, k)]
        if prof.floor:
            parts.append("compute-only floor")
        n_assumed = sum(q.assumed for _, q in prof.quantities())
        print(f"{name:>11}  {prof.kind:<12} {', '.join(parts)}" + (f"  ({n_assumed} assumed)" if n_assumed else ""))
    print("Show one in full: lmu2neuro profiles NAME. Your own: pass a YAML path to --profile.")
    return 0
