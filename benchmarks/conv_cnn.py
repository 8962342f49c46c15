"""Issue 13 targets on the snnTorch tutorial CNN, at the default limits, in one run.

The network is benchmarks/conv_networks.py's ``tutorial_cnn`` (snnTorch tutorial 6's shape:
1x28x28 -> Conv2d 12@5 + pool 2 -> Leaky -> Conv2d 64@5 + pool 2 -> Leaky -> Linear 1024 -> 10,
each conv + pool one projection; random kernels, thresholds for about 10 % activity), exported
through our NIR writer and read back by the CLI like any user's file. Measured here:
- peak resident memory of `lmu2neuro inspect` and `lmu2neuro report` (each its own process,
  measured by GNU time's %M; target < 500 MB);
- the reference simulator on 100 samples x 25 steps, in-process (torch threads = the cores),
  and the `lmu2neuro simulate --backend reference` command's wall time (target < 10 s);
- the report's Dense count against NeuroBench's definition, computed here independently the way
  NeuroBench does it (each Conv2d / Linear layer with all-one weights on an all-one input, bias
  off, outputs summed, once per time step: neurobench/metrics/utils/layers/macs.py,
  ``stateless_layer_macs``; summed in metrics/workload/synaptic_operations.py as "Dense");
- whether snnTorch's own ``export_to_nir`` of the real tutorial CNN (max pooling as in the
  tutorial, and with average pooling) reads through our NIR reader.
All figures come from the same run on a shared 2-core machine; times are wall clock.

Usage: python benchmarks/conv_cnn.py [--out runs/bench/conv_cnn.json] [--samples 100]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from conv_networks import tutorial_cnn  # noqa: E402
from converters.nir.export import export_nir  # noqa: E402
from lmu2neuro.core import atomic  # noqa: E402
from lmu2neuro.pipeline.simulate import run_reference  # noqa: E402

CLI = [sys.executable, "-m", "lmu2neuro.cli"] if not (ROOT / ".venv/bin/lmu2neuro").exists() else [str(ROOT / ".venv/bin/lmu2neuro")]
MB = 1024 * 1024


def run_measured(args: list[str], env: dict, tmp: Path) -> dict:
    """Run a command; its wall time and peak resident memory. The peak is GNU time's %M of the
    command: a child forked from this (large) process would start with this process's maxrss."""
    gnu_time = Path("/usr/bin/time")
    rss_file = tmp / "maxrss.txt"
    wrapped = ([str(gnu_time), "-f", "%M", "-o", str(rss_file)] + args) if gnu_time.exists() else args
    start = time.perf_counter()
    proc = subprocess.run(wrapped, capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - start
    peak = float(rss_file.read_text().split()[-1]) * 1024 / MB if gnu_time.exists() and rss_file.exists() else None
    return {"command": " ".join(Path(a).name if i == 0 else a for i, a in enumerate(args)), "rc": proc.returncode,
            "wall_s": wall, "peak_rss_mb": peak, "stderr_tail": proc.stderr.strip()[-400:],
            "stdout_head": proc.stdout.strip()[:300]}


def neurobench_dense_per_step() -> dict:
    """NeuroBench's Dense for one step of the tutorial CNN's real layers (see the module docstring)."""
    layers = {"Conv2d(1, 12, 5)": (torch.nn.Conv2d(1, 12, 5), (1, 1, 28, 28)),
              "Conv2d(12, 64, 5)": (torch.nn.Conv2d(12, 64, 5), (1, 12, 12, 12)),
              "Linear(1024, 10)": (torch.nn.Linear(1024, 10), (1, 1024))}
    out = {}
    with torch.no_grad():
        for name, (layer, shape) in layers.items():
            layer.weight.fill_(1.0)
            layer.bias.zero_()
            out[name] = int(layer(torch.ones(shape)).sum())
    return out


def snntorch_tutorial_via_nir(tmp: Path) -> dict:
    """snnTorch's export_to_nir of the real tutorial CNN (untrained), read by our reader."""
    result = {}
    try:
        import snntorch as snn
        from snntorch.export_nir import export_to_nir
    except ImportError as exc:
        return {"skipped": f"snntorch not importable: {exc}"}
    from converters.nir.read import read_intnet
    for pool_name, pool in (("MaxPool2d (the tutorial's)", torch.nn.MaxPool2d), ("AvgPool2d", torch.nn.AvgPool2d)):
        torch.manual_seed(0)
        model = torch.nn.Sequential(
            torch.nn.Conv2d(1, 12, 5), pool(2), snn.Leaky(beta=0.5, init_hidden=True),
            torch.nn.Conv2d(12, 64, 5), pool(2), snn.Leaky(beta=0.5, init_hidden=True),
            torch.nn.Flatten(), torch.nn.Linear(64 * 4 * 4, 10), snn.Leaky(beta=0.5, init_hidden=True, output=True))
        path = tmp / f"snntorch_{pool.__name__}.nir"
        import nir
        errors = []
        for sample in ((1, 28, 28), (1, 1, 28, 28)):  # snnTorch's docs pass one sample, with or without batch
            try:
                nir.write(str(path), export_to_nir(model, torch.zeros(sample)))
                break
            except Exception as exc:  # noqa: BLE001 -- the benchmark reports whatever stops the chain
                errors.append(f"input {sample}: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
        else:
            result[pool_name] = {"reads": False, "stage": "snnTorch export_to_nir / nir type inference", "errors": errors}
            continue
        try:
            net = read_intnet(path)
            result[pool_name] = {"reads": True, "projections": [
                {"name": p.name, "conv": p.conv is not None, "stored_weights": p.stored_weights()} for p in net.projections]}
        except Exception as exc:  # noqa: BLE001
            result[pool_name] = {"reads": False, "stage": "our NIR reader", "errors": [" ".join(str(exc).split())[:300]]}
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "runs/bench/conv_cnn.json"))
    ap.add_argument("--samples", type=int, default=100)
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    torch.set_num_threads(cores)
    env = dict(os.environ, OMP_NUM_THREADS=str(cores))

    net, x_int = tutorial_cnn(batch=args.samples)
    net.dt = 1e-3
    steps = x_int.shape[1]
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        model = tmp / "tutorial_cnn.nir"
        export_nir(net, model)
        np.save(tmp / "x.npy", x_int / net.input_scale)

        inspect = run_measured(CLI + ["inspect", str(model)], env, tmp)
        simulate = run_measured(CLI + ["simulate", str(model), "--input", str(tmp / "x.npy"), "--backend",
                                       "reference", "-o", str(tmp / "traffic.json")], env, tmp)
        report = run_measured(CLI + ["report", str(tmp / "traffic.json"), "--model", str(model), "-o",
                                     str(tmp / "report")], env, tmp)

        # the reference simulator in-process, after one warm-up batch
        run_reference(net, x_int[:2])
        t0 = time.perf_counter()
        run_reference(net, x_int)
        sim_s = time.perf_counter() - t0
        rep = json.loads((tmp / "report/report.json").read_text()) if report["rc"] == 0 else None
        snn_nir = snntorch_tutorial_via_nir(tmp)

    nb = neurobench_dense_per_step()
    nb_dense = sum(nb.values()) * steps
    totals = rep["counts"]["totals"] if rep else {}
    result = {
        "network": "snnTorch tutorial 6 CNN shape (benchmarks/conv_networks.py tutorial_cnn), via our NIR writer",
        "samples": args.samples, "steps": steps, "cores": cores, "torch_threads": torch.get_num_threads(),
        "reference_100_samples_s": sim_s, "reference_target_s": 10.0,
        "inspect": inspect, "simulate_cli": simulate, "report": report, "memory_target_mb": 500,
        "dense": {"report": totals.get("dense"), "neurobench_definition": nb_dense, "per_layer_per_step": nb,
                  "equal": totals.get("dense") == nb_dense,
                  "ann_baseline_macs": totals.get("ann_baseline_macs"), "ann_passes": totals.get("ann_passes")},
        "footprint_bytes": totals.get("footprint_bytes"),
        "stored_weights": int(sum(p.stored_weights() for p in net.projections)),
        "firing_rates": {lay["name"]: lay["firing_rate"] for lay in rep["counts"]["layers"]} if rep else None,
        "snntorch_export_to_nir": snn_nir,
        "note": "one run on a shared 2-core machine; peak memory is each command's own process (GNU time %M)",
    }
    atomic.write_text(args.out, json.dumps(result, indent=2))
    print(f"reference simulator, {args.samples} samples x {steps} steps: {sim_s:.2f} s (target < 10 s, "
          f"{torch.get_num_threads()} threads); `simulate` command {simulate['wall_s']:.1f} s (rc {simulate['rc']})")
    for name, r in (("inspect", inspect), ("report", report)):
        print(f"{name}: peak {r['peak_rss_mb'] or float('nan'):.0f} MB (target < 500 MB), {r['wall_s']:.1f} s, rc {r['rc']}"
              + (f": {r['stderr_tail']}" if r["rc"] else ""))
    print(f"Dense: report {totals.get('dense')}, NeuroBench's definition {nb_dense} ({nb} per step x {steps}): "
          f"{'equal' if result['dense']['equal'] else 'DIFFERENT'}; ANN baseline {totals.get('ann_baseline_macs')} "
          f"MACs ({totals.get('ann_passes')} pass)")
    print(f"footprint {totals.get('footprint_bytes')} bytes for {result['stored_weights']} stored weights")
    print(f"snnTorch export_to_nir -> our reader: {json.dumps(snn_nir)[:400]}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
