"""`lmu2neuro demo`: the whole pipeline on the built-in digits dataset."""

from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="train, export, simulate in Lava, check agreement and report energy, on built-in digits",
        description=(
            "Train a small Spiking LMUFormer with Loihi quantization-aware training on "
            "scikit-learn's bundled digits (the documented digits command of `lmu2neuro train "
            "--help`), export it through NIR, simulate test samples in Lava "
            "fixed_pt and the reference simulator, check that Lava, the reference and the QAT "
            "model in integer mode agree spike for spike, and write the energy and chip report. "
            "Needs no download; a few minutes on 2 CPU cores. Exits 1 if the back ends disagree."
        ),
    )
    p.add_argument("-o", "--out", default="runs/demo", metavar="DIR", help="output folder (default runs/demo)")
    p.add_argument("--epochs", type=int, metavar="N",
                   help="training epochs (default: the documented digits run's, see `lmu2neuro train --help`)")
    p.add_argument("--samples", type=int, default=60, help="test samples to simulate (default 60)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args) -> int:
    from lmu2neuro.pipeline.demo import agreement_ok, print_summary, run_demo

    from lmu2neuro.core.outdir import output_lock

    with output_lock(args.out, "lmu2neuro run"):
        summary = run_demo(args.out, epochs=args.epochs, samples=args.samples, seed=args.seed,
                           progress=sys.stderr.isatty())
    print_summary(summary)
    if not agreement_ok(summary):
        print("error: the back ends disagree (see traffic.json agreement blocks)", file=sys.stderr)
        return 1
    return 0
