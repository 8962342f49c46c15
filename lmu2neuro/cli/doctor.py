"""`lmu2neuro doctor`: is this installation able to run the whole pipeline?"""

from __future__ import annotations

import importlib.metadata as md
import platform
import sys

PACKAGES = ["torch", "snntorch", "nir", "nirtorch", "lava-nc", "lava-dl", "numpy", "scipy"]


def register(sub) -> None:
    p = sub.add_parser(
        "doctor",
        help="check the installation: versions and a tiny Lava fixed_pt run",
        description=(
            "Print the versions of Python and the libraries lmu2neuro stands on, run a tiny "
            "Lava fixed_pt network and compare its spikes with the documented Loihi integer "
            "arithmetic. Exits non-zero naming the broken part."
        ),
    )
    p.set_defaults(func=run)


def run(args) -> int:
    broken: list[str] = []
    print(f"python      {platform.python_version()} ({sys.executable})")
    for name in PACKAGES:
        try:
            print(f"{name:<11} {md.version(name)}")
        except md.PackageNotFoundError:
            print(f"{name:<11} MISSING")
            broken.append(f"{name} is not installed")
    try:
        from converters.lava.check import tiny_network_check

        check = tiny_network_check()
        state = "spikes match" if check.matches else "SPIKES DIFFER from the fixed-point reference"
        print(
            f"lava        fixed_pt LIF+Dense, {check.steps} steps: {check.seconds:.2f} s, "
            f"{int(check.lava_spikes.sum())} spikes, {state}"
        )
        if not check.matches:
            broken.append("Lava fixed_pt spikes differ from lmu2neuro.core.fixed_point")
    except Exception as exc:  # doctor reports any failure of the run as the broken part
        print(f"lava        FAILED: {type(exc).__name__}: {exc}".splitlines()[0])
        broken.append(f"Lava fixed_pt run failed ({type(exc).__name__})")
    if broken:
        print("broken: " + "; ".join(broken), file=sys.stderr)
        return 1
    print("ok: everything needed to run the pipeline works")
    return 0
