"""Frady et al. 2020 (Pohoiki Springs, Loihi 1): what can and cannot be checked against it.

Frady, Orchard, Florey, Imam, Liu, Mishra, Davies, "Neuromorphic nearest-neighbor search using
Intel's Pohoiki Springs" (NICE 2020) measured 1.33 mJ dynamic energy per query, 5.8 us per step
and about 104 mW static power per chip (3.34 W for a 32-chip board) on a 768-chip system.

An estimate of the dynamic energy needs the network's events per query: the number of steps a
query runs, how many pattern neurons fire and when the search stops, the spike counts of the
query encoding, and the placement of the database over the 768 chips (which sets messages and
barrier times across chips). The paper publishes the database sizes and the totals above, not
those counts, so the network cannot be rebuilt faithfully: this script writes that conclusion as
JSON rather than an estimate built on guessed activity. What is used from the paper: the static
power per chip (the loihi1 profile's static_power), and the check below, that one step of the
time model on one chip is far below 5.8 us: the measured step is dominated by synchronising 768
chips, which the single-chip barrier table does not cover.

Usage: python benchmarks/frady_check.py [--out runs/bench/frady_check.json]
"""

from __future__ import annotations

import argparse
import sys

from lmu2neuro.analysis.profiles import load_profile
from lmu2neuro.core import atomic

MEASURED = {"dynamic_j_per_query": 1.33e-3, "step_time_s": 5.8e-6, "static_w_per_chip": 0.104, "chips": 768}
SOURCE = "Frady et al. 2020, Neuromorphic nearest-neighbor search using Intel's Pohoiki Springs (NICE 2020)"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="runs/bench/frady_check.json", help="JSON output path")
    args = ap.parse_args(argv)
    prof = load_profile("loihi1")
    one_chip_barrier = prof.barrier_sync.at(32)  # every tile of one chip
    result = {
        "benchmark": "Frady et al. 2020 (Pohoiki Springs) against the loihi1 profile",
        "measured": MEASURED, "measured_source": SOURCE, "rebuilt": False, "estimate": None, "ratio": None,
        "reasons": [
            "the per-query spike counts, steps per query and the placement over 768 chips are not published, so the "
            "network's events cannot be rebuilt; an estimate would rest on guessed activity",
            "the measured 5.8 us per step is set by synchronising 768 chips; the time model's barrier table covers one "
            f"chip (at most {one_chip_barrier[2] * 1e6:.2f} us for all 32 tiles)",
        ],
        "used_from_the_paper": ["static power per chip: the loihi1 profile's static_power (104 mW)"],
    }
    atomic.write_json(args.out, result)
    print(f"Frady et al. 2020: not rebuilt ({result['reasons'][0]}).")
    print(f"One-chip barrier at 32 tiles: {one_chip_barrier[0] * 1e6:.2f} us (range {one_chip_barrier[1] * 1e6:.3f}-"
          f"{one_chip_barrier[2] * 1e6:.2f}) vs 5.8 us measured per step on 768 chips. Wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
