"""Training throughput of the paper-sized Spiking LMUFormer (preset scv2) at 128 frames, batch 128.

For each mode (float, QAT) it times optimizer steps of the `scv2` preset (the paper's sizes, causal)
on random 128 x 128 fbank-shaped inputs with 35 classes, the paper's loss (BCE on label weights),
and reports samples per second, seconds per step and the peak device memory (CUDA only), plus
what one Speech Commands V2 training epoch (84,843 clips in the standard split) would take at that
rate. Random inputs cost what real ones cost: every operation is dense.

    python benchmarks/scv2_throughput.py --device cuda [--steps 20] [--warmup 3]
    python benchmarks/scv2_throughput.py --device cpu --batch 8 --steps 2   # the code path, on a CPU

Writes runs/bench/scv2_throughput.json.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lmu2neuro.core.atomic import write_json  # noqa: E402
from lmu2neuro.core.errors import UserError  # noqa: E402
from lmu2neuro.models.config import ModelConfig  # noqa: E402
from lmu2neuro.models.registry import build_model  # noqa: E402
from lmu2neuro.training.augment import soft_target_bce  # noqa: E402
from lmu2neuro.training.distributed import resolve_device  # noqa: E402

SCV2_TRAIN_CLIPS = 84_843  # Speech Commands V2 training split (validation_list/testing_list excluded)


def measure(device: torch.device, qat: bool, batch: int, frames: int, steps: int, warmup: int) -> dict:
    torch.manual_seed(0)
    model = build_model(ModelConfig.from_preset("scv2", spiking=True)).to(device)
    model.train()
    if qat:
        # QAT folds batch norm with running statistics: give them a float step first, as training does
        with torch.no_grad():
            model(torch.randn(batch, frames, 128, device=device))
        model.set_qat(True)
    opt = torch.optim.Adam(model.parameters(), lr=2.5e-3, betas=(0.95, 0.999))
    x = torch.randn(batch, frames, 128, device=device)
    target = torch.softmax(torch.randn(batch, 35, device=device), 1)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def step():
        loss = soft_target_bce(model(x), target) / batch
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = (time.perf_counter() - t0) / steps
    row = {"mode": "qat" if qat else "float", "batch": batch, "frames": frames, "seconds_per_step": seconds,
           "samples_per_second": batch / seconds,
           "scv2_epoch_minutes": SCV2_TRAIN_CLIPS / (batch / seconds) / 60.0,
           "parameters": sum(p.numel() for p in model.parameters())}
    if device.type == "cuda":
        row["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--frames", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--out", default="runs/bench/scv2_throughput.json")
    args = ap.parse_args(argv)
    try:
        device = resolve_device(args.device)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = []
    for qat in (False, True):
        rows.append(measure(device, qat, args.batch, args.frames, args.steps, args.warmup))
        r = rows[-1]
        mem = f", peak {r['peak_memory_gib']:.2f} GiB" if "peak_memory_gib" in r else ""
        print(f"{r['mode']:<5} {r['samples_per_second']:9.1f} samples/s ({r['seconds_per_step']:.3f} s/step{mem}); "
              f"one SCv2 epoch ~ {r['scv2_epoch_minutes']:.1f} min", flush=True)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    write_json(args.out, {"benchmark": "scv2_throughput", "device": str(device), "device_name": name,
                          "torch": torch.__version__, "preset": "scv2", "rows": rows,
                          "scv2_train_clips": SCV2_TRAIN_CLIPS})
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
