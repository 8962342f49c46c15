"""lmu2neuro: from a trained spiking network to a Loihi-style deployment plan, from Python.

The functions here are the ones behind the CLI commands, one per stage::

    import lmu2neuro

    metrics = lmu2neuro.train(dataset="digits", out="runs/digits", preset="digits-small", epochs=20, qat=True)
    net = lmu2neuro.export("runs/digits/best.pt", "runs/digits/model.nir")     # the deployed integers
    net = lmu2neuro.read_network("runs/digits/model.nir")                       # ours, or another tool's
    traffic = lmu2neuro.simulate("runs/digits/model.nir", dataset="digits", samples=50, backend="both")
    report = lmu2neuro.report("runs/digits/traffic.json", out="runs/digits/report", profiles=["loihi1"])
    loihi2 = lmu2neuro.load_profile("loihi2")

Importing the package loads nothing heavy: each function imports its stage when called.
"""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lmu2neuro")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["train", "export", "read_network", "inspect", "simulate", "report", "baseline", "load_profile",
           "__version__"]


def train(dataset: str = "digits", out: str | os.PathLike = "runs/train", **options) -> dict:
    """Train (or resume) a model, as `lmu2neuro train`; returns the metrics also written to out/metrics.json.

    ``options`` are the fields of ``lmu2neuro.training.recipe.TrainConfig``: preset, overrides, spiking,
    recipe ("plain" or "paper"), qat, qat_warmup, epochs, seed, batch_size, lr, lr_step, lr_gamma, limit,
    resume, overwrite, progress, data_root, dataset_options, threads, device ("cpu" or "cuda"). Writes
    out/last.pt, out/best.pt and out/metrics.json. Called in every process that ``torchrun`` starts, it
    trains one model with DistributedDataParallel (rank 0 writes; every process returns the metrics).
    """
    from lmu2neuro.training.recipe import TrainConfig
    from lmu2neuro.training.recipe import train as run_training

    return run_training(TrainConfig(dataset=dataset, out=str(out), **options))


def export(checkpoint: str | os.PathLike, output: str | os.PathLike, format: str = "nir", dt: float | None = None):
    """Lower a checkpoint to Loihi integers and write it as NIR (``format="nir"``) or lava-dl netx
    HDF5 (``"netx"``), as `lmu2neuro export`; returns the ``IntNetwork`` written. The checkpoint is
    read with ``torch.load(weights_only=True)``."""
    from lmu2neuro.pipeline.export import export as run_export

    return run_export(checkpoint, output, format, dt)


def read_network(path: str | os.PathLike, dt: float | None = None, input_scale: float | None = None,
                 reset: str | None = None, refractory: int | None = None):
    """Read a .nir graph as the deployed integer network (``IntNetwork``): exactly for files lmu2neuro
    wrote, quantized by forward Euler at ``dt`` (default: the graph's, else 1e-4 s) for another tool's;
    ``input_scale`` maps its float input to Loihi's 8-bit payload; ``reset`` ("zero" or "subtract") and
    ``refractory`` (steps) state what another tool's graph cannot. A lava-dl netx file is read exactly."""
    from converters.network_file import read_network_file

    return read_network_file(path, dt=dt, input_scale=input_scale, reset=reset, refractory=refractory)


def inspect(path: str | os.PathLike) -> dict:
    """What a .nir file holds (nodes, edges, loops, metadata) and whether it lowers to Loihi, as
    `lmu2neuro inspect --json`."""
    from lmu2neuro.pipeline.inspect import inspect_nir

    return inspect_nir(path)


def simulate(model: str | os.PathLike, *, dataset: str | None = None, input_file: str | os.PathLike | None = None,
             samples: int | None = None, backend: str = "both", out: str | os.PathLike | None = None,
             data_root: str | os.PathLike | None = None, tag: str = "fixed_pt", dt: float | None = None,
             progress: bool = False, lava_batch: int | None = None, device: str = "cpu",
             input_scale: float | None = None, labels_file: str | os.PathLike | None = None,
             input_mode: str | None = None, reset_interval: int | None = None, reset_offset: int = 0) -> dict:
    """Run a .nir model in Lava fixed point and/or the reference executor on a dataset's test split or
    an .npy array, as `lmu2neuro simulate`; returns the traffic dict (docs/CONTRACTS.md), also
    written atomically to ``out`` when given. ``lava_batch``: samples side by side in the one
    compiled Lava network (None: chosen from the model's size and the free memory); ``device``: where
    the reference executor computes (cpu, cuda, cuda:N). ``input_scale``: another tool's graph's float
    input scale (default: calibrated from the inputs; refused for our own files); ``labels_file``: an
    .npy of class labels for ``input_file``. ``input_mode``: "current", "bias" or "transform" (a
    netx file whose input layer has neurons: "transform" by default, docs/netx.md);
    ``reset_interval`` / ``reset_offset``: one long stream per sample with every state zeroed every
    N steps, as lava-dl's reset_interval."""
    from lmu2neuro.pipeline.simulate import simulate_file

    traffic, _ = simulate_file(model, dataset=dataset, input_file=input_file, data_root=data_root, samples=samples,
                               backend=backend, tag=tag, dt=dt, progress=progress, lava_batch=lava_batch,
                               device=device, input_scale=input_scale, labels_file=labels_file,
                               input_mode=input_mode, reset_interval=reset_interval, reset_offset=reset_offset)
    if out is not None:
        from lmu2neuro.core.atomic import write_json

        write_json(out, traffic)
    return traffic


def report(traffic: str | os.PathLike, out: str | os.PathLike, *, model: str | os.PathLike | None = None,
           profiles: list[str] | tuple[str, ...] = ("loihi1", "loihi2", "cpu"),
           step_time: float | None = None, frame_period: float | None = None,
           measured: str | os.PathLike | None = None) -> dict:
    """Operation counts, energy, latency, throughput and power per hardware profile and the chip
    mapping from a traffic.json, as `lmu2neuro report`; writes report.json, report.md, report.html and
    plots into ``out`` and returns the report dict. ``model`` defaults to the .nir the traffic names
    (its sha256 is checked); ``frame_period`` (s) gives the real-time factor against that input rate."""
    from lmu2neuro.reports.build import make_report

    return make_report(traffic, model, list(profiles), out, step_time, frame_period, measured=measured)


def baseline(model, *, timesteps: int, static: bool = False, device: str = "cpu", batch: int = 64,
             tdp_w: float | None = None, profile: str = "cpu", out: str | os.PathLike | None = None) -> dict:
    """Time the network's non-spiking equivalent and its SNN as dense torch on this machine, as
    `lmu2neuro baseline` (docs/baselines.md): ``model`` a .nir / netx file or an IntNetwork; returns
    the result dict (also written to ``out``); ``report(..., measured=out)`` shows it."""
    from lmu2neuro.pipeline.baseline import run_baseline

    return run_baseline(model, timesteps=timesteps, static=static, device=device, batch=batch, tdp_w=tdp_w,
                        profile=profile, out=out)


def load_profile(name_or_path: str | os.PathLike):
    """A hardware profile (``Profile``) by shipped name (loihi1, loihi2, spinnaker2, cpu, gpu, jetson,
    mac45nm) or YAML path, validated; every number carries its source."""
    from lmu2neuro.analysis.profiles import load_profile as load

    return load(name_or_path)
