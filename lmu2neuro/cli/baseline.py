"""`lmu2neuro baseline`: the network's conventional equivalents measured on this machine."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser(
        "baseline",
        help="time the network's non-spiking equivalent and its SNN as dense torch on this machine's CPU / GPU",
        description=(
            "Build the network's non-spiking equivalent (same layers, ReLU for every LIF population; one pass "
            "for a static input to a network without recurrence, T passes otherwise) and the SNN as a dense "
            "torch network (T steps), run both on --device at batch 1 and at --batch, and record latency, "
            "throughput, the device's name and energy: read from RAPL (CPUs) or NVML (NVIDIA GPUs) through "
            "zeus where a counter can be read, else TDP x time, labelled as an upper bound. The tabled "
            "--profile's estimate for the same networks (published, not measured here) is shown as a ratio "
            "to the measurement. Example: `lmu2neuro baseline model.nir --traffic traffic.json -o base.json`."
        ),
    )
    p.add_argument("model", metavar="MODEL", help="a .nir file or a lava-dl netx file")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--traffic", metavar="TRAFFIC.json",
                     help="take T and whether the input is static from a traffic file of `lmu2neuro simulate`")
    src.add_argument("--timesteps", type=int, metavar="T", help="time steps per inference (with --static for an "
                                                                "input frame held for all T steps)")
    p.add_argument("--static", action="store_true", help="with --timesteps: the same input frame at every step")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    p.add_argument("--batch", type=int, default=64, metavar="B", help="the throughput batch, besides batch 1 "
                                                                       "(default 64)")
    p.add_argument("--tdp-w", type=float, default=None, metavar="W",
                   help="the processor's thermal design power, for the energy bound where no counter can be read "
                        "(default: a GPU's NVML power limit, or the highest TDP of the CPU's family)")
    p.add_argument("--profile", default="cpu", metavar="NAME",
                   help="the tabled conventional profile to compare with (cpu, gpu, jetson; default cpu)")
    p.add_argument("--min-time", type=float, default=1.0, metavar="S",
                   help="run each measurement at least S seconds (default 1)")
    p.add_argument("-o", "--out", metavar="FILE.json", help="write the result as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from lmu2neuro.core.errors import UserError
    from lmu2neuro.pipeline.baseline import check_device, format_baseline, run_baseline

    check_device(args.device)  # before reading anything: a missing device is one line
    if args.static and args.traffic:
        raise UserError("--static: only with --timesteps (--traffic says whether the input is static)")
    if args.traffic:
        from lmu2neuro.analysis.traffic import load_traffic

        tr = load_traffic(args.traffic)
        steps = int(tr["timesteps"])
        static = next((lay.get("static") is True for lay in tr["layers"] if lay.get("kind") == "input"), False)
    else:
        steps, static = args.timesteps, args.static
    res = run_baseline(args.model, timesteps=steps, static=static, device=args.device, batch=args.batch,
                       tdp_w=args.tdp_w, profile=args.profile, min_time_s=args.min_time, out=args.out)
    print(format_baseline(res))
    if args.out:
        print(f"wrote {args.out}")
    return 0
