"""Issue 20's model: a plain snnTorch Conv1d -> Synaptic net on noisy chirps, float vs deployed.

The model and data of examples/snntorch_conv1d.py (Conv1d(1->8, k 5, pad 2) -> snn.Synaptic(alpha 0.8,
beta 0.9) -> AvgPool1d(2) -> Flatten -> Linear(64, 32) -> snn.Leaky -> Linear(32, 5) -> snn.Leaky; 20
steps x (1, 16)), trained with plain torch, with snnTorch's default subtract reset and with
reset_mechanism="zero", then `lmu2neuro export --model` and `lmu2neuro simulate` of the written file.
Side by side in one run: float accuracy, deployed accuracy, prediction agreement split into the
conversion (snnTorch vs the float conversion) and the quantization (float conversion vs integers),
and each layer's measured exactness.

Target (issue 20): deployed accuracy within 1 point of float for both resets (before: -33 and -46
points, the Conv1d bias put on the Loihi voltage instead of the Synaptic current).

Run: .venv/bin/python benchmarks/snntorch_conv1d.py [--epochs 40] [--seeds 0,1,2]
Writes runs/bench/snntorch_conv1d.json (about 1 minute per seed and reset on one core; 1,600 training and
2,000 test chirps, so 1 point = 20 test samples).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))

import snntorch_conv1d as ex  # noqa: E402

from lmu2neuro.cli import main as cli  # noqa: E402


def _cli(args: list[str]) -> int:
    with contextlib.redirect_stdout(io.StringIO()):
        return cli(args)


TRAIN, TEST = 1600, 2000  # 2,000 test samples: 1 point = 20 samples, well above the run-to-run noise


def one(work: Path, reset: str, seed: int, epochs: int, data: str) -> dict:
    x, y = ex.chirps(TRAIN, seed=1)
    torch.manual_seed(seed)
    model = ex.train(ex.make(reset), x, y, epochs, seed=seed)
    ckpt = work / f"{reset}_{seed}.pt"
    torch.save(model.state_dict(), ckpt)
    func = "make" if reset == "subtract" else "make_zero"
    nir_file, traffic = work / f"{reset}_{seed}.nir", work / f"{reset}_{seed}.traffic.json"
    t0 = time.perf_counter()
    assert _cli(["export", "--model", f"{ROOT / 'examples' / 'snntorch_conv1d.py'}:{func}", str(ckpt),
                 "--dataset", data, "-o", str(nir_file)]) == 0
    assert _cli(["simulate", str(nir_file), "--dataset", data, "--backend", "reference", "-o", str(traffic)]) == 0
    rep = json.loads(nir_file.with_name(nir_file.stem + ".fidelity.json").read_text())
    sim = json.loads(traffic.read_text())
    return {"reset": reset, "seed": seed, "float_accuracy": rep["float_accuracy"],
            "deployed_accuracy_export": rep["int_accuracy"], "deployed_accuracy_simulate": sim["accuracy"],
            "points": 100 * (sim["accuracy"] - rep["float_accuracy"]),
            "prediction_agreement": rep["prediction_agreement"],
            "conversion_agreement": rep["conversion_agreement"],
            "quantization_agreement": rep["quantization_agreement"],
            "layers_exact": {k: v["exact"] for k, v in rep["exactness"]["layers"].items()},
            "input_scale": rep["input_scale"]["value"], "test_samples": rep["samples"],
            "seconds": time.perf_counter() - t0}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--out", default="runs/bench/snntorch_conv1d.json")
    args = ap.parse_args()
    torch.set_num_threads(1)
    work = Path(args.out).with_suffix("")
    work.mkdir(parents=True, exist_ok=True)
    x, y = ex.chirps(TRAIN, seed=1)
    xt, yt = ex.chirps(TEST, seed=2)
    np.savez(work / "chirps.npz", x_train=x, y_train=y, x_test=xt, y_test=yt)
    data = f"npz:{work / 'chirps.npz'}"
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for reset in ("subtract", "zero"):
            r = one(work, reset, seed, args.epochs, data)
            rows.append(r)
            print(f"{reset:8s} seed {seed}: float {r['float_accuracy']:.4f} -> deployed "
                  f"{r['deployed_accuracy_simulate']:.4f} ({r['points']:+.2f} points); agreement "
                  f"{r['prediction_agreement']:.2%} (conversion {r['conversion_agreement']:.2%}, quantization "
                  f"{r['quantization_agreement']:.2%}); exact layers {r['layers_exact']}", flush=True)
    worst = max(abs(r["points"]) for r in rows)
    print(f"largest |deployed - float|: {worst:.2f} points over {len(rows)} runs (target: within 1 point)")
    Path(args.out).write_text(json.dumps({"benchmark": "snntorch_conv1d", "epochs": args.epochs, "rows": rows,
                                          "max_abs_points": worst, "test_samples": TEST}, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
