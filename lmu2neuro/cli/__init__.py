"""The `lmu2neuro` command: one subcommand per stage of the pipeline."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from lmu2neuro import __version__
from lmu2neuro.core.errors import UserError

# Each module defines register(subparsers), adding its subcommands with set_defaults(func=...);
# func(args) returns the exit status. Imported lazily by name so `--help` stays fast and a
# broken optional stage does not take the others down.
COMMAND_MODULES = [
    "lmu2neuro.cli.doctor",
    "lmu2neuro.cli.data",
    "lmu2neuro.cli.train",
    "lmu2neuro.cli.summary",
    "lmu2neuro.cli.export",
    "lmu2neuro.cli.simulate",
    "lmu2neuro.cli.report",
    "lmu2neuro.cli.baseline",
    "lmu2neuro.cli.demo",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lmu2neuro",
        description=(
            "Train a spiking LMUFormer with Loihi quantization-aware neurons, export it through "
            "NIR, simulate it in Lava fixed point, and estimate energy and chip resources."
        ),
        epilog="Run `lmu2neuro COMMAND --help` for each command's options.",
    )
    parser.add_argument("--version", action="version", version=f"lmu2neuro {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # stage not built yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`lmu2neuro inspect m.nir | head`): stop quietly, as a shell tool
        # killed by SIGPIPE would; stdout goes to /dev/null so the exit flush cannot fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
