"""`lmu2neuro export` (checkpoint -> NIR or netx) and `lmu2neuro inspect` (what is in a .nir)."""

from __future__ import annotations

import json

from lmu2neuro.core.errors import UserError


def register(sub) -> None:
    p = sub.add_parser(
        "export",
        help="checkpoint -> standard NIR graph (.nir) or lava-dl netx HDF5",
        description=(
            "Lower a trained checkpoint to the deployed integer network and write it as a standard "
            "NIR graph (readable by any NIR tool; the exact Loihi integers ride along as node "
            "metadata) or, with --format netx, as a lava-dl netx HDF5 file for Loihi 2 (a chain of "
            "CUBA LIF layers: dense, and 2-D convolutions and poolings with one delay), or with --format sanafe as a SANA-FE network description (YAML) "
            "to run in the SANA-FE simulator yourself. A checkpoint of your own model (`train --model "
            "FILE.py:FUNCTION`) is rebuilt by importing that file again and running FUNCTION: code you chose to "
            "run, as with `python FILE.py`; a file whose sha256 differs from the one recorded at training is "
            "refused. Example: lmu2neuro export runs/digits/best.pt -o model.nir"
        ),
    )
    p.add_argument("checkpoint", help="checkpoint written by `lmu2neuro train` (.pt), or with --model the plain "
                                      "state_dict of your snnTorch model")
    p.add_argument("--model", metavar="FILE.py:FUNCTION",
                   help="a plain snnTorch model trained without lmu2neuro's layers: FUNCTION in FILE.py returns it "
                        "(an nn.Sequential, or a module whose children are its layers in order: nn.Linear, "
                        "nn.Conv1d/2d, nn.AvgPool1d/2d, nn.Flatten, snn.Leaky, snn.Synaptic, snn.RLeaky; its forward "
                        "is run on a few training samples, one call per time step, and must call them in that order, "
                        "each on the previous one's output, else it is refused), and "
                        "CHECKPOINT is its state_dict (loaded with weights_only=True). It is converted with the same "
                        "float parameters (scalar or equal per-neuron beta and threshold, its reset mechanism), "
                        "quantized after training with an input scale calibrated from --dataset's training inputs, "
                        "and measured against the float snnTorch model (run by its own forward) on its test split (a "
                        "fidelity report next to the output). FILE.py is code you chose to run, as with `python FILE.py`")
    p.add_argument("--dataset", help="with --model: the data to calibrate the input scale (train split) and to "
                                     "measure fidelity (test split): a built-in name, npz:FILE.npz or npy:DIR")
    p.add_argument("--data-root", metavar="DIR", help="with --model: dataset folder (not needed for digits)")
    p.add_argument("--samples", type=int, metavar="N", help="with --model: test samples to measure (default: all)")
    p.add_argument("--report", metavar="FILE.json",
                   help="with --model: where the fidelity report goes (default: OUTPUT's name + .fidelity.json)")
    p.add_argument("-o", "--output", required=True, help="file to write (e.g. model.nir or model.net)")
    p.add_argument("--format", choices=("nir", "netx", "sanafe"), default="nir",
                   help="output format (default: nir); sanafe: a SANA-FE network YAML mapped onto Loihi 1 cores")
    p.add_argument(
        "--dt", type=float, default=None,
        help="seconds per time step for the continuous-time NIR constants (default: the model's, else 1e-4, the NIR paper's convention that snnTorch's importer requires)",
    )
    p.set_defaults(func=run_export)

    q = sub.add_parser(
        "inspect",
        help="show the nodes, edges, loops and metadata of a .nir or lava-dl netx file and whether Lava can run it",
        description=(
            "Print every node of a NIR graph (type, shapes, parameter count), its edges, recurrent "
            "loops, the lmu2neuro metadata, and whether every node is supported by the Lava build. "
            "Works on any .nir file, e.g. one exported by snnTorch or Norse, and on a lava-dl netx file "
            "(its layers, told apart from NIR by content)."
        ),
    )
    q.add_argument("file", help="a .nir file")
    q.add_argument("--json", action="store_true", help="print the summary as JSON")
    q.set_defaults(func=run_inspect)


def run_export(args) -> int:
    from lmu2neuro.core.guards import check_dt

    if args.dt is not None:
        check_dt("--dt", args.dt)  # 1e-320 or 1e300 would make the NIR time constants overflow
    from lmu2neuro.core.outdir import output_file_lock

    from lmu2neuro.pipeline.export import export

    if args.model is None:
        extra = [f for f in ("dataset", "data_root", "samples", "report") if getattr(args, f) is not None]
        if extra:
            raise UserError(f"--{extra[0].replace('_', '-')} goes with --model FILE.py:FUNCTION (a plain snnTorch "
                            "model); a checkpoint of `lmu2neuro train` carries what it needs")
    elif args.dataset is None:
        raise UserError(f"--model {args.model}: give --dataset NAME to calibrate the input scale and measure fidelity")
    else:
        from lmu2neuro.pipeline.export import check_report_path

        check_report_path(args.report, args.output)  # before the output lock makes anything
    with output_file_lock(args.output, "-o"):  # releases and removes a folder it made if loading fails
        if args.model is not None:
            return _export_snntorch(args)
        net = export(args.checkpoint, args.output, args.format, args.dt)
    print(f"wrote {args.output} ({args.format}): {len(net.populations)} populations, "
          f"{len(net.projections)} projections")
    return 0


def _export_snntorch(args) -> int:
    import sys

    from lmu2neuro.pipeline.exactness import CAUSES
    from lmu2neuro.pipeline.export import export_snntorch

    rep = export_snntorch(args.model, args.checkpoint, args.output, dataset=args.dataset, data_root=args.data_root,
                          samples=args.samples, format=args.format, dt=args.dt, report=args.report,
                          progress=sys.stderr.isatty())
    net = rep["network"]
    scale = rep["input_scale"]
    print(f"input scale {scale['value']:.6g} (calibrated: {scale['rule']}); inputs quantized as "
          "clip(round(x * scale), -128, 127)")
    if not rep["chain"].startswith("nn.Sequential"):
        print(f"note: {rep['chain']}")
    ex = rep["exactness"]
    for path, row in ex["layers"].items():
        if row["exact"]:
            print(f"layer '{path}': exact (measured: spikes equal on all {ex['steps']} steps of {ex['samples']} "
                  f"calibration samples, membrane within tolerance)")
        else:
            err = row["membrane_max_error"]
            print(f"layer '{path}': NOT exact: {row['differs']} (measured on {ex['samples']} calibration samples: "
                  f"spikes agree on {row['spike_agreement']:.2%}, steps wholly equal {row['steps_all_equal']:.2%}"
                  + ("" if err is None else f", membrane off by up to {err:.3g} thresholds") + ")")
    if any(r.get("scalar_beta") for r in rep["conversion"]):
        from lmu2neuro.deploy.snntorch import SCALAR_BETA_FIX

        print(f"note: scalar beta converted here; {SCALAR_BETA_FIX}")
    print(f"float snnTorch model vs deployed integers on {rep['samples']} {args.dataset} test samples: predictions "
          f"agree on {rep['prediction_agreement']:.2%}, accuracy float {rep['float_accuracy']:.4f} / integer "
          f"{rep['int_accuracy']:.4f}")
    print(f"  of which: snnTorch vs the float conversion agree on {rep['conversion_agreement']:.2%}, the float "
          f"conversion vs the deployed integers on {rep['quantization_agreement']:.2%}")
    if rep["prediction_agreement"] < rep["warn_below"]:
        why = rep["cause"] or "both"  # each step alone above the bar, the two together below it
        print(f"warning: the deployed integer network predicts like the float snnTorch model on only "
              f"{rep['prediction_agreement']:.2%} of samples (below {rep['warn_below']:.0%}); measured cause: "
              f"{why}: {CAUSES[why]}", file=sys.stderr)
    print(f"wrote {args.output} ({args.format}): {len(net.populations)} populations, {len(net.projections)} "
          f"projections; fidelity report {rep['report']}")
    return 0


def run_inspect(args) -> int:
    from lmu2neuro.pipeline.inspect import format_summary, inspect_nir

    info = inspect_nir(args.file)
    print(json.dumps(info, indent=2) if args.json else format_summary(info))
    return 0
