"""Run a deployed network (a .nir file) on inputs with Lava, the reference simulator, or both."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from lmu2neuro.core.errors import UserError
from lmu2neuro.core.intnet import IntNetwork
from lmu2neuro.analysis.traffic import build_traffic
from lmu2neuro.core.measurement import Measurement, agreement, measure_spikes

BACKENDS = ("lava", "reference", "both")


def run_reference(net: IntNetwork, x_int: np.ndarray, batch: int = 256, progress: bool = False,
                  device: str = "cpu") -> Measurement:
    """The reference integer simulator, in batches, reduced to a Measurement."""
    from tqdm import tqdm

    from lmu2neuro.core.executor import execute

    started = time.perf_counter()
    spikes: dict[str, list] = {}
    traces, wrapped, peak = [], {}, {}
    for first in tqdm(range(0, len(x_int), batch), desc="reference", disable=not progress, leave=False):
        r = execute(net, x_int[first : first + batch], device=device)
        for name, s in r.spikes.items():
            spikes.setdefault(name, []).append(s.numpy())
            wrapped[name] = wrapped.get(name, 0) + r.wrapped[name]
            peak[name] = max(peak.get(name, 0), r.peak_current[name])
        traces.append(r.readout_trace.numpy())
    seconds = time.perf_counter() - started
    steps = int(x_int.shape[0] * x_int.shape[1])
    timing = {"wall_s": seconds, "steps": steps, "steps_per_second": steps / seconds if seconds else None,
              "samples_per_second": len(x_int) / seconds if seconds else None, "batch": batch}
    return measure_spikes("reference", {k: np.concatenate(v) for k, v in spikes.items()},
                          np.concatenate(traces), wrapped, timing, peak)


def load_inputs(net: IntNetwork, *, dataset: str | None = None, data_root=None, samples: int | None = None,
                input_file=None, split: str = "test") -> tuple[np.ndarray, np.ndarray | None]:
    """Float inputs (samples, T, input_size) and labels (or None) from a dataset or an .npy file."""
    if input_file is not None:
        path = Path(input_file)
        from lmu2neuro.core import guards

        guards.check_npy(path)
        try:
            x = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise UserError(f"{path}: not a numpy .npy array ({str(exc).splitlines()[0]})") from None
        if x.ndim < 3 or x.dtype.kind not in "biuf" or x.shape[0] == 0 or x.shape[1] == 0:
            raise UserError(f"{path}: array of shape {x.shape} and dtype {x.dtype}; expected numbers shaped "
                            f"(samples >= 1, timesteps >= 1, *input shape) with input shape of {net.input_size} values")
        bad = int(x.size - np.count_nonzero(np.isfinite(x)))
        if bad:
            raise UserError(f"{path}: {bad} values are NaN or infinite; expected finite numbers (quantization "
                            "would turn them into arbitrary integers)")
        x = x.reshape(x.shape[0], x.shape[1], -1)
        if x.shape[2] != net.input_size:
            raise UserError(f"{path}: each frame holds {x.shape[2]} values; the model's input has {net.input_size}")
        return x[:samples] if samples else x, None
    if dataset is None:
        raise UserError("give --dataset NAME or --input FILE.npy")
    from lmu2neuro.datasets import get_dataset

    data = get_dataset(dataset, root=data_root)
    part = getattr(data, split)
    n = min(samples or len(part), len(part))
    items = [part[i] for i in range(n)]
    x = np.stack([np.asarray(xi, dtype=np.float64) for xi, _ in items])
    y = np.array([int(yi) for _, yi in items])
    if x.shape[2] != net.input_size:
        raise UserError(f"dataset {dataset}: frames of {x.shape[2]} values; the model's input has {net.input_size}")
    return x, y


def simulate_network(net: IntNetwork, x: np.ndarray, labels=None, *, backend: str = "both",
                     tag: str = "fixed_pt", model: str = "", model_sha256: str = "",
                     progress: bool = True, lava_batch: int | str | None = None,
                     device: str = "cpu") -> tuple[dict, dict[str, Measurement]]:
    """Quantize x, run the chosen back ends, return (traffic dict, measurements by back end).

    ``lava_batch``: samples side by side in the one compiled Lava network (None or "auto":
    chosen from the model's size and the memory); checked before any back end starts.
    ``device``: where the reference executor computes (cpu, cuda, cuda:N); Lava runs on the CPU.
    """
    if backend not in BACKENDS:
        raise UserError(f"--backend {backend}: expected one of {', '.join(BACKENDS)}")
    if backend in ("reference", "both"):
        from lmu2neuro.training.distributed import resolve_device

        device = str(resolve_device(device))  # --device cuda without a GPU: one line, before any work
    lanes = None
    if backend in ("lava", "both"):
        from converters.lava.builder import plan_lanes

        lanes = plan_lanes(net, len(x), int(np.shape(x)[1]), lava_batch)
    x_int = net.quantize_input(x)
    runs: dict[str, Measurement] = {}
    if backend in ("reference", "both"):
        runs["reference"] = run_reference(net, x_int, progress=progress, device=device)
    if backend in ("lava", "both"):
        from converters.lava.builder import run_lava

        runs["lava"] = run_lava(net, x_int, tag=tag, progress=progress, lanes=lanes)
    main = runs.get("lava") or runs["reference"]
    agree = agreement(runs["lava"], runs["reference"]) if backend == "both" else None
    timing = {name: m.timing for name, m in runs.items()}
    if backend == "both" and runs["reference"].timing.get("wall_s"):
        timing["reference_speedup_over_lava"] = runs["lava"].timing["wall_s"] / runs["reference"].timing["wall_s"]
    traffic = build_traffic(net, x_int, main, model=model, model_sha256=model_sha256, labels=labels,
                            backend=backend, extra_agreement=agree, dt=net.dt, timing=timing)
    return traffic, runs


def simulate_file(model: str | os.PathLike, *, dataset: str | None = None, input_file=None, data_root=None,
                  samples: int | None = None, backend: str = "both", tag: str = "fixed_pt", dt: float | None = None,
                  progress: bool = False, lava_batch: int | str | None = None,
                  device: str = "cpu") -> tuple[dict, dict[str, Measurement]]:
    """Read a .nir file (ours exactly; another tool's quantized at dt), take inputs from a dataset's
    test split or an .npy file, run the back ends; returns (traffic dict, measurements by back end)."""
    from converters.nir.read import read_intnet
    from lmu2neuro.core.guards import sha256_of

    if samples is not None and samples < 1:
        raise UserError(f"--samples {samples}: expected at least 1")
    from converters.lava.builder import check_lanes_value

    check_lanes_value(lava_batch)  # a bad value is refused before the model is even read
    from lmu2neuro.training.distributed import resolve_device

    resolve_device(device)
    net = read_intnet(model, dt=dt)
    x, y = load_inputs(net, dataset=dataset, data_root=data_root, samples=samples, input_file=input_file)
    return simulate_network(net, x, y, backend=backend, tag=tag, model=str(model), model_sha256=sha256_of(model),
                            progress=progress, lava_batch=lava_batch, device=device)
