"""PilotNet-size convolutional network in the reference executor and in Lava fixed_pt, side by side.

Usage: python benchmarks/pilotnet_lava.py [--samples 2] [--steps 16] [--quick] [--network random|lava-dl]
                                          [--out runs/bench/pilotnet_lava.json]

``--network lava-dl``: lava-dl's own PilotNet LIF file (../shared/data/lava_dl_pilotnet_lif/network.net,
unchanged), its input layer of neurons driven through their bias as lava-dl drives it; sample i is
the recorded image with i added to every bias mantissa (distinct samples from the one image).

The network is benchmarks/conv_networks.pilotnet (NVIDIA's PilotNet shape: 3x66x200 input, five
conv layers, four dense layers; random even 8-bit kernels, thresholds set for about 10% of
neurons spiking per step, a static random input frame presented for every step). It runs, on
the same samples and in one process one after another:
- the reference executor (lmu2neuro.core.executor via pipeline.simulate.run_reference, torch);
- Lava, samples side by side (lanes chosen by the builder): every convolution in TappedConv;
- Lava, one sample at a time, convolutions in Lava's own Conv (lava.proc.conv) wherever the
  builder finds it exact (lanes = 1, one delay, weight_exp >= 0, ...), the rest in TappedConv;
- Lava, one sample at a time, every convolution in TappedConv (the same graph as the previous
  run but for the conv process: the per-step cost of Lava's Conv against ours).
For each: wall time (Lava: compile, i.e. process start, apart from the run), steps per second,
and peak memory: this process's resident set plus what its child processes (Lava's workers) add
(their private pages and their share of shared memory), polled every 0.1 s, so short peaks
between polls can be missed. Every Lava run is compared with the reference on every spike of
every layer (per-sample spike count and fingerprint per population). The machine is shared
(2 cores): absolute times move with its load, ratios measured in one run less so.
"""

from __future__ import annotations

import argparse
import json
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


from memory import PeakMemory  # noqa: E402


def run_ref(net, x):
    from lmu2neuro.pipeline.simulate import run_reference

    with PeakMemory() as mem:
        t0 = time.perf_counter()
        m = run_reference(net, x)
        wall = time.perf_counter() - t0
    samples, steps = x.shape[:2]
    return m, {"backend": "reference", "samples": samples, "wall_s": wall,
               "sample_steps_per_second": samples * steps / wall, "peak_memory_mib": mem.peak / 2**20}


def run_lava_case(net, x, ref, label, lanes, conv_process):
    from converters.lava.builder import run_lava
    from lmu2neuro.core.measurement import agreement

    with PeakMemory() as mem:
        t0 = time.perf_counter()
        m = run_lava(net, x, progress=False, lanes=lanes, conv_process=conv_process)
        wall = time.perf_counter() - t0
    t = m.timing
    agree = agreement(m, ref)
    samples, steps = x.shape[:2]
    per_layer = {name: bool(np.array_equal(m.fingerprints[name], ref.fingerprints[name])
                            and np.array_equal(m.sample_spikes[name], ref.sample_spikes[name]))
                 for name in ref.fingerprints}
    return {"backend": f"lava fixed_pt ({label})", "samples": samples, "lanes": t["lanes"], "rounds": t["rounds"],
            "conv_processes": t["processes"], "wall_s": wall, "compile_s": t["compile_s"], "run_s": t["run_s"],
            "lava_steps": t["steps"], "lava_steps_per_second": t["steps_per_second"],
            "sample_steps_per_second": samples * steps / t["run_s"], "peak_memory_mib": mem.peak / 2**20,
            "identical_spikes": agree["identical_spikes"], "identical_scores": agree["identical_scores"],
            "identical_per_layer": per_layer, "first_mismatch": agree["first_mismatch"]}


def lava_dl_pilotnet(steps: int, samples: int):
    """lava-dl's PilotNet LIF from the shared data and (samples, steps, 39600) bias mantissas."""
    from converters.netx.read import read_netx

    data = ROOT.parent / "shared" / "data" / "lava_dl_pilotnet_lif"
    net = read_netx(data / "network.net")
    image = np.load(data / "image.npy").transpose(2, 1, 0).reshape(1, 1, -1).astype(np.int64)
    x = np.repeat(image, steps, axis=1) + np.arange(samples).reshape(-1, 1, 1)
    return net, x


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--quick", action="store_true", help="1 sample, 8 steps, no one-at-a-time TappedConv run")
    ap.add_argument("--network", choices=["random", "lava-dl"], default="random")
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench" / "pilotnet_lava.json"))
    args = ap.parse_args()
    if args.quick:
        args.samples, args.steps = 1, 8
    torch.set_num_threads(1)  # the reference's fastest setting on this shared machine (lava_speed.py)

    import converters.lava  # noqa: F401  (Lava imported before any timing)
    from conv_networks import pilotnet

    from lmu2neuro.core.atomic import atomic_path

    t0 = time.perf_counter()
    net, x = (pilotnet(steps=args.steps, seed=0, batch=args.samples) if args.network == "random"
              else lava_dl_pilotnet(args.steps, args.samples))
    build_s = time.perf_counter() - t0
    print(f"PilotNet: input {net.input_size}, {len(net.populations)} populations, "
          f"{sum(p.size for p in net.populations):,} neurons, {len(x)} samples x {x.shape[1]} steps "
          f"(built in {build_s:.1f} s)", flush=True)
    ref, ref_row = run_ref(net, x)
    rows = [ref_row]
    print(f"  reference: {ref_row['wall_s']:.2f} s, {ref_row['sample_steps_per_second']:.1f} sample-steps/s, "
          f"peak {ref_row['peak_memory_mib']:.0f} MiB", flush=True)
    cases = [("samples side by side, TappedConv", None, "custom"),
             ("one sample at a time, Lava's Conv where exact", 1, "auto")]
    if not args.quick:
        cases.append(("one sample at a time, TappedConv", 1, "custom"))
    for label, lanes, conv_process in cases:
        row = run_lava_case(net, x, ref, label, lanes, conv_process)
        rows.append(row)
        print(f"  {row['backend']}: wall {row['wall_s']:.1f} s (compile {row['compile_s']:.1f} s, run "
              f"{row['run_s']:.1f} s), {row['lava_steps_per_second']:.2f} Lava steps/s, "
              f"{row['sample_steps_per_second']:.2f} sample-steps/s, lanes {row['lanes']}, "
              f"peak {row['peak_memory_mib']:.0f} MiB, identical spikes {row['identical_spikes']:.0%}, "
              f"conv processes {sorted(set(row['conv_processes'].values()))}", flush=True)
    spikes = {name: float(ref.sample_spikes[name].mean()) for name in ref.sample_spikes}
    result = {
        "benchmark": "pilotnet_lava", "command": " ".join(["python"] + sys.argv),
        "network": {"builder": "benchmarks/conv_networks.pilotnet(steps, seed=0, batch=samples)"
                    if args.network == "random" else
                    "lava-dl PilotNet LIF (shared network.net), bias input: the recorded image + sample index",
                    "input_size": net.input_size, "steps": int(x.shape[1]), "samples": int(len(x)),
                    "populations": {p.name: {"size": p.size, "shape": p.shape} for p in net.populations},
                    "mean_spikes_per_sample": spikes},
        "runs": rows,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch_threads": 1,
                    "note": "shared 2-core machine: runs are side by side in one process, one after another"},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        Path(tmp).write_text(json.dumps(result, indent=2, default=str))
    print(f"wrote {out}")
    bad = [r["backend"] for r in rows[1:] if r["identical_spikes"] != 1.0]
    if bad:
        print(f"MISMATCH with the reference: {bad}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
