"""Lava (samples side by side, and one at a time) against the reference simulator, in samples/s.

Usage: python benchmarks/lava_speed.py [--quick] [--out runs/bench/lava_speed.json]

Measured side by side in one run, on the same samples:
- the demo model (runs/demo/model.nir when it exists: the trained digits-small, dim 64, 16 steps;
  else the same architecture untrained) on the digits test split, tiled to the sample count;
- the `scv2` preset (12 populations, 19 projections, 128 steps), untrained with random batch-norm
  statistics so that every layer spikes (tests/netgen.lively), on random frames in [0, 1);
- Lava batched (lanes chosen automatically), Lava one sample at a time (lanes = 1; the per-step
  cost is the streaming build's before lanes existed), and the reference executor (torch, one
  thread: on this shared 2-core machine two OpenMP threads run it 3-10x slower, and one thread
  is its fastest here). Lava is imported before the timing starts, as the reference is warmed
  up; compiling (process start included) is timed and reported apart;
- the peak memory Lava's worker processes add (their private pages and their share of the
  shared memory) against the estimate that plans the lanes;
- how each grows with the number of samples, with the lanes, and with the model's size
  (digits-small at dim 32..256).
Every Lava run is checked against the reference: identical spikes on every sample.
The machine is shared: absolute figures move with its load, ratios measured in one run less so.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))  # netgen.lively: random BN statistics, so an untrained model spikes

from memory import PeakMemory  # noqa: E402

# The README's figures for the build before lanes (one sample per Lava step), on this machine
# when it was quieter: demo 110-190 Lava steps/s, scv2 183 steps/s.
BEFORE_STEPS_PER_S = {"demo": (110, 190), "scv2": (183, 183)}


def demo_net(model: str):
    from converters.nir.read import read_intnet

    if Path(model).exists():
        return read_intnet(model), f"{model} (trained digits-small, dim 64)"
    return preset_net("digits-small", dim=64), "digits-small (dim 64), untrained, random BN statistics"


def preset_net(preset: str, **overrides):
    from netgen import lively

    from lmu2neuro.deploy.lowering import lower
    from lmu2neuro.models.config import ModelConfig
    from lmu2neuro.models.registry import build_model

    torch.manual_seed(0)
    return lower(lively(build_model(ModelConfig.from_preset(preset, **overrides))))


def digits(n: int) -> np.ndarray:
    from lmu2neuro.datasets import get_dataset

    test = get_dataset("digits").test
    x = np.stack([np.asarray(test[i][0]) for i in range(len(test))])
    return np.resize(x, (n,) + x.shape[1:])  # the test split tiled to n samples


def frames(n: int, steps: int, size: int) -> np.ndarray:
    return np.random.default_rng(0).random((n, steps, size))


def reference(net, x_int) -> dict:
    from lmu2neuro.pipeline.simulate import run_reference

    t0 = time.perf_counter()
    m = run_reference(net, x_int)
    s = time.perf_counter() - t0
    return {"samples": len(x_int), "wall_s": s, "samples_per_second": len(x_int) / s, "measurement": m}


def lava(net, x_int, ref, lanes=None) -> dict:
    from converters.lava.builder import run_lava
    from converters.lava.plan import lane_bytes, run_bytes
    from lmu2neuro.core.measurement import agreement

    t0 = time.perf_counter()
    with PeakMemory(children_only=True, every=0.2) as mem:
        m = run_lava(net, x_int, progress=False, lanes=lanes)
    s = time.perf_counter() - t0
    agree = agreement(m, ref)
    t = m.timing
    steps = x_int.shape[1]
    return {"samples": len(x_int), "lanes": t["lanes"], "rounds": t["rounds"], "lava_steps": t["steps"],
            "workers_peak_mib": mem.peak / 2**20,
            "planned_mib": (t["lanes"] * lane_bytes(net, steps) + run_bytes(net, steps, len(x_int))) / 2**20,
            "wall_s": s, "compile_s": t["compile_s"], "run_s": t["run_s"],
            "samples_per_second": len(x_int) / s, "samples_per_second_running": t["samples_per_second"],
            "steps_per_second": t["steps_per_second"],
            "identical_spikes": agree["identical_spikes"], "identical_scores": agree["identical_scores"],
            "first_mismatch": agree["first_mismatch"]}


def sub(ref_measurement, n):
    """The reference's Measurement of the first n samples (to check a Lava run on them)."""
    from lmu2neuro.core.measurement import Measurement

    m = ref_measurement
    return Measurement(m.backend, m.spike_counts, {k: v[:n] for k, v in m.sample_spikes.items()}, m.step_spikes,
                       {k: v[:n] for k, v in m.fingerprints.items()}, m.wrapped, m.raster0, m.readout_trace[:n])


def bench_model(name, net, x, one_at_a_time: int, sample_counts, lanes_sweep, sweep_samples: int, log) -> dict:
    x_int = net.quantize_input(x)
    steps = x.shape[1]
    out = {"populations": len(net.populations), "projections": len(net.projections),
           "neurons": sum(p.size for p in net.populations),
           "synapses": int(sum(np.count_nonzero(p.weights) for p in net.projections)), "timesteps": steps}
    ref = reference(net, x_int)
    m_ref = ref.pop("measurement")
    out["reference"] = ref
    log(f"{name}: reference {ref['samples']} samples {ref['wall_s']:.2f} s, {ref['samples_per_second']:.1f} samples/s")
    out["lava_batched"] = lava(net, x_int, m_ref)
    b = out["lava_batched"]
    log(f"{name}: Lava {b['lanes']} side by side, {b['samples']} samples {b['wall_s']:.2f} s "
        f"({b['compile_s']:.2f} s compiling), {b['samples_per_second']:.1f} samples/s, "
        f"identical spikes {b['identical_spikes']:.0%}, workers' peak memory {b['workers_peak_mib']:.0f} MiB "
        f"(planned {b['planned_mib']:.0f} MiB)")
    k = one_at_a_time
    out["lava_one_at_a_time"] = lava(net, x_int[:k], sub(m_ref, k), lanes=1)
    o = out["lava_one_at_a_time"]
    log(f"{name}: Lava one at a time, {k} samples {o['wall_s']:.2f} s, {o['samples_per_second_running']:.2f} "
        f"samples/s running ({o['steps_per_second']:.0f} steps/s), identical spikes {o['identical_spikes']:.0%}")
    out["by_samples"] = []
    for n in sample_counts:
        if n >= len(x):
            continue
        r = reference(net, x_int[:n])
        r.pop("measurement")
        out["by_samples"].append({"samples": n, "reference": r, "lava_batched": lava(net, x_int[:n], sub(m_ref, n))})
        log(f"{name}: {n} samples: reference {r['samples_per_second']:.1f}, Lava "
            f"{out['by_samples'][-1]['lava_batched']['samples_per_second']:.1f} samples/s")
    out["by_samples"].append({"samples": len(x), "reference": ref, "lava_batched": b})
    out["by_lanes"] = []
    k = min(sweep_samples, len(x))
    for lanes in lanes_sweep:
        r = lava(net, x_int[:k], sub(m_ref, k), lanes=lanes)
        out["by_lanes"].append(r)
        log(f"{name}: {k} samples, {lanes} side by side: {r['samples_per_second_running']:.1f} samples/s running, "
            f"{r['steps_per_second']:.0f} steps/s")
    if sweep_samples:  # the reference's exact float32 products against float64 ones (as before them)
        k = min(200, len(x))
        fast = reference(net, x_int[:k])
        previous = torch.get_float32_matmul_precision()
        torch.set_float32_matmul_precision("high")  # the executor then multiplies in float64
        try:
            slow = reference(net, x_int[:k])
        finally:
            torch.set_float32_matmul_precision(previous)
        same = all(np.array_equal(fast["measurement"].fingerprints[p], slow["measurement"].fingerprints[p])
                   for p in fast["measurement"].fingerprints)
        fast.pop("measurement"), slow.pop("measurement")
        out["reference_float32_vs_float64"] = {"samples": k, "float32": fast, "float64": slow, "identical": same,
                                               "speedup": slow["wall_s"] / fast["wall_s"]}
        log(f"{name}: reference on {k} samples, exact float32 products {fast['wall_s']:.2f} s, float64 "
            f"{slow['wall_s']:.2f} s ({slow['wall_s'] / fast['wall_s']:.1f}x), identical: {same}")
    before = BEFORE_STEPS_PER_S.get(name)
    out["ratios"] = {
        "batched_over_one_at_a_time_running": b["samples_per_second_running"] / o["samples_per_second_running"],
        "batched_over_one_at_a_time_wall": b["samples_per_second"] / o["samples_per_second_running"],
        "reference_over_lava_batched_wall": ref["samples_per_second"] / b["samples_per_second"],
        "reference_over_lava_batched_running": ref["samples_per_second"] / b["samples_per_second_running"],
    }
    if before:
        lo, hi = (s / steps for s in before)
        out["ratios"]["batched_wall_over_readme_before"] = [b["samples_per_second"] / hi, b["samples_per_second"] / lo]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="runs/demo/model.nir", help="the demo model (default: %(default)s)")
    ap.add_argument("--samples", type=int, default=1000, help="samples per model (default: %(default)s)")
    ap.add_argument("--quick", action="store_true", help="100 samples, no sweeps: a check that it runs")
    ap.add_argument("--out", default="runs/bench/lava_speed.json")
    args = ap.parse_args()
    n = 100 if args.quick else args.samples
    log = lambda line: print(line, flush=True)  # noqa: E731

    from converters.lava.builder import run_lava
    from converters.lava.plan import LANE_VALUES, lane_values
    from lmu2neuro.core.atomic import write_json

    torch.set_num_threads(1)
    started = time.perf_counter()
    result = {"machine": {"python": platform.python_version(), "cpu_count": os.cpu_count(),
                          "torch_threads": torch.get_num_threads(), "load_average": os.getloadavg()},
              "samples": n, "lane_values_budget": LANE_VALUES, "models": {}}
    net, label = demo_net(args.model)
    run_lava(net, net.quantize_input(digits(1)), progress=False)  # Lava imported before any timing
    result["models"]["demo"] = {"model": label, "lane_values": lane_values(net, 16), **bench_model(
        "demo", net, digits(n), 20, [] if args.quick else [10, 100], [] if args.quick else [32, 256, n],
        0 if args.quick else n, log)}
    net = preset_net("scv2")
    result["models"]["scv2"] = {"model": "scv2 preset, untrained, random BN statistics", "lane_values": lane_values(net, 128),
                                **bench_model("scv2", net, frames(n, 128, net.input_size), 2,
                                              [] if args.quick else [10, 100], [] if args.quick else [32, 128, 512],
                                              0 if args.quick else 512, log)}
    result["models"]["scv2"]["thousand_samples_lava_s"] = next(
        (r["lava_batched"]["wall_s"] for r in result["models"]["scv2"]["by_samples"] if r["samples"] == 1000), None)
    if not args.quick:  # model size: digits-small at several widths, same samples
        result["by_size"] = []
        for dim in (32, 64, 128, 256):
            net = preset_net("digits-small", dim=dim)
            x = digits(n)
            x_int = net.quantize_input(x)
            ref = reference(net, x_int)
            m_ref = ref.pop("measurement")
            row = {"dim": dim, "neurons": sum(p.size for p in net.populations),
                   "synapses": int(sum(np.count_nonzero(p.weights) for p in net.projections)), "reference": ref,
                   "lava_batched": lava(net, x_int, m_ref),
                   "lava_one_at_a_time": lava(net, x_int[:10], sub(m_ref, 10), lanes=1)}
            result["by_size"].append(row)
            b, o = row["lava_batched"], row["lava_one_at_a_time"]
            log(f"digits-small dim {dim} ({row['neurons']} neurons, {row['synapses']:,} synapses), {n} samples: "
                f"reference {ref['samples_per_second']:.0f}, Lava {b['lanes']} side by side {b['samples_per_second']:.0f} "
                f"({b['samples_per_second_running']:.0f} running), one at a time "
                f"{o['samples_per_second_running']:.1f} samples/s running")
    result["machine"]["load_average_after"] = os.getloadavg()
    result["seconds"] = time.perf_counter() - started
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, result)
    for name, m in result["models"].items():
        r = m["ratios"]
        log(f"{name}: batched / one at a time {r['batched_over_one_at_a_time_wall']:.1f}x (wall, compile included), "
            f"reference / Lava {r['reference_over_lava_batched_wall']:.2f}x")
    log(f"written {args.out}")


if __name__ == "__main__":
    main()
