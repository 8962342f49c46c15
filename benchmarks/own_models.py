"""Own architectures on Loihi: QAT accuracy, integer accuracy and spike-for-spike agreement.

Runs the three examples a user copies (examples/own_mlp.py, own_convnet.py, own_recurrent.py), each:
float training then QAT on the built-in digits, lowered by tracing (models.trace.LoihiModel), the
integer accuracy on the whole test split from the one integer executor (deploy.integer_forward),
exported to NIR and read back, then Lava fixed point and the reference executor on the first
``--samples`` test samples, compared spike for spike with each other and with the integer mode.
Prints one line per model and writes JSON (default runs/bench/own_models.json).

Targets (issue 12): integer accuracy within one point of the float model (at most one point lost:
integer >= float - 0.01, float = the float-trained model before QAT); Lava, reference and integer
mode identical on every spike for at least 50 test samples.

    python benchmarks/own_models.py [--out runs/bench/own_models.json] [--samples 100] [--seeds 0,1]
"""

from __future__ import annotations

import argparse
import platform
import runpy
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lmu2neuro.core.atomic import write_json  # noqa: E402

EXAMPLES = {"mlp": "own_mlp.py", "convnet": "own_convnet.py", "recurrent": "own_recurrent.py"}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/bench/own_models.json", help="JSON result path")
    ap.add_argument("--samples", type=int, default=100, help="test samples run in Lava (at least 50 for the target)")
    ap.add_argument("--seeds", default="0", help="comma-separated training seeds")
    ap.add_argument("--only", default=",".join(EXAMPLES), help="comma-separated models: " + ", ".join(EXAMPLES))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",") if s]
    rows: list[dict] = []
    result = {"benchmark": "own_models", "python": platform.python_version(), "torch": torch.__version__,
              "threads": 1, "machine": platform.machine(), "dataset": "digits (built in)", "runs": rows}
    with tempfile.TemporaryDirectory(prefix="bench-own-") as tmp:
        for name in [n for n in args.only.split(",") if n]:
            main_fn = runpy.run_path(str(ROOT / "examples" / EXAMPLES[name]), run_name="bench")["main"]
            for seed in seeds:
                t0 = time.perf_counter()
                r = main_fn(out=str(Path(tmp) / f"{name}-{seed}"), samples=args.samples, seed=seed, progress=False)
                seconds = time.perf_counter() - t0
                agree = [r["lava_vs_reference"], r["lava_vs_integer_mode"]]
                row = {
                    "model": name, "example": f"examples/{EXAMPLES[name]}", "seed": seed,
                    "float_accuracy": r["float_accuracy"], "qat_accuracy": r["qat_accuracy"],
                    "integer_accuracy": r["integer_accuracy"], "test_samples": r["test_samples"],
                    "lava_vs_reference": r["lava_vs_reference"], "lava_vs_integer_mode": r["lava_vs_integer_mode"],
                    "seconds": seconds,
                    "targets": {
                        "integer_within_one_point_of_float": r["integer_accuracy"] >= r["float_accuracy"] - 0.01,
                        "identical_spikes_on_50_or_more": all(a["identical_spikes"] == 1.0 and a["samples"] >= 50
                                                              for a in agree),
                    },
                }
                rows.append(row)
                print(f"{name:<10} seed {seed}: float {row['float_accuracy']:.4f}  QAT {row['qat_accuracy']:.4f}  "
                      f"integer {row['integer_accuracy']:.4f} ({row['test_samples']} test samples); Lava = reference "
                      f"= integer mode on {agree[0]['samples']} samples: {agree[0]['identical_spikes']:.0%} / "
                      f"{agree[1]['identical_spikes']:.0%}  ({seconds:.0f} s)", flush=True)
                write_json(args.out, result)  # partial results survive an interruption
    result["all_targets_met"] = all(all(r["targets"].values()) for r in rows)
    write_json(args.out, result)
    print(f"all targets met: {result['all_targets_met']}\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
