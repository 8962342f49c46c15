"""Training accuracy and time of the spiking LMUFormer on small local data (CPU).

Runs three trainings through `lmu2neuro.training.recipe.train` (the same code as `lmu2neuro train`):
  1. digits, float                -> float test accuracy
  2. digits, QAT                  -> test accuracy with fake quantization and of the deployed
                                     integer network (model.integer_forward)
  3. synth-kws, 10 words, float   -> on a keyword set generated here with espeak-ng + sox
     (spiking, and the non-spiking LMUFormer with the same recipe for reference)
Prints one line per run and writes JSON (default runs/bench/train_accuracy.json).
Targets: digits integer-mode accuracy >= 0.95 and within one point of the float model.

    python benchmarks/train_accuracy.py [--out runs/bench/train_accuracy.json] [--quick]
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lmu2neuro.core.atomic import write_json  # noqa: E402
from lmu2neuro.training.recipe import TrainConfig, train  # noqa: E402

DIGITS = dict(dataset="digits", preset="digits-small", overrides={"dim": 64}, dataset_options={"repeat": 2}, batch_size=32,
              lr=1e-2, lr_step=4)
KWS_WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]


def run(name: str, work: Path, **kw) -> dict:
    """Train one configuration in `work/name`; the benchmark row of its figures."""
    cfg = TrainConfig(out=str(work / name), progress=False, threads=1, overwrite=True, **kw)
    t0 = time.perf_counter()
    m = train(cfg)
    seconds = time.perf_counter() - t0
    test = m["test"]
    row = {
        "run": name, "dataset": cfg.dataset, "preset": cfg.preset, "overrides": cfg.overrides,
        "qat": cfg.qat, "epochs": cfg.epochs, "train_samples": m["dataset"]["train"],
        "test_samples": test["samples"], "timesteps": m["dataset"]["timesteps"],
        "best_epoch": m["best"]["epoch"], "best_val_accuracy": m["best"]["val_accuracy"],
        "test_accuracy": test["accuracy"], "integer_accuracy": test.get("integer_accuracy"),
        "accuracy_without_fake_quant": test.get("accuracy_without_fake_quant"),
        "accuracy_by_frames": test.get("accuracy_by_frames"),
        "integer_accuracy_by_frames": test.get("integer_accuracy_by_frames"),
        "train_seconds": seconds, "seconds_per_epoch": [r["seconds"] for r in m["epochs"]],
    }
    extra = f", integer {row['integer_accuracy']:.4f}" if row["integer_accuracy"] is not None else ""
    print(f"{name:<14} test {row['test_accuracy']:.4f}{extra}  (best epoch {row['best_epoch']}/{cfg.epochs}, "
          f"{seconds:.0f} s)", flush=True)
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/bench/train_accuracy.json", help="JSON result path")
    ap.add_argument("--digits-epochs", type=int, default=20)
    ap.add_argument("--kws-epochs", type=int, default=30)
    ap.add_argument("--kws-per-word", type=int, default=60, help="clips per word (speakers) for synth-kws")
    ap.add_argument("--quick", action="store_true", help="a smoke run: few epochs, tiny speech set")
    ap.add_argument("--skip-kws", action="store_true", help="only the digits runs")
    args = ap.parse_args(argv)
    if args.quick:
        args.digits_epochs, args.kws_epochs, args.kws_per_word = 2, 2, 4

    rows: list = []
    result = {"benchmark": "train_accuracy", "python": platform.python_version(), "torch": torch.__version__,
              "threads": 1, "machine": platform.machine(), "runs": rows}
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        work = Path(tmp)
        rows.append(run("digits-float", work, epochs=args.digits_epochs, **DIGITS))
        write_json(args.out, result)  # partial results survive an interrupted benchmark
        rows.append(run("digits-qat", work, epochs=args.digits_epochs, qat=True, **DIGITS))
        write_json(args.out, result)
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
                rows.append(run("kws10-spiking", work, **kws))
                rows.append(run("kws10-ann", work, spiking=False, **kws))
            else:
                result["synth_kws"] = "skipped: espeak-ng or sox not installed"
    float_acc = rows[0]["test_accuracy"]
    int_acc = rows[1]["integer_accuracy"]
    result["targets"] = {
        "digits_integer_accuracy": int_acc, "digits_float_accuracy": float_acc,
        "integer_at_least_0.95": int_acc >= 0.95,
        "integer_within_one_point_of_float": int_acc >= float_acc - 0.01,
    }
    write_json(args.out, result)
    print(f"digits: float {float_acc:.4f}, integer (QAT) {int_acc:.4f}; written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
