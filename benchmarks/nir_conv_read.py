"""Reading a third-party NIR convolutional network: the convolution path against the dense path.

The graph is the snnTorch tutorial CNN's shape written directly as NIR (1x28x28 -> Conv2d 12@5 ->
AvgPool2d 2 -> LIF -> Conv2d 64@5 -> AvgPool2d 2 -> LIF -> Flatten -> Linear 1024 -> 10 -> LIF;
random weights, seed 0), read by ``read_intnet`` twice, each in its own process so that each peak
resident memory (the kernel's maxrss of that process, torch's import included) is its own:
- the convolution path at the default limits;
- the dense path (``conv=False``, every chain composed into a dense matrix) with
  LMU2NEURO_MAX_ELEMENTS raised so that it can run at all (at the default it is refused).
Reported per path: wall time of the read, peak memory, weights stored, the projections' MACs per
step and the source layers' own (``origin["ann_macs"]``, NeuroBench's count). Both in one run on
a shared 2-core machine, side by side.

Usage: python benchmarks/nir_conv_read.py [--out runs/bench/nir_conv_read.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def write_graph(path: Path) -> None:
    import nir
    import numpy as np

    rng = np.random.default_rng(0)

    def lif(shape):
        return nir.LIF(tau=np.full(shape, 1e-3), r=np.full(shape, 10.0), v_leak=np.zeros(shape),
                       v_threshold=np.ones(shape))

    def pool():
        return nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))

    nodes = {
        "x": nir.Input(input_type=np.array([1, 28, 28])),
        "c1": nir.Conv2d(input_shape=(28, 28), weight=rng.normal(0, 0.3, (12, 1, 5, 5)), stride=1, padding=0,
                         dilation=1, groups=1, bias=rng.normal(0, 0.1, 12)),
        "p1": pool(), "l1": lif((12, 12, 12)),
        "c2": nir.Conv2d(input_shape=(12, 12), weight=rng.normal(0, 0.1, (64, 12, 5, 5)), stride=1, padding=0,
                         dilation=1, groups=1, bias=rng.normal(0, 0.1, 64)),
        "p2": pool(), "l2": lif((64, 4, 4)),
        "f": nir.Flatten(input_type={"input": np.array([64, 4, 4])}, start_dim=0, end_dim=-1),
        "fc": nir.Linear(weight=rng.normal(0, 0.05, (10, 1024))), "l3": lif((10,)),
        "y": nir.Output(output_type=np.array([10])),
    }
    chain = ["x", "c1", "p1", "l1", "c2", "p2", "l2", "f", "fc", "l3", "y"]
    nir.write(path, nir.NIRGraph(nodes=nodes, edges=list(zip(chain, chain[1:]))))


def child(path: str, conv: bool) -> None:
    from converters.nir.read import read_intnet

    t0 = time.perf_counter()
    net = read_intnet(path, input_scale=127, conv=conv)
    wall = time.perf_counter() - t0
    print(json.dumps({
        "read_s": round(wall, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "stored_weights": sum(p.stored_weights() for p in net.projections),
        "projection_macs_per_step": sum(p.macs() for p in net.projections),
        "ann_macs_per_step": sum(p.origin.get("ann_macs", p.macs()) for p in net.projections),
        "conv_projections": sum(p.conv is not None for p in net.projections),
    }))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "runs/bench/nir_conv_read.json"))
    ap.add_argument("--child", nargs=2, metavar=("PATH", "CONV"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1] == "1")
        return 0
    from lmu2neuro.core import atomic

    result = {"network": "snnTorch tutorial CNN shape as raw NIR (28x28, 12@5, avg 2, 64@5, avg 2, 1024->10)"}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cnn.nir"
        write_graph(path)
        for name, conv, env in (("conv_path_default_limits", "1", {}),
                                ("dense_path_default_limits", "0", {}),
                                ("dense_path_raised_limit", "0", {"LMU2NEURO_MAX_ELEMENTS": str(1 << 28)})):
            proc = subprocess.run([sys.executable, __file__, "--child", str(path), conv], capture_output=True,
                                  text=True, env=dict(os.environ, **env))
            result[name] = (json.loads(proc.stdout) if proc.returncode == 0 else
                            {"refused": " ".join(proc.stderr.strip().splitlines()[-1:])[:300]})
            print(name, result[name], flush=True)
    with atomic.atomic_path(args.out) as tmp_out:
        Path(tmp_out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
