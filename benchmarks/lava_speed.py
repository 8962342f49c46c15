"""Lava vs reference simulator speed on the demo model, and streaming vs one compile per sample.

Usage: python benchmarks/lava_speed.py [--model runs/demo/model.nir] [--samples 100] [--out JSON]
Without a trained model it lowers an untrained digits-small model (dim 64), the demo's shape.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)


def load_net(model: str | None):
    from converters.nir.read import read_intnet

    if model and Path(model).exists():
        return read_intnet(model), model
    from lmu2neuro.deploy.lowering import lower
    from lmu2neuro.models.config import ModelConfig
    from lmu2neuro.models.registry import build_model

    torch.manual_seed(0)
    m = build_model(ModelConfig.from_preset("digits-small", dim=64))
    m.eval()
    return lower(m), "digits-small (dim 64), untrained"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="runs/demo/model.nir")
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--per-sample-compiles", type=int, default=5)
    ap.add_argument("--out", default="runs/bench/lava_speed.json")
    args = ap.parse_args()

    from converters.lava.builder import run_lava
    from lmu2neuro.datasets import get_dataset
    from lmu2neuro.pipeline.simulate import run_reference

    net, model_name = load_net(args.model)
    test = get_dataset("digits").test
    x = np.stack([np.asarray(test[i][0]) for i in range(args.samples)])
    x_int = net.quantize_input(x)
    steps = x.shape[1]

    run_reference(net, x_int[:2])  # warm-up
    t0 = time.perf_counter()
    ref = run_reference(net, x_int)
    ref_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    lava = run_lava(net, x_int, progress=False)
    stream_s = time.perf_counter() - t0

    k = args.per_sample_compiles
    t0 = time.perf_counter()
    for i in range(k):
        run_lava(net, x_int[i : i + 1], progress=False)
    per_sample_s = (time.perf_counter() - t0) / k

    from lmu2neuro.core.measurement import agreement

    result = {
        "model": model_name, "populations": len(net.populations), "projections": len(net.projections),
        "samples": args.samples, "timesteps": steps,
        "reference": {"wall_s": ref_s, "steps_per_second": args.samples * steps / ref_s,
                      "per_sample_s": ref_s / args.samples},
        "lava_streaming": {"wall_s": stream_s, "compile_s": lava.timing["compile_s"],
                           "lava_steps": lava.timing["steps"], "steps_per_second": lava.timing["steps_per_second"],
                           "per_sample_s": stream_s / args.samples},
        "lava_compile_per_sample": {"samples_timed": k, "per_sample_s": per_sample_s},
        "speedup_reference_over_lava_per_sample": (stream_s / args.samples) / (ref_s / args.samples),
        "speedup_streaming_over_compile_per_sample": per_sample_s / (stream_s / args.samples),
        "agreement": agreement(lava, ref),
        "machine": {"python": platform.python_version(), "cpu_count": __import__("os").cpu_count(),
                    "torch_threads": torch.get_num_threads()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
