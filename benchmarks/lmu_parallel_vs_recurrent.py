"""Training throughput of the LMU memory: parallel FFT form vs the recurrent loop.

Forward + backward of the memory alone (u (B, T) -> m (B, T, d), loss = mean(m^2)) at T = 128,
float32, the same inputs for both forms, for the memory orders of LMUFormer (256) and Spiking
LMUFormer (512). Prints and writes JSON (default runs/bench/lmu_parallel.json).

    python benchmarks/lmu_parallel_vs_recurrent.py [OUT.json] [--batch 32 --orders 256 512
        --theta 128 --lengths 128 --repeats 5 --threads 1]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from lmu2neuro.core.atomic import write_json
from lmu2neuro.models.lmu import LMUMemory


def _time(fn, repeats: int) -> float:
    fn()  # warm-up (FFT plans, allocator)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _case(args, order: int, length: int) -> dict:
    torch.manual_seed(0)
    mem = LMUMemory(order, args.theta, length)
    u0 = torch.randn(args.batch, length)

    def run(form):
        def go():
            u = u0.clone().requires_grad_(True)
            m = mem(u) if form == "parallel" else mem.recurrent(u)
            m.pow(2).mean().backward()
        return go

    with torch.no_grad():
        max_diff = float((mem(u0.double()) - mem.recurrent(u0.double())).abs().max())
    t_par = _time(run("parallel"), args.repeats)
    t_rec = _time(run("recurrent"), args.repeats)
    return {
        "order": order, "length": length,
        "parallel_s": t_par, "recurrent_s": t_rec,
        "parallel_samples_per_s": args.batch / t_par, "recurrent_samples_per_s": args.batch / t_rec,
        "speedup": t_rec / t_par, "max_abs_diff_float64": max_diff,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", nargs="?", default="runs/bench/lmu_parallel.json", help="JSON output path")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--orders", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--theta", type=float, default=128.0)
    ap.add_argument("--lengths", type=int, nargs="+", default=[128])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the shared machine has 2 cores)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cases = []
    for order in args.orders:
        for length in args.lengths:
            cases.append(_case(args, order, length))
            c = cases[-1]
            print(f"order {order:4d} length {length:5d}: parallel {c['parallel_s'] * 1e3:8.2f} ms, "
                  f"recurrent {c['recurrent_s'] * 1e3:8.2f} ms, speed-up {c['speedup']:.1f}x", flush=True)
    result = {
        "benchmark": "lmu_parallel_vs_recurrent",
        "what": "forward+backward of the LMU memory (loss mean(m^2)), best of repeats, float32",
        "batch": args.batch, "theta": args.theta, "threads": args.threads, "repeats": args.repeats,
        "cases": cases,
        "torch": torch.__version__, "machine": platform.machine(), "python": platform.python_version(),
    }
    print(json.dumps(result, indent=2))
    write_json(args.out, result)
    print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
