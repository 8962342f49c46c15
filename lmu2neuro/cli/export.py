"""`lmu2neuro export` (checkpoint -> NIR or netx) and `lmu2neuro inspect` (what is in a .nir)."""

from __future__ import annotations

import json
import math

from lmu2neuro.core.errors import UserError


def register(sub) -> None:
    p = sub.add_parser(
        "export",
        help="checkpoint -> standard NIR graph (.nir) or lava-dl netx HDF5",
        description=(
            "Lower a trained checkpoint to the deployed integer network and write it as a standard "
            "NIR graph (readable by any NIR tool; the exact Loihi integers ride along as node "
            "metadata) or, with --format netx, as a lava-dl netx HDF5 file for Loihi 2 (a chain of "
            "dense CUBA LIF layers only), or with --format sanafe as a SANA-FE network description (YAML) "
            "to run in the SANA-FE simulator yourself. A checkpoint of your own model (`train --model "
            "FILE.py:FUNCTION`) is rebuilt by importing that file again and running FUNCTION: code you chose to "
            "run, as with `python FILE.py`; a file whose sha256 differs from the one recorded at training is "
            "refused. Example: lmu2neuro export runs/digits/best.pt -o model.nir"
        ),
    )
    p.add_argument("checkpoint", help="checkpoint written by `lmu2neuro train` (.pt)")
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
        help="show the nodes, edges, loops and metadata of a .nir file and whether Lava can run it",
        description=(
            "Print every node of a NIR graph (type, shapes, parameter count), its edges, recurrent "
            "loops, the lmu2neuro metadata, and whether every node is supported by the Lava build. "
            "Works on any .nir file, e.g. one exported by snnTorch or Norse."
        ),
    )
    q.add_argument("file", help="a .nir file")
    q.add_argument("--json", action="store_true", help="print the summary as JSON")
    q.set_defaults(func=run_inspect)


def run_export(args) -> int:
    if args.dt is not None and not (args.dt > 0 and math.isfinite(args.dt)):
        raise UserError(f"--dt {args.dt}: expected a positive, finite number of seconds")
    from lmu2neuro.core.outdir import output_file_lock

    from lmu2neuro.pipeline.export import export

    with output_file_lock(args.output, "-o"):  # releases and removes a folder it made if loading fails
        net = export(args.checkpoint, args.output, args.format, args.dt)
    print(f"wrote {args.output} ({args.format}): {len(net.populations)} populations, "
          f"{len(net.projections)} projections")
    return 0


def run_inspect(args) -> int:
    from lmu2neuro.pipeline.inspect import format_summary, inspect_nir

    info = inspect_nir(args.file)
    print(json.dumps(info, indent=2) if args.json else format_summary(info))
    return 0
