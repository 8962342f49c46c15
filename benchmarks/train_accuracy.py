"""Training accuracy and time of the documented runs (CPU, one thread), and Lava agreement on MNIST-1D.

Runs the documented training commands (``lmu2neuro.training.examples``: the README's, `train --help`'s
and the demo's) through `lmu2neuro.training.recipe.train`, the code behind `lmu2neuro train`:
  digits       Spiking LMUFormer, QAT, on the built-in 8x8 digits
  mnist1d      Spiking LMUFormer, QAT, on MNIST-1D (generated locally), then
               `lmu2neuro export` + `lmu2neuro simulate --backend both` on test samples (Lava fixed_pt
               against the reference executor)
  mnist1d-ann  the non-spiking LMUFormer on MNIST-1D, same options
  kws10        (unless --skip-kws) spiking and non-spiking on a 10-word keyword set made here with
               espeak-ng + sox
Each row names its exact command. MNIST-1D's published baselines (Greydanus 2020) are written beside.
Targets: digits integer mode >= 0.98; MNIST-1D integer mode >= 0.95, the same weights in float within
one point, Lava agreement 1.0 on >= 50 samples. Writes JSON (default runs/bench/train_accuracy.json).

    python benchmarks/train_accuracy.py [--only digits,mnist1d] [--skip-kws] [--lava-samples 100] [--quick]
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lmu2neuro.core.atomic import write_json  # noqa: E402
from lmu2neuro.datasets.mnist1d import PUBLISHED_BASELINES  # noqa: E402
from lmu2neuro.training.examples import EXAMPLES, command  # noqa: E402
from lmu2neuro.training.recipe import TrainConfig, train  # noqa: E402

KWS_WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]


def run(name: str, work: Path, options: dict, cmd: str) -> dict:
    """Train one configuration in `work/name`; the benchmark row of its figures."""
    cfg = TrainConfig(out=str(work / name), progress=False, threads=1, overwrite=True, **options)
    t0 = time.perf_counter()
    m = train(cfg)
    seconds = time.perf_counter() - t0
    test = m["test"]
    row = {
        "run": name, "command": cmd, "dataset": cfg.dataset, "preset": cfg.preset, "overrides": cfg.overrides,
        "spiking": cfg.spiking, "qat": m["config"]["qat"], "epochs": cfg.epochs, "batch_size": m["config"]["batch_size"],
        "train_samples": m["dataset"]["train"], "test_samples": test["samples"], "timesteps": m["dataset"]["timesteps"],
        "best_epoch": m["best"]["epoch"], "best_val_accuracy": m["best"]["val_accuracy"],
        "test_accuracy": test["accuracy"], "integer_accuracy": test.get("integer_accuracy"),
        "accuracy_without_fake_quant": test.get("accuracy_without_fake_quant"),
        "accuracy_by_frames": test.get("accuracy_by_frames"),
        "integer_accuracy_by_frames": test.get("integer_accuracy_by_frames"),
        "train_seconds": seconds, "seconds_per_epoch": [r["seconds"] for r in m["epochs"]],
        "checkpoint": str(work / name / "best.pt"),
    }
    extra = f", integer {row['integer_accuracy']:.4f}" if row["integer_accuracy"] is not None else ""
    print(f"{name:<14} test {row['test_accuracy']:.4f}{extra}  (best epoch {row['best_epoch']}/{cfg.epochs}, "
          f"{seconds:.0f} s)\n               {cmd}", flush=True)
    return row


def lava_agreement(work: Path, checkpoint: str, dataset: str, samples: int) -> dict:
    """`lmu2neuro export` then `lmu2neuro simulate --backend both` (Lava fixed_pt and the reference)."""
    model, traffic = work / "model.nir", work / "traffic.json"
    cli = [sys.executable, "-m", "lmu2neuro"]
    steps = [cli + ["export", checkpoint, "-o", str(model)],
             cli + ["simulate", str(model), "--dataset", dataset, "--samples", str(samples), "--backend", "both",
                    "-o", str(traffic)]]
    t0 = time.perf_counter()
    for cmd in steps:
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed: {done.stderr.strip()[-500:]}")
    t = json.loads(traffic.read_text())
    return {"commands": [" ".join(["lmu2neuro"] + c[3:]) for c in steps], "samples": t["samples"],
            "agreement": t["agreement"], "accuracy_simulated": t["accuracy"], "seconds": time.perf_counter() - t0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/bench/train_accuracy.json", help="JSON result path")
    ap.add_argument("--only", default="digits,mnist1d,mnist1d-ann", help="comma-separated runs")
    ap.add_argument("--lava-samples", type=int, default=100, help="MNIST-1D test samples simulated in Lava")
    ap.add_argument("--kws-epochs", type=int, default=30)
    ap.add_argument("--kws-per-word", type=int, default=60, help="clips per word (speakers) for synth-kws")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 2 epochs each, tiny speech set")
    ap.add_argument("--skip-kws", action="store_true", help="leave out the synthetic keyword runs")
    args = ap.parse_args(argv)
    only = [n for n in args.only.split(",") if n]
    if args.quick:
        args.kws_epochs, args.kws_per_word, args.lava_samples = 2, 4, 10

    rows: list = []
    result = {"benchmark": "train_accuracy", "python": platform.python_version(), "torch": torch.__version__,
              "threads": 1, "machine": platform.machine(), "runs": rows,
              "mnist1d_published_baselines": dict(PUBLISHED_BASELINES,
                                                   source="Greydanus 2020, arXiv 2011.14439, test accuracy")}
    targets = {}
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        work = Path(tmp)
        for name in only:
            options = dict(EXAMPLES[name])
            if args.quick:
                options["epochs"] = 2
            row = run(name, work, options, command(name, f"runs/{name}"))
            rows.append(row)
            if name == "mnist1d":
                row["lava"] = lava_agreement(work / name, row["checkpoint"], "mnist1d", args.lava_samples)
                a = row["lava"]["agreement"]
                print(f"               Lava vs reference on {a['samples']} samples: identical spikes "
                      f"{a['identical_spikes']:.0%}, predictions {a['identical_predictions']:.0%}", flush=True)
                targets["mnist1d"] = {
                    "integer_accuracy": row["integer_accuracy"], "float_accuracy": row["accuracy_without_fake_quant"],
                    "integer_at_least_0.95": row["integer_accuracy"] >= 0.95,
                    "float_within_one_point": abs(row["accuracy_without_fake_quant"] - row["integer_accuracy"]) <= 0.01,
                    "lava_agreement_1.0_on_50_or_more": a["identical_spikes"] == 1.0 and a["samples"] >= 50,
                }
            if name == "digits":
                targets["digits"] = {"integer_accuracy": row["integer_accuracy"],
                                     "integer_at_least_0.98": row["integer_accuracy"] >= 0.98}
            write_json(args.out, dict(result, targets=targets))  # partial results survive an interruption
        if not args.skip_kws:
            if shutil.which("espeak-ng") and shutil.which("sox"):
                from lmu2neuro.datasets.synth_kws import generate

                t0 = time.perf_counter()
                summary = generate(work / "kws", KWS_WORDS, per_word=args.kws_per_word, seed=0, progress=False)
                result["synth_kws"] = dict(summary, generate_seconds=time.perf_counter() - t0)
                result["synth_kws"].pop("out")
                kws = dict(dataset="synth-kws", data_root=str(work / "kws"), preset="kws-small",
                           dataset_options={"n_mels": 40, "target_length": 100}, epochs=args.kws_epochs,
                           batch_size=32, lr=5e-3)
                cmd = (f"lmu2neuro train --dataset synth-kws --data-root KWS --preset kws-small --data-option n_mels=40 "
                       f"--data-option target_length=100 --epochs {args.kws_epochs} --batch-size 32 --lr 0.005")
                rows.append(run("kws10-spiking", work, kws, cmd + " --out runs/kws"))
                rows.append(run("kws10-ann", work, dict(kws, spiking=False), cmd + " --no-spiking --out runs/kws-ann"))
            else:
                result["synth_kws"] = "skipped: espeak-ng or sox not installed"
    for row in rows:
        row.pop("checkpoint", None)
    write_json(args.out, dict(result, targets=targets))
    print(f"targets: {json.dumps(targets)}\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
