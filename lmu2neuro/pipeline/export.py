"""Checkpoint -> deployed integer network -> a NIR or netx file."""

from __future__ import annotations

import os

from lmu2neuro.core.errors import UserError
from lmu2neuro.core.intnet import IntNetwork, IntNetworkError

FORMATS = ("nir", "netx", "sanafe")


def network_from_checkpoint(path: str | os.PathLike) -> IntNetwork:
    """Load a checkpoint written by `lmu2neuro train` (weights_only) and lower it to Loihi integers.

    A checkpoint of the user's own model (`train --model FILE.py:FUNCTION`) imports that file again
    (training.user_model.rebuild); a changed file (sha256) is a UserError naming it."""
    from lmu2neuro.deploy.lowering import lower
    from lmu2neuro.training.checkpoint import model_from_checkpoint

    model, _ = model_from_checkpoint(path)
    try:
        return lower(model)
    except IntNetworkError as exc:
        # a weight, bias or threshold beyond Loihi's ranges: refused with the layer, value and
        # limit, never clipped or wrapped into a network that computes something else
        raise UserError(f"{path}: cannot be deployed in Loihi's fixed-point ranges: {exc}") from None
    except UserError as exc:  # e.g. the ANN LMUFormer, which has no spiking form to lower
        raise UserError(f"{path}: {exc}") from None


def export(checkpoint: str | os.PathLike, output: str | os.PathLike, format: str = "nir",
           dt: float | None = None) -> IntNetwork:
    """Write a trained checkpoint's deployed network to `output` as NIR (any NIR tool reads it; the
    exact integers ride along as metadata), lava-dl netx HDF5 or a SANA-FE network YAML; returns the
    IntNetwork written."""
    if format not in FORMATS:
        raise UserError(f"format {format!r}: expected one of {', '.join(FORMATS)}")
    net = network_from_checkpoint(checkpoint)
    _write_network(net, output, format, dt)
    return net


def _write_network(net: IntNetwork, output, format: str, dt: float | None) -> None:
    if format == "nir":
        from converters.nir.export import export_nir

        export_nir(net, output, dt=dt)
    elif format == "netx":
        from converters.netx.export import export_netx

        export_netx(net, output)
    else:
        # laid out on Loihi 1 cores as lmu2neuro's report maps it, so SANA-FE's figures compare with ours
        from converters.sanafe.export import export_sanafe
        from lmu2neuro.analysis.chip_mapping import map_to_chip
        from lmu2neuro.analysis.profiles import load_profile

        prof = load_profile("loihi1")
        export_sanafe(net, output, core_of=map_to_chip(net, prof).core_of,
                      cores_per_tile=int(prof.chip.cores_per_tile.value))


# A plain snnTorch model quantized after training (export_snntorch)
FORWARD_CHECK_SAMPLES = 8  # training samples the user's forward runs on to check the assumed chain


def export_snntorch(model_spec: str, checkpoint, output, *, dataset: str, data_root=None, samples: int | None = None,
                    format: str = "nir", dt: float | None = None, report=None, progress: bool = False) -> dict:
    """A plain snnTorch model (``FILE.py:FUNCTION`` returning it, ``checkpoint`` its state_dict) as the
    deployed integer network: converted to ``models.layers`` with the same float parameters
    (``deploy.snntorch.convert_snntorch``), input scale calibrated from the dataset's training
    inputs, quantized after training; writes ``output`` and the fidelity report (float snnTorch model
    vs deployed integers on the test split) to ``report`` (default OUTPUT's stem + .fidelity.json).
    Returns the report. The model file is code the user chose to run."""
    import torch

    from lmu2neuro.core import fixed_point as fx
    from lmu2neuro.core.atomic import write_json
    from lmu2neuro.datasets import get_dataset
    from lmu2neuro.deploy import snntorch as conv
    from lmu2neuro.deploy.lowering import lower
    from lmu2neuro.models.trace import LoihiModel
    from lmu2neuro.pipeline.exactness import layer_exactness, prediction_fidelity
    from lmu2neuro.training import user_model as um

    if format not in FORMATS:
        raise UserError(f"format {format!r}: expected one of {', '.join(FORMATS)}")
    if samples is not None and samples < 1:
        raise UserError(f"--samples {samples}: expected at least 1")
    report = check_report_path(report, output)
    path, func = um.parse_spec(model_spec, um.HOW_PLAIN)
    data = get_dataset(dataset, root=data_root)
    facts = um.data_facts(data)
    module, digest = um.plain_model(path, func, checkpoint, facts)
    ours, records = conv.convert_snntorch(module)
    frame = facts["frame_shape"]

    def stack(part, n):
        n = min(n, len(part))
        xs, ys = zip(*(part[i] for i in range(n)))
        return torch.stack([torch.as_tensor(v, dtype=torch.float32) for v in xs]), torch.as_tensor(ys)

    x_cal, _ = stack(data.train, fx.CALIBRATION_SAMPLES)
    # the chain the conversion assumes, checked against the user's own forward before any other work
    conv.run_forward(module, x_cal[:FORWARD_CHECK_SAMPLES].reshape(-1, x_cal.shape[1], *frame), path)
    try:
        model = LoihiModel(ours, frame, max_len=facts["timesteps"]).eval()
    except UserError as exc:
        raise UserError(f"{path}: {func}(): {exc}") from None

    scale = model.calibrate(x_cal)
    try:
        net = lower(model)
    except IntNetworkError as exc:
        raise UserError(f"{checkpoint}: cannot be deployed in Loihi's fixed-point ranges: {exc}") from None
    if format == "netx":  # known once lowered: refuse before the fidelity run, not after it
        from converters.netx.export import netx_problems

        problems = netx_problems(net)
        if problems:
            raise UserError(f"{output}: cannot write netx: " + "; ".join(problems))
    net.meta["source"] = {"snntorch_model": str(path), "function": func, "sha256": digest,
                          "checkpoint": str(checkpoint), "quantized": "after training"}
    exactness = layer_exactness(module, model, net, x_cal.reshape(-1, x_cal.shape[1], *frame), path, records)

    x, y = stack(data.test, samples or len(data.test))
    fidelity = prediction_fidelity(module, model, net, x, y.numpy(), path, frame, records, progress)
    rep = {
        "source": f"{path}:{func}() with {checkpoint}, run in float32 by its own forward (snnTorch's stepping, one "
                  "call per time step)",
        **fidelity,
        "dataset": dataset, "split": "test",
        "input_scale": {"value": float(scale), "source": "calibrated",
                        "rule": fx.CALIBRATION_RULE, "calibration_samples": int(len(x_cal)),
                        "max_abs_input": float(x_cal.abs().max())},
        "chain": ("nn.Sequential: its layers in order" if isinstance(module, torch.nn.Sequential) else
                  f"{type(module).__name__}: its child modules in the order they are defined, each on the previous "
                  "one's output (checked by forward hooks on every step its forward ran here)"),
        "exactness": exactness,
        "conversion": records,
        "populations": {p.name: {"reset": p.reset, "refractory": p.refractory, "du": p.du, "dv": p.dv, "vth": p.vth}
                        for p in net.populations},
    }
    _write_network(net, output, format, dt)
    write_json(report, rep)
    rep["report"] = str(report)
    rep["network"] = net
    return rep


def _default_report(output):
    from pathlib import Path

    out = Path(output)
    return out.with_name(out.stem + ".fidelity.json")


def check_report_path(report, output):
    """The fidelity report's path (given, else OUTPUT's stem + .fidelity.json), checked before any
    work: not a folder, not the network file itself (one would overwrite the other), a place where a
    file can be written."""
    from pathlib import Path

    path = Path(report) if report is not None else _default_report(output)
    flag = "--report" if report is not None else "the fidelity report"
    if path.is_dir():
        raise UserError(f"{flag} {path}: is a folder; expected a .json file to write")
    if path.resolve() == Path(output).resolve():
        raise UserError(f"{flag} {path}: the same file as -o {output}; expected another path for the report")
    from lmu2neuro.core.outdir import check_output_file

    check_output_file(path, flag)  # a report that cannot be written fails now, not after the network file
    return path
