"""Run a deployed network (a .nir file) on inputs with Lava, the reference simulator, or both."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np

from lmu2neuro.core.errors import UserError
from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core.intnet import IntNetwork
from lmu2neuro.analysis.traffic import build_traffic
from lmu2neuro.core.measurement import Measurement, agreement, measure_spikes

BACKENDS = ("lava", "reference", "both")
# How the values given reach the network (docs/netx.md): "current", the graded 8-bit payload of the
# first synapses (clip(round(x * scale))); for a network whose input drives a population's bias
# (IntNetwork.bias_input: a netx input layer with neurons), "bias": the values are that bias
# mantissa per step, as lava-dl sets in_layer.neuron.bias_mant, or "transform" (the default
# there): raw frames, which the file's transform int(w * x + b) turns into the mantissa first.
INPUT_MODES = ("current", "bias", "transform")
# A third-party graph's float inputs are mapped to Loihi's 8-bit payload by clip(round(x * scale)).
# With no scale given, the largest |x| of the calibration inputs lands on 127: nothing clips, and
# inputs in [0, 1] keep 128 levels instead of collapsing to {0, 1} (the old default scale of 1).
CALIBRATION_RULE = fx.CALIBRATION_RULE
# Below this fraction of samples predicted alike by the float source graph and the deployed
# integer network, the CLI warns: the quantized network is no longer the trained model.
FIDELITY_WARN_BELOW = 0.9


def run_reference(net: IntNetwork, x_int: np.ndarray, batch: int = 256, progress: bool = False,
                  device: str = "cpu", reset_interval: int | None = None, reset_offset: int = 0) -> Measurement:
    """The reference integer simulator, in batches, reduced to a Measurement."""
    from tqdm import tqdm

    from lmu2neuro.core.executor import execute

    started = time.perf_counter()
    spikes: dict[str, list] = {}
    traces, wrapped, peak = [], {}, {}
    for first in tqdm(range(0, len(x_int), batch), desc="reference", disable=not progress, leave=False):
        r = execute(net, x_int[first : first + batch], device=device, reset_interval=reset_interval,
                    reset_offset=reset_offset)
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


def _read_npy(path: Path) -> np.ndarray:
    """A user's .npy, header checked by the guards first (no pickles, no oversized or short arrays)."""
    from lmu2neuro.core import guards

    guards.check_npy(path)
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise UserError(f"{path}: not a numpy .npy array ({(str(exc).splitlines() or [type(exc).__name__])[0]})") from None


def load_inputs(net: IntNetwork, *, dataset: str | None = None, data_root=None, samples: int | None = None,
                input_file=None, split: str = "test") -> tuple[np.ndarray, np.ndarray | None]:
    """Float inputs (samples, T, input_size) and labels (or None) from a dataset or an .npy file."""
    if input_file is not None:
        path = Path(input_file)
        x = _read_npy(path)
        if x.ndim < 3 or x.dtype.kind not in "biuf" or x.shape[0] == 0 or x.shape[1] == 0:
            raise UserError(f"{path}: array of shape {x.shape} and dtype {x.dtype}; expected numbers shaped "
                            f"(samples >= 1, timesteps >= 1, *input shape) with input shape of {net.input_size} values")
        from lmu2neuro.core.guards import check_float32_range

        # NaN, inf or beyond float32 (1e39, 1e300) would quantize to arbitrary integers or overflow
        check_float32_range(str(path), x)
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


def load_labels(path, samples: int, file_samples: int) -> np.ndarray:
    """Integer class labels from an .npy file, one per input sample (the first ``samples`` kept)."""
    path = Path(path)
    y = _read_npy(path)
    if y.ndim != 1 or y.dtype.kind not in "iuf":
        raise UserError(f"{path}: labels of shape {y.shape} and dtype {y.dtype}; expected a 1-D array of integer "
                        f"class indices, one per input sample ({file_samples})")
    if y.dtype.kind == "f":
        bad = int(y.size - np.count_nonzero(np.isfinite(y)))
        if bad:
            raise UserError(f"{path}: {bad} labels are NaN or infinite; expected integer class indices")
        if np.any(y != np.round(y)):
            raise UserError(f"{path}: labels hold fractions (dtype {y.dtype}); expected integer class indices")
    if len(y) != file_samples:
        raise UserError(f"{path}: {len(y)} labels for {file_samples} input samples; expected one label per sample")
    if np.any(y < 0):
        raise UserError(f"{path}: negative labels (smallest {int(y.min())}); expected class indices >= 0")
    if len(y) and float(y.max()) >= 2**31:  # the int64 cast below would overflow a float label of 1e300
        raise UserError(f"{path}: a label of {float(y.max()):.4g}; expected class indices below 2**31")
    return y[:samples].astype(np.int64)


def float_fidelity(path, net: IntNetwork, x: np.ndarray, main: Measurement, labels=None,
                   reset: str | None = None, refractory: int | None = None) -> dict:
    """The source float graph (our torch reader, forward Euler at net.dt) beside the deployed integer
    network on the same inputs: prediction agreement, accuracy of each, spike-count ratio per layer.
    ``reset``: the reset the graph was trained with where NIR cannot state it (``--reset subtract``);
    ``refractory`` likewise (``--refractory 1``), where the float executor takes one."""
    import inspect as pyinspect

    import torch

    from converters.nir.float_executor import load

    # the float graph runs with the same reset where the float executor can be told one
    params = pyinspect.signature(load).parameters
    kw = {"reset": reset} if reset and "reset" in params else {}
    if refractory and "refractory" in params:
        kw["refractory"] = int(refractory)
    model = load(path, dt=float(net.dt), **kw)
    shape = tuple(int(s) for s in np.asarray(model.nodes[model.inputs[0]].input_type["input"]).reshape(-1))
    xs = torch.as_tensor(np.asarray(x, dtype=np.float64).reshape(x.shape[:2] + shape))
    with torch.no_grad():
        out, rec = model(xs, record=True)
    out = out.reshape(out.shape[0], out.shape[1], -1).numpy()
    counted = net.population(net.output).meta.get("added_by_tool")
    # the integer prediction is the argmax of the readout's last value: of spike counts for a spiking
    # output (the readout the reader added), of the leaky readout's voltage otherwise
    float_pred = (out.sum(axis=1) if counted else out[:, -1]).argmax(axis=1)
    int_pred = main.predictions
    layers = {}
    for pop in net.populations:
        node = pop.meta.get("nir_node")
        if node is None or pop.readout or node not in rec:
            continue
        theirs = rec[node]["out"].reshape(x.shape[0], x.shape[1], -1)[:, :, pop.meta["neurons"]]
        f_spikes, i_spikes = float(theirs.sum()), int(main.spike_counts[pop.name].sum())
        layers[pop.name] = {"int_spikes": i_spikes, "float_spikes": int(f_spikes),
                            "spike_ratio": i_spikes / f_spikes if f_spikes else None}
    block = {
        "source": f"{path}, run in float64 by converters.nir.float_executor (forward Euler, dt = {net.dt} s"
                  + ((", subtract reset in the firing step (Loihi's rule; snnTorch's default reset_delay=True "
                      "subtracts one step late: (1 - beta) threshold more per spike)" if kw["reset"] == "subtract"
                      else f", {kw['reset']} reset") if "reset" in kw else ", the reset the graph states")
                  + (f", refractory {kw['refractory']} steps)" if "refractory" in kw else
                     (f"; without the refractory period of {refractory} steps: the float executor has none)"
                      if refractory else ")")),
        "samples": int(len(x)),
        "prediction_agreement": float((float_pred == int_pred).mean()),
        "warn_below": FIDELITY_WARN_BELOW,
        "float_predictions": float_pred.astype(int).tolist(),
        "float_accuracy": None, "int_accuracy": None,
        "layers": layers,
    }
    if labels is not None:
        y = np.asarray(labels)
        block["float_accuracy"] = float((float_pred == y).mean())
        block["int_accuracy"] = float((int_pred == y).mean())
    return block


def input_mode_of(net: IntNetwork, mode: str | None, where: str = "") -> str:
    """The input mode to use (None: the network's default), or a UserError naming ``--input-mode``
    and what the network takes."""
    if mode is None:
        return "transform" if net.bias_input is not None else "current"
    if mode not in INPUT_MODES:
        raise UserError(f"--input-mode {mode}: expected one of {', '.join(INPUT_MODES)}")
    if mode != "current" and net.bias_input is None:
        raise UserError(f"{where}--input-mode {mode}: this network's input layer has no neurons to drive through "
                        "their bias (its input is a graded current into the first synapses); expected --input-mode "
                        "current")
    if mode == "current" and net.bias_input is not None:
        raise UserError(f"{where}--input-mode current: this network's input layer has neurons, which lava-dl drives "
                        "through their bias (nothing takes the input as a current); expected --input-mode bias or "
                        "transform")
    return mode


def input_values(net: IntNetwork, x: np.ndarray, mode: str | None = None, where: str = "") -> np.ndarray:
    """The integers the back ends take for inputs x (samples, T, input_size) in ``mode``
    (INPUT_MODES): the quantized payload, or the bias mantissas, checked against Loihi's 13 bits."""
    mode = input_mode_of(net, mode, where)
    if mode == "current":
        return net.quantize_input(x)
    what = f"{where}--input-mode {mode}"
    try:
        mant = net.bias_input.transform(x) if mode == "transform" else x
        if mode == "transform":
            what += (f" (the file's transform int({net.bias_input.weight:g} x + {net.bias_input.bias:g}) of the "
                     f"values given)")
        return net.bias_input.check(mant, what)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def check_reset_option(interval, offset) -> tuple[int | None, int]:
    """--reset-interval / --reset-offset checked (intnet.check_reset_interval), as a UserError."""
    from lmu2neuro.core.intnet import check_reset_interval

    if interval is None and offset:
        raise UserError(f"--reset-offset {offset}: goes with --reset-interval N")
    try:
        return check_reset_interval(interval, offset, "--reset-interval")
    except ValueError as exc:
        raise UserError(str(exc)) from None


def simulate_network(net: IntNetwork, x: np.ndarray, labels=None, *, backend: str = "both",
                     tag: str = "fixed_pt", model: str = "", model_sha256: str = "",
                     progress: bool = True, lava_batch: int | str | None = None,
                     device: str = "cpu", input_scale: dict | None = None,
                     fidelity_of: str | os.PathLike | None = None,
                     reset: str | None = None, refractory: int | None = None, input_mode: str | None = None,
                     reset_interval: int | None = None,
                     reset_offset: int = 0) -> tuple[dict, dict[str, Measurement]]:
    """Quantize x, run the chosen back ends, return (traffic dict, measurements by back end).

    ``input_mode``: INPUT_MODES (None: "transform" for a network driven through a bias, else
    "current"). ``reset_interval`` / ``reset_offset``: one long stream per sample, every state
    zeroed every N steps (lava-dl's reset_interval; ``core.intnet.reset_steps``).

    ``lava_batch``: samples side by side in the one compiled Lava network (None or "auto":
    chosen from the model's size and the memory); checked before any back end starts.
    ``device``: where the reference executor computes (cpu, cuda, cuda:N); Lava runs on the CPU.
    ``input_scale``: where the scale came from (traffic.json's ``input_scale`` block);
    ``fidelity_of``: the .nir whose float graph to run beside the integers (traffic's ``fidelity``),
    with ``reset`` and ``refractory`` where its file cannot state them.
    """
    if backend not in BACKENDS:
        raise UserError(f"--backend {backend}: expected one of {', '.join(BACKENDS)}")
    mode = input_mode_of(net, input_mode)
    resets = dict(zip(("reset_interval", "reset_offset"), check_reset_option(reset_interval, reset_offset)))
    if backend in ("reference", "both"):
        from lmu2neuro.training.distributed import resolve_device

        device = str(resolve_device(device))  # --device cuda without a GPU: one line, before any work
    lanes = None
    if backend in ("lava", "both"):
        from converters.lava.plan import plan_lanes

        lanes = plan_lanes(net, len(x), int(np.shape(x)[1]), lava_batch)
    x_int = input_values(net, x, mode)
    runs: dict[str, Measurement] = {}
    if backend in ("reference", "both"):
        runs["reference"] = run_reference(net, x_int, progress=progress, device=device, **resets)
    if backend in ("lava", "both"):
        from converters.lava.builder import run_lava

        runs["lava"] = run_lava(net, x_int, tag=tag, progress=progress, lanes=lanes, **resets)
    main = runs.get("lava") or runs["reference"]
    agree = agreement(runs["lava"], runs["reference"]) if backend == "both" else None
    timing = {name: m.timing for name, m in runs.items()}
    if backend == "both" and runs["reference"].timing.get("wall_s"):
        timing["reference_speedup_over_lava"] = runs["lava"].timing["wall_s"] / runs["reference"].timing["wall_s"]
    fidelity = (float_fidelity(fidelity_of, net, x, main, labels, reset, refractory) if fidelity_of is not None
                else None)
    traffic = build_traffic(net, x_int, main, model=model, model_sha256=model_sha256, labels=labels,
                            backend=backend, extra_agreement=agree, dt=net.dt, timing=timing,
                            input_scale=None if mode != "current" else input_scale, fidelity=fidelity)
    traffic["input_mode"] = {"mode": mode, **resets}
    if net.bias_input is not None:
        traffic["input_mode"].update(target=net.bias_input.target, transform_weight=net.bias_input.weight,
                                     transform_bias=net.bias_input.bias)
    return traffic, runs


def simulate_file(model: str | os.PathLike, *, dataset: str | None = None, input_file=None, data_root=None,
                  samples: int | None = None, backend: str = "both", tag: str = "fixed_pt", dt: float | None = None,
                  progress: bool = False, lava_batch: int | str | None = None,
                  device: str = "cpu", input_scale: float | None = None, labels_file=None,
                  fidelity: bool = True, reset: str | None = None,
                  refractory: int | None = None, input_mode: str | None = None, reset_interval: int | None = None,
                  reset_offset: int = 0) -> tuple[dict, dict[str, Measurement]]:
    """Read a .nir file (ours exactly; another tool's quantized at dt), take inputs from a dataset's
    test split or an .npy file, run the back ends; returns (traffic dict, measurements by back end).

    Another tool's graph is quantized with ``input_scale``, by default the scale CALIBRATION_RULE gives,
    and (``fidelity``) its float graph is run beside the integers on the same samples. Our own files
    carry their scale, so ``input_scale`` is refused for them. ``labels_file``: an .npy of class
    indices for the ``input_file`` samples, giving accuracy. ``reset``: "zero" or "subtract" for
    every spiking population of another tool's graph (NIR cannot state a subtract reset: snnTorch
    writes v_reset = 0 for both). ``refractory``: steps every spiking population of another tool's
    graph is held after a spike (NIR has no field for it; snnTorch's RLeaky with
    reset_mechanism="zero" discards the step after a spike: 1). Files that state their reset (ours)
    or refractory period (ours, netx) accept the same value and refuse another (the reader's rule).
    ``input_mode``, ``reset_interval``, ``reset_offset``: as ``simulate_network`` (docs/netx.md)."""
    from converters.network_file import exact_integers, read_network_file
    from lmu2neuro.core.guards import sha256_of

    if samples is not None and samples < 1:
        raise UserError(f"--samples {samples}: expected at least 1")
    from converters.lava.plan import check_lanes_value

    check_lanes_value(lava_batch)  # a bad value is refused before the model is even read
    from lmu2neuro.training.distributed import resolve_device

    resolve_device(device)
    if input_scale is not None and not (math.isfinite(input_scale) and input_scale > 0):
        raise UserError(f"--input-scale {input_scale}: expected a positive, finite number")
    if labels_file is not None and input_file is None:
        raise UserError(f"--labels {labels_file}: labels go with --input FILE.npy (a dataset brings its own)")
    ours = exact_integers(model)
    # a reset or refractory period that contradicts what the file states is refused by the reader
    if ours and input_scale is not None:
        raise UserError(f"{model}: --input-scale {input_scale} given, but this file carries its own input scale, "
                        "for which its Loihi integers were computed (expected no --input-scale)")
    net = read_network_file(model, dt=dt, input_scale=input_scale if input_scale is not None else 1.0, reset=reset,
                            refractory=refractory)
    if input_mode is not None and input_mode not in INPUT_MODES:
        raise UserError(f"--input-mode {input_mode}: expected one of {', '.join(INPUT_MODES)}")
    check_reset_option(reset_interval, reset_offset)
    mode = input_mode_of(net, input_mode, f"{model}: ")
    x, y = load_inputs(net, dataset=dataset, data_root=data_root, samples=samples, input_file=input_file)
    if mode != "current":  # the mantissas are checked (13 bits) before any back end starts
        input_values(net, x, mode, f"{input_file or dataset}: ")
    if labels_file is not None:
        y = load_labels(labels_file, len(x), _file_samples(input_file))
    if ours:
        scale = {"value": float(net.input_scale), "source": "model file"}
    elif input_scale is not None:
        scale = {"value": float(input_scale), "source": "--input-scale"}
    else:
        cal = (load_inputs(net, input_file=input_file)[0] if input_file is not None else
               load_inputs(net, dataset=dataset, data_root=data_root, samples=fx.CALIBRATION_SAMPLES, split="train")[0])
        value = fx.calibrated_input_scale(cal, what=f"{model}: inputs to calibrate the input scale from "
                                                    f"({CALIBRATION_RULE}; --input-scale sets one)")
        # the scale enters the lowered weights (input weights / scale), so the graph is lowered again
        net = read_network_file(model, dt=dt, input_scale=value, reset=reset, refractory=refractory)
        scale = {"value": value, "source": "calibrated", "rule": CALIBRATION_RULE,
                 "calibration_samples": int(len(cal)), "max_abs_input": float(np.max(np.abs(cal)))}
    traffic, runs = simulate_network(net, x, y, backend=backend, tag=tag, model=str(model),
                                     model_sha256=sha256_of(model), progress=progress, lava_batch=lava_batch,
                                     device=device, input_scale=scale,
                                     fidelity_of=model if (fidelity and not ours) else None, reset=reset,
                                     refractory=refractory, input_mode=mode, reset_interval=reset_interval,
                                     reset_offset=reset_offset)
    # which samples the accuracy (and the fidelity block) is on, in words the report prints
    traffic["inputs"] = {"source": (f"the first {len(x)} of dataset {dataset}'s test split" if input_file is None
                                    else f"the first {len(x)} of {input_file}")}
    if traffic.get("fidelity"):
        traffic["fidelity"]["on"] = traffic["inputs"]["source"]
    return traffic, runs


def _file_samples(input_file) -> int:
    # the labels must match the whole input file, not only the --samples kept from it
    return int(np.load(input_file, mmap_mode="r", allow_pickle=False).shape[0])
