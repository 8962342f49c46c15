"""Cost of a spiking training epoch against the non-spiking epoch of the same model (CPU, one thread).

One run measures, side by side and interleaved (so that a shared machine's load falls on all of
them alike), whole training epochs over MNIST-1D's 3,600 training sequences with the
`mnist1d-small` preset, batch 128, Adam, cross-entropy (the loop of `lmu2neuro train` without its
evaluation):
  ann            the non-spiking LMUFormer
  spiking        the Spiking LMUFormer, LIF neurons as the fused scan (LoihiLIF.forward)
  spiking-steps  the same model stepping each neuron in Python (LoihiLIF.scan_steps: the code
                 before the fused scan), for the before/after comparison
  spiking-qat    the Spiking LMUFormer in QAT mode (fake quantization), fused scan
Each figure is the median over rounds of one epoch's CPU time of this process (time.process_time,
which a busy neighbour disturbs less than wall time) and its wall time. Target: spiking / ann <= 2.

    python benchmarks/spiking_speed.py [--rounds 3] [--repeat 1] [--out runs/bench/spiking_speed.json]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lmu2neuro.core.atomic import write_json  # noqa: E402
from lmu2neuro.datasets import get_dataset  # noqa: E402
from lmu2neuro.models.config import ModelConfig  # noqa: E402
from lmu2neuro.models.neurons import LoihiLIF  # noqa: E402
from lmu2neuro.models.registry import build_model  # noqa: E402


def epoch(model, x: torch.Tensor, y: torch.Tensor, batch: int, stepping: bool) -> tuple[float, float]:
    """One training epoch; (CPU seconds of this process, wall seconds)."""
    for n in model.modules():
        if isinstance(n, LoihiLIF):
            if stepping:
                n.forward = n.scan_steps  # the per-step loop, as before the fused scan
            elif "forward" in vars(n):
                del n.forward
    opt = torch.optim.Adam(model.parameters(), lr=2.5e-3, betas=(0.95, 0.999))
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    model.train()
    c0, w0 = time.process_time(), time.perf_counter()
    for start in range(0, len(order), batch):
        idx = order[start: start + batch]
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.process_time() - c0, time.perf_counter() - w0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/bench/spiking_speed.json")
    ap.add_argument("--rounds", type=int, default=3, help="epochs per variant, interleaved (median reported)")
    ap.add_argument("--repeat", type=int, default=1, help="MNIST-1D steps per point (T = 40 * repeat)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--skip-steps", action="store_true", help="leave out the slow step-by-step variant")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    data = get_dataset("mnist1d", repeat=args.repeat)
    x, y = data.train.x, data.train.y
    steps = x.shape[1]
    variants = {"ann": (False, False, False), "spiking": (True, False, False), "spiking-qat": (True, True, False)}
    if not args.skip_steps:
        variants["spiking-steps"] = (True, False, True)
    models = {}
    for name, (spiking, qat, _) in variants.items():
        torch.manual_seed(0)
        cfg = ModelConfig.from_preset("mnist1d-small", spiking=spiking, theta=float(steps), max_len=steps)
        models[name] = build_model(cfg)
        if qat:
            models[name].set_qat(True)
    times: dict[str, list] = {name: [] for name in variants}
    for r in range(args.rounds):
        for name, (_, _, stepping) in variants.items():
            times[name].append(epoch(models[name], x, y, args.batch, stepping))
            print(f"round {r + 1}/{args.rounds} {name:<14} cpu {times[name][-1][0]:7.2f} s  "
                  f"wall {times[name][-1][1]:7.2f} s", flush=True)
    med = {name: {"cpu_s": statistics.median(c for c, _ in t), "wall_s": statistics.median(w for _, w in t)}
           for name, t in times.items()}
    base = med["ann"]["cpu_s"]
    ratios = {name: m["cpu_s"] / base for name, m in med.items()}
    result = {
        "benchmark": "spiking_speed", "python": platform.python_version(), "torch": torch.__version__,
        "machine": platform.machine(), "threads": 1, "dataset": "mnist1d", "repeat": args.repeat,
        "timesteps": steps, "train_samples": len(y), "batch": args.batch, "preset": "mnist1d-small",
        "rounds": args.rounds, "epochs": {n: [{"cpu_s": c, "wall_s": w} for c, w in t] for n, t in times.items()},
        "median": med, "cpu_ratio_to_ann": ratios,
        "target": {"spiking_over_ann_at_most": 2.0, "met": ratios["spiking"] <= 2.0},
        "note": "median CPU time of one epoch per variant, measured side by side in one run, interleaved",
    }
    write_json(args.out, result)
    for name, ratio in ratios.items():
        print(f"{name:<14} {med[name]['cpu_s']:7.2f} s CPU per epoch  ({ratio:.2f}x ann)")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
