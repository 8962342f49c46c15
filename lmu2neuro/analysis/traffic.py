"""The traffic contract: traffic.json as `lmu2neuro simulate` builds it and every reader reads it.

``build_traffic`` writes it from a ``Measurement``; ``load_traffic`` / ``validate_traffic`` read it
back through one pydantic schema (``Traffic``), and ``check_traffic_matches`` ties it to the
network it was recorded from. docs/CONTRACTS.md describes the fields.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lmu2neuro.core.documents import excerpt, load_json
from lmu2neuro.core.errors import UserError
from lmu2neuro.core.intnet import IntNetwork
from lmu2neuro.core.measurement import Measurement, readout_out_of_range

SCHEMA = "lmu2neuro.traffic/1"


def build_traffic(net: IntNetwork, x_int: np.ndarray, m: Measurement, *, model: str, model_sha256: str,
                  labels=None, backend: str | None = None, extra_agreement: dict | None = None,
                  dt: float | None = None, timing: dict | None = None, input_scale: dict | None = None,
                  fidelity: dict | None = None) -> dict:
    """The traffic.json dict (docs/CONTRACTS.md) for inputs x_int (samples, T, input_size)."""
    x = np.asarray(x_int)
    samples, steps = x.shape[0], x.shape[1]
    nonzero_in = np.count_nonzero(x, axis=(0, 1)).astype(np.int64)  # per input channel
    layers = [{
        "name": net.input_name, "kind": "input", "neurons": net.input_size, "graded": True,
        # every value 0 or 1: spikes, whose synaptic ops NeuroBench counts as ACs
        "binary": bool(np.isin(x, (0, 1)).all()),
        # every step's input identical: a static frame presented for T steps (one ANN pass)
        "static": bool(steps > 0 and (x == x[:, :1]).all()),
        "nonzero_inputs": int(nonzero_in.sum()),
        "nonzero_inputs_per_step": np.count_nonzero(x, axis=(0, 2)).astype(int).tolist(),
    }]
    for pop in net.populations:
        spikes = int(m.spike_counts[pop.name].sum())
        layers.append({
            "name": pop.name, "kind": "readout" if pop.readout else "lif", "neurons": pop.size,
            "spikes": spikes, "rate": spikes / max(pop.size * steps * samples, 1),
            "spike_counts": m.spike_counts[pop.name].astype(int).tolist(),
            "spikes_per_step": m.step_spikes[pop.name].astype(int).tolist(),
            "wrapped_current": int(m.wrapped.get(pop.name, 0)),
            "peak_current": int(m.peak_current.get(pop.name, 0)),
        })
        if pop.readout:
            layers[-1]["out_of_range_samples"] = readout_out_of_range(m, pop.name)
    projections = []
    for proj in net.projections:
        fo = proj.fan_out()
        graded = net.is_graded(proj)
        src_counts = nonzero_in if proj.source == net.input_name else m.spike_counts[proj.source]  # messages
        projections.append({
            "name": proj.name, "source": proj.source, "target": proj.target, "taps": proj.taps,
            "graded": graded, "weights": proj.stored_weights(),
            "nonzero_weights": int(np.count_nonzero(proj.weights)), "weight_bits": 8,
            "fan_out": fo.tolist(), "synaptic_events": int((src_counts * fo).sum()),
        })
    preds = m.predictions
    traffic = {
        "schema": SCHEMA, "model": model, "model_sha256": model_sha256,
        "backend": backend or m.backend, "samples": samples, "timesteps": steps, "dt": dt,
        "layers": layers, "projections": projections,
        "predictions": preds.astype(int).tolist(),
        "labels": None, "accuracy": None, "accuracy_by_frame": None,
        "scores": m.scores.astype(int).tolist() if m.scores.dtype.kind in "iu" else m.scores.tolist(),
        "raster": {"sample": 0, "layers": {
            name: [[int(t), int(i)] for t, i in zip(*np.nonzero(r))] for name, r in m.raster0.items()
            if not net.population(name).readout}},
        "agreement": extra_agreement,
        "timing": timing or {},
        "input_scale": input_scale,  # where the scale came from, when the caller knows
        "fidelity": fidelity,  # another tool's float graph beside the integers, when run
    }
    if labels is not None:
        y = np.asarray(labels)
        traffic["labels"] = y.astype(int).tolist()
        traffic["accuracy"] = float((preds == y).mean())
        by_frame = m.readout_trace.argmax(axis=2) == y[:, None]
        traffic["accuracy_by_frame"] = by_frame.mean(axis=0).tolist()
    validate_traffic(traffic, "build_traffic")  # what we write is what every reader accepts
    return traffic


# -- reading it back: one schema ------------------------------------------------------------------
Count = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


class _Open(BaseModel):
    # Files may carry fields a later version adds; every field build_traffic writes is declared here
    # (a test checks it), so the schema is the contract.
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class Layer(_Open):
    name: str
    kind: Literal["input", "lif", "readout"] | None = None
    neurons: int = Field(ge=0)
    graded: bool | None = None
    binary: bool | None = None  # input layer: every value 0 or 1 (optional; absent = not known)
    static: bool | None = None  # input layer: every step's input identical (optional; absent = not known)
    nonzero_inputs: Count | None = None
    nonzero_inputs_per_step: list[Count] | None = None
    spikes: Count | None = None
    rate: Fraction | None = None
    spike_counts: list[Count] | None = None
    spikes_per_step: list[Count] | None = None
    wrapped_current: int | None = Field(default=None, ge=0)
    peak_current: int | None = Field(default=None, ge=0)
    out_of_range_samples: int | None = Field(default=None, ge=0)


class Projection(_Open):
    name: str
    source: str
    target: str
    taps: int | None = Field(default=None, ge=1)
    graded: bool | None = None
    weights: int | None = Field(default=None, ge=0)
    nonzero_weights: int | None = Field(default=None, ge=0)
    weight_bits: int | None = Field(default=None, ge=1, le=32)
    fan_out: list[int] | None = None
    synaptic_events: Count | None = None


class InputScale(_Open):
    value: float = Field(gt=0, allow_inf_nan=False)  # float x -> clip(round(x * value), -128, 127)
    source: Literal["model file", "--input-scale", "calibrated"]
    rule: str | None = None  # how a calibrated scale was chosen
    max_abs_input: Count | None = None


class FidelityLayer(_Open):
    int_spikes: Count
    float_spikes: Count
    spike_ratio: Count | None = None  # integer / float spikes; None when the float layer is silent


class Fidelity(_Open):
    # another tool's float graph beside the deployed integer network, on the same samples
    source: str
    samples: int = Field(ge=1)
    prediction_agreement: Fraction
    warn_below: Fraction
    float_predictions: list[int]
    float_accuracy: Fraction | None = None
    int_accuracy: Fraction | None = None
    layers: dict[str, FidelityLayer]


class FidelityFile(Fidelity):
    # the export's MODEL.fidelity.json as report reads it: the predictions are not shown
    float_predictions: list[int] | None = None


class Raster(_Open):
    # one sample's spikes as [time step, neuron] pairs per layer (the report draws them)
    sample: int = Field(default=0, ge=0)
    layers: dict[str, list[tuple[int, int]]] = Field(default_factory=dict)


def _check_lengths(t: "Traffic") -> None:
    """Lists whose length the report relies on: one entry per sample, step or neuron."""
    from lmu2neuro.core.guards import DT_MAX, DT_MIN, max_elements

    if t.timesteps > max_elements():
        raise ValueError(f"'timesteps' of at most {max_elements():,} (the element limit; got {t.timesteps:,})")
    if t.dt is not None and not DT_MIN <= t.dt <= DT_MAX:
        raise ValueError(f"'dt' between {DT_MIN:g} and {DT_MAX:g} seconds (got {t.dt:.4g})")
    for name in ("predictions", "labels", "scores"):
        v = getattr(t, name)
        if v is not None and len(v) != t.samples:
            raise ValueError(f"'{name}' of one entry per sample ({t.samples}), got {len(v)}")
    if t.scores and len({len(row) for row in t.scores}) > 1:
        raise ValueError("'scores' rows of one length (one score per class)")
    if t.labels is not None and any(v < 0 for v in t.labels):
        raise ValueError("'labels' of class indices >= 0")
    if t.accuracy_by_frame is not None and len(t.accuracy_by_frame) != t.timesteps:
        raise ValueError(f"'accuracy_by_frame' of one fraction per step ({t.timesteps}), got {len(t.accuracy_by_frame)}")
    for lay in t.layers:
        for key in ("spikes_per_step", "nonzero_inputs_per_step"):
            v = getattr(lay, key)
            if v is not None and len(v) != t.timesteps:
                raise ValueError(f"'layers.{lay.name[:40]}.{key}' of one count per step ({t.timesteps}), got {len(v)}")
        if lay.spike_counts is not None and len(lay.spike_counts) != lay.neurons:
            raise ValueError(f"'layers.{lay.name[:40]}.spike_counts' of one count per neuron ({lay.neurons}), "
                             f"got {len(lay.spike_counts)}")
    if t.raster is not None:
        sizes = {lay.name: lay.neurons for lay in t.layers}
        for name, events in t.raster.layers.items():
            n = sizes.get(name)
            for step, neuron in events:
                if not (0 <= step < t.timesteps and 0 <= neuron < (n if n is not None else neuron + 1)):
                    raise ValueError(f"'raster.layers.{name[:40]}' events [step, neuron] within {t.timesteps} steps "
                                     f"and the layer's neurons, got [{step}, {neuron}]")


class Traffic(_Open):
    schema_: Literal["lmu2neuro.traffic/1"] = Field(alias="schema")  # == SCHEMA
    model: str | None = None
    model_sha256: str | None = None
    backend: str | None = None
    samples: int = Field(ge=1)
    timesteps: int = Field(ge=1)
    dt: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    layers: list[Layer]
    projections: list[Projection]
    predictions: list[int] | None = None
    labels: list[int] | None = None
    accuracy: Fraction | None = None
    accuracy_by_frame: list[Fraction] | None = None
    scores: list[list[Annotated[float, Field(allow_inf_nan=False)]]] | None = None
    raster: Raster | None = None
    agreement: dict | None = None
    timing: dict | None = None
    input_scale: InputScale | None = None
    fidelity: Fidelity | None = None

    @model_validator(mode="after")
    def _lengths(self):
        _check_lengths(self)
        return self


def _where(err: dict, data: dict) -> str:
    # layers.3.spike_counts.0 -> layers.block0.u.spike_counts: a layer by its name, not its index
    loc = list(err["loc"])
    if len(loc) >= 2 and loc[0] in ("layers", "projections") and isinstance(loc[1], int):
        try:
            loc[1] = data[loc[0]][loc[1]]["name"]
        except (KeyError, IndexError, TypeError):
            pass
    return ".".join(str(x)[:40] for x in loc) or "(top level)"


def validate_traffic(data: dict, source: str) -> None:
    """UserError naming the first bad field (and how many more) unless ``data`` holds what the report reads."""
    validate_with(Traffic, data, source)


def validate_with(schema: type[BaseModel], data, source: str) -> None:
    """``data`` validated by ``schema`` (Traffic, or a part of it such as Fidelity for the export's
    .fidelity.json); UserError naming the first bad field (and how many more)."""
    try:
        schema.model_validate(data)
    except ValidationError as exc:
        errs = exc.errors()
        err = errs[0]
        more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
        shown = "missing" if err.get("type") == "missing" else f"got {excerpt(err.get('input'), 60)}"
        expected = " ".join(err["msg"].removeprefix("Input should be ").removeprefix("Value error, ").split())[:200]
        if isinstance(err.get("input"), dict) and err.get("type") == "value_error":  # a check across fields
            raise UserError(f"{source}: field '{_where(err, data)}': expected {expected}{more}") from None
        if expected.startswith(("greater", "less")):
            expected = "a value " + expected
        raise UserError(f"{source}: field '{_where(err, data)}': {shown}, expected {expected}{more}") from None


def load_traffic(path: str | os.PathLike) -> dict:
    """Read traffic.json; one-line UserError for a missing file, bad JSON or wrong schema."""
    path = Path(path)
    # a regular file, bounded in size, nesting depth and number length, before the schema
    data = load_json(path, "traffic file", "a traffic.json written by `lmu2neuro simulate`")
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        got = excerpt(data.get("schema")) if isinstance(data, dict) else type(data).__name__
        raise UserError(f"{path}: field 'schema' is {got}, expected '{SCHEMA}' (written by `lmu2neuro simulate`)")
    validate_traffic(data, str(path))
    # a null field of a layer or projection is that field absent: the readers' defaults then apply
    for group in ("layers", "projections"):
        for entry in data[group]:
            for key in [k for k, v in entry.items() if v is None]:
                del entry[key]
    return data


def required_field(obj: dict, key: str, where: str, source: str):
    if key not in obj:
        raise UserError(f"{source}: field '{where}.{key}' missing")
    return obj[key]


def check_traffic_matches(traffic: dict, net: IntNetwork, source: str = "traffic") -> None:
    """Raise UserError when the traffic's layers and projections are not those of `net`."""
    if traffic.get("schema") != SCHEMA:
        raise UserError(f"{source}: field 'schema' is {traffic.get('schema')!r}, expected '{SCHEMA}'")
    layers = {lay.get("name"): lay for lay in required_field(traffic, "layers", "traffic", source)}
    for pop in net.populations:
        if pop.name not in layers:
            raise UserError(f"{source}: layer '{pop.name}' of the model is missing from field 'layers' "
                            "(traffic from a different model?)")
        n = layers[pop.name].get("neurons")
        if n != pop.size:
            raise UserError(f"{source}: field 'layers.{pop.name}.neurons' is {n}, the model has {pop.size} "
                            "(traffic from a different model?)")
    extra = set(layers) - {p.name for p in net.populations} - {net.input_name}
    if extra:
        raise UserError(f"{source}: layers {sorted(extra)} are not in the model (traffic from a different model?)")
    projs = {p.get("name"): p for p in required_field(traffic, "projections", "traffic", source)}
    for proj in net.projections:
        tp = projs.get(proj.name)
        if tp is None:
            raise UserError(f"{source}: projection '{proj.name}' of the model is missing from field 'projections' "
                            "(traffic from a different model?)")
        if (tp.get("source"), tp.get("target")) != (proj.source, proj.target):
            raise UserError(f"{source}: projection '{proj.name}' connects {tp.get('source')}->{tp.get('target')}, "
                            f"the model {proj.source}->{proj.target} (traffic from a different model?)")
        if "nonzero_weights" in tp and int(tp["nonzero_weights"]) != int(np.count_nonzero(proj.weights)):
            raise UserError(f"{source}: field 'projections.{proj.name}.nonzero_weights' is {tp['nonzero_weights']}, "
                            f"the model has {int(np.count_nonzero(proj.weights))} (traffic from a different model?)")
