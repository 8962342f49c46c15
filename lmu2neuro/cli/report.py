"""`lmu2neuro report` (energy and chip resources from traffic) and `lmu2neuro profiles`."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        "report",
        help="energy per inference, chip cores and plots from a traffic.json and its model",
        description=(
            "Count synaptic operations per layer from TRAFFIC.json (written by `lmu2neuro simulate`) and the "
            "deployed model, then estimate energy per inference on each hardware profile, map the network "
            "onto Loihi cores and chips, and write DIR/report.json, report.md, a self-contained report.html "
            "and PNG plots. Example: `lmu2neuro report runs/traffic.json "
            "--profile loihi1 --profile loihi2 --profile cpu -o runs/report`."
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
                   help="wall time of one time step on the device; adds static energy (static power x chips x "
                        "steps x step time). Without it only dynamic energy is reported")
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
        rep = make_report(args.traffic, args.model, names, args.out, args.step_time)
    for p in rep["profiles"]:
        chips = f", {p['cores']} cores on {p['chips']} chip(s)" if p["cores"] is not None else ""
        static = "" if p["static_j"] is not None else " (dynamic only)"
        print(f"{p['profile']:>10}: {p['energy_per_inference_j']:.3e} J per inference{static}{chips}")
        for v in p["violations"]:
            print(f"{'':>12}limit violated: {v}")
    print(f"wrote {args.out}/report.json, report.md, report.html and plots")
    return 0


def run_profiles(args) -> int:
    from lmu2neuro.analysis.profiles import load_profile, shipped_profiles

    if args.name:
        prof = load_profile(args.name)
        print(f"{prof.name} ({prof.kind}): {' '.join(prof.description.split())}")
        for field, q in prof.quantities():
            flag = "  [assumed: " + " ".join((q.why or "").split()) + "]" if q.assumed else ""
            print(f"  {field} = {q.value:g} {q.unit}\n      source: {q.source}{flag}")
        return 0
    for name, path in shipped_profiles().items():
        prof = load_profile(name)
        e = prof.energy
        parts = [f"{k} {getattr(e, k).value:.3g} J" for k in ("ac", "mac", "neuron_update") if getattr(e, k)]
        n_assumed = sum(q.assumed for _, q in prof.quantities())
        print(f"{name:>11}  {prof.kind:<12} {', '.join(parts)}" + (f"  ({n_assumed} assumed)" if n_assumed else ""))
    print("Show one in full: lmu2neuro profiles NAME. Your own: pass a YAML path to --profile.")
    return 0
