"""Exactness of a converted snnTorch model, measured layer by layer (``export --model``).

A conversion is exact only where it is measured to be: the converted network without
quantization (``models.quantize.run_qat(quantized=False)``, the deployed network's structure in
float, every bias, reset and self connection where the integer network has it) runs beside
snnTorch's own forward on the same inputs, both in float64. A neuron layer is exact when its spikes
agree on every step of every sample and its membrane agrees within ``MEMBRANE_TOL`` of the
threshold on every step where neither spikes (a spiking step's membrane is before the reset in
snnTorch's delayed convention and after it in Loihi's). The deployed integers (``core.executor``)
on the same inputs give the agreement after quantization, so a loss is named by its measured
cause: the conversion (the float conversion already disagrees), the quantization (the float
conversion agrees and the integers do not), or both.
"""

from __future__ import annotations

import copy

import numpy as np
import snntorch
import torch
from tqdm import tqdm

from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core.executor import execute
from lmu2neuro.core.intnet import IntNetwork
from lmu2neuro.deploy.snntorch import run_forward, snntorch_layers
from lmu2neuro.models.quantize import run_qat
from lmu2neuro.pipeline.simulate import FIDELITY_WARN_BELOW

# Both sides run in float64, but the converted layers store their own parameters in float32 (a reset
# self connection -(1 - beta) threshold is rounded to ~6e-8 of itself), seen here as ~1e-8 thresholds;
# a semantic difference (a bias in the voltage instead of the current, a reset a step apart) is ~1e-2
# thresholds and more
MEMBRANE_TOL = 1e-6
CAUSES = {
    "conversion": "the float conversion already disagrees with snnTorch: the layers named inexact compute something "
                  "else on Loihi (see their notes); retraining will not fix it",
    "quantization": "the float conversion agrees with snnTorch and the deployed integers do not: quantizing after "
                    "training loses this model; retrain it with lmu2neuro.models.layers (QAT)",
    "both": "the float conversion already disagrees with snnTorch (the layers named inexact), and quantization loses "
            "more: fix or replace those layers, then retrain with lmu2neuro.models.layers (QAT)",
}


@torch.no_grad()
def float64(module: torch.nn.Module) -> torch.nn.Module:
    """A float64 copy of ``module`` in eval mode (the user's model and ours are left as they are)."""
    return copy.deepcopy(module).double().eval()


def float_conversion(twin, x: torch.Tensor, spikes: dict | None = None, voltages: dict | None = None,
                     sources: dict | None = None) -> torch.Tensor:
    """The converted model ``twin`` (a ``float64`` copy) without quantization -> readout scores (B, C)
    (argmax = the prediction the deployed readout makes); ``spikes`` / ``voltages`` per population
    (B, T, n); ``sources``: given spikes of populations, fed to the ones after them (``run_qat``)."""
    x = x.double().flatten(2)
    frames = run_qat(twin.graph(), x, float(twin.input_scale), twin.max_len, quantized=False, spikes=spikes,
                     voltages=voltages, sources=sources)
    # a spike-count readout sums spikes through float scale factors (8.000000000000002 against
    # 7.999999999999999): rounded, equal counts tie as the integers' do, and argmax takes the first
    return torch.round(frames.sum(1) * 1e9) / 1e9


@torch.no_grad()
def layer_exactness(module: torch.nn.Module, model, net: IntNetwork, x: torch.Tensor, model_file,
                    records: list[dict], batch: int = 128) -> dict:
    """Each converted neuron layer measured on ``x`` (B, T, *frame), ``batch`` samples at a time:
    snnTorch's forward vs the float conversion vs the deployed integers (free running: the agreement a user gets). Each layer of the float conversion
    is fed snnTorch's spikes of the layers before it, so a difference is its own. Sets every record's
    ``exact`` to what was measured (a linear layer takes the result of the neuron layer it feeds)
    -> the report's ``exactness``."""
    ref, twin = float64(module), float64(model)
    pops = {p.meta.get("layer"): p for p in net.populations if not p.readout and not p.helper}
    tally: dict[str, _Tally] = {}
    for first in range(0, x.shape[0], batch):
        xb = x[first:first + batch]
        theirs_v: dict[str, torch.Tensor] = {}
        _, theirs = run_forward(ref, xb.double(), model_file, membranes=theirs_v, cast=True)
        spk, volt = {}, {}
        # each layer on snnTorch's own spikes of the layer before: a difference is this layer's, not inherited
        given = {pop.name: theirs[r["path"]].reshape(xb.shape[0], xb.shape[1], -1)
                 for r in records if (pop := pops.get(r.get("as"))) is not None and r["path"] in theirs}
        float_conversion(twin, xb, spk, volt, given)
        deployed = execute(net, fx.quantize_input(xb.reshape(xb.shape[0], xb.shape[1], -1).double(), net.input_scale))
        for rec in records:
            pop = pops.get(rec.get("as"))
            if pop is not None and rec["path"] in theirs:
                tally.setdefault(rec["path"], _Tally(pop.name, float(rec.get("threshold", 1.0)))).add(
                    theirs[rec["path"]], theirs_v.get(rec["path"]), spk[pop.name], volt[pop.name],
                    np.asarray(deployed.spikes[pop.name]))
    layers, feeding = {}, []
    for rec in records:
        feeding.append(rec)
        if rec["path"] not in tally:
            continue
        row = layers[rec["path"]] = tally[rec["path"]].row(rec)
        for r in feeding:  # the linear layers before it are measured through it
            r["exact"] = row["exact"]
            if r is not rec:
                r["measured_at"] = rec["path"]
        feeding = []
    for r in feeding:  # after the last neuron layer: the spike-count readout, checked by the predictions
        r.setdefault("exact", True)
    return {"samples": int(x.shape[0]), "steps": int(x.shape[1]), "inputs": "the calibration inputs",
            "membrane_tolerance": f"{MEMBRANE_TOL:g} x threshold, on steps where neither spikes",
            "rule": "exact = spikes equal on every step of every sample and membrane within tolerance; float "
                    "conversion = the deployed network without quantization, float64; snnTorch run by the "
                    "model's own forward in float64",
            "layers": layers}


class _Tally:
    """One neuron layer's comparison, summed over batches."""

    def __init__(self, population: str, threshold: float):
        self.population, self.theta = population, threshold
        self.n = self.same = self.steps = self.steps_same = 0
        self.spikes = {"snntorch": 0, "float_conversion": 0, "deployed": 0}
        self.same_deployed = 0
        self.err: float | None = None

    def add(self, s_ref, v_ref, s_conv, v_conv, s_int: np.ndarray) -> None:
        s_conv = s_conv.bool()
        s_ref = s_ref.reshape(s_conv.shape).bool()
        same = s_ref == s_conv
        self.n += same.numel()
        self.same += int(same.sum())
        self.steps += same.shape[0] * same.shape[1]
        self.steps_same += int(same.all(-1).sum())
        self.spikes["snntorch"] += int(s_ref.sum())
        self.spikes["float_conversion"] += int(s_conv.sum())
        self.spikes["deployed"] += int(s_int.sum())
        self.same_deployed += int((s_ref.numpy() == s_int).sum())
        if v_ref is not None:
            diff = (v_ref.reshape(v_conv.shape) - v_conv).abs()[~s_ref & ~s_conv]
            err = float(diff.max()) / self.theta if diff.numel() else 0.0
            self.err = err if self.err is None else max(self.err, err)

    def row(self, rec: dict) -> dict:
        """The layer's result; a conversion the converter knows to differ (``rec["exact"]`` False) is
        not exact even where these inputs never show it (a reset rule that no spike exercised)."""
        equal = self.same == self.n and (self.err is None or self.err <= MEMBRANE_TOL)
        exact = equal and rec.get("exact", True) is not False
        row = {"population": self.population, "exact": exact, "measured_equal": equal,
               "spike_agreement": self.same / self.n, "steps_all_equal": self.steps_same / self.steps,
               "membrane_max_error": self.err, "spikes": dict(self.spikes),
               "deployed_spike_agreement": self.same_deployed / self.n}
        if not exact:
            declared = rec.get("exact", True) is False  # the converter's own statement, made before measuring
            row["differs"] = rec["note"] if declared and rec.get("note") else (
                "measured only: no known difference of this conversion explains it; please report it")
            if equal:
                row["differs"] += " (not seen on these inputs: their spikes and membranes are equal)"
        return row


def cause(conversion_agreement: float, quantization_agreement: float, warn_below: float) -> str | None:
    """Which step loses the model's predictions: "conversion" (snnTorch vs the float conversion),
    "quantization" (the float conversion vs the deployed integers), "both", or None."""
    conv, quant = conversion_agreement < warn_below, quantization_agreement < warn_below
    if conv and quant:
        return "both"
    if conv:
        return "conversion"
    if quant:
        return "quantization"
    return None


@torch.no_grad()
def prediction_fidelity(module: torch.nn.Module, model, net: IntNetwork, x: torch.Tensor, y: np.ndarray, model_file,
                        frame, records: list[dict], progress: bool = False, batch: int = 256) -> dict:
    """The user's float model (its own forward, float32), the float conversion and the deployed
    integers on the test inputs ``x`` (B, T, F) with labels ``y``: predictions, accuracies, the two
    agreements and their cause, spike ratios per layer (the fidelity file's fields)."""
    float_out, float_spk, int_scores, int_spk, conv_scores = [], {}, [], {}, []
    twin = float64(model)
    for first in tqdm(range(0, len(x), batch), desc="float vs integer", disable=not progress, leave=False):
        xb = x[first:first + batch]
        out, spk = run_forward(module, xb.reshape(xb.shape[0], xb.shape[1], *frame), model_file)
        float_out.append(out)
        for k, v in spk.items():
            float_spk[k] = float_spk.get(k, 0) + float(v.sum())
        conv_scores.append(float_conversion(twin, xb))
        r = execute(net, fx.quantize_input(xb.reshape(xb.shape[0], xb.shape[1], -1).double(), net.input_scale))
        int_scores.append(r.scores)
        for k, v in r.spikes.items():
            int_spk[k] = int_spk.get(k, 0) + int(v.sum())
    out = torch.cat(float_out)
    spiking_output = isinstance(snntorch_layers(module)[-1][1], snntorch.SpikingNeuron)
    # the integer readout integrates the last layer: its argmax is the argmax of the spike count
    # (a spiking output) or of the mean output (a Linear output), as the float model is read here
    float_pred = (out.sum(1) if spiking_output else out.mean(1)).argmax(1).numpy()
    int_pred = torch.cat(int_scores).argmax(1).numpy()
    conv_pred = torch.cat(conv_scores).argmax(1).numpy()
    agree_conv, agree_quant = float((float_pred == conv_pred).mean()), float((conv_pred == int_pred).mean())
    why = cause(agree_conv, agree_quant, FIDELITY_WARN_BELOW)
    by_ours = {r["as"]: r["path"] for r in records if "as" in r}
    layers = {}
    for pop in net.populations:
        theirs = by_ours.get(pop.meta.get("layer", ""))
        if pop.readout or theirs not in float_spk:
            continue
        f = float_spk[theirs]
        layers[pop.name] = {"layer": theirs, "int_spikes": int_spk[pop.name], "float_spikes": int(f),
                            "spike_ratio": int_spk[pop.name] / f if f else None}
    return {"samples": int(len(x)), "prediction_agreement": float((float_pred == int_pred).mean()),
            "conversion_agreement": agree_conv, "quantization_agreement": agree_quant, "cause": why,
            "advice": CAUSES.get(why), "warn_below": FIDELITY_WARN_BELOW,
            "float_predictions": float_pred.astype(int).tolist(), "float_accuracy": float((float_pred == y).mean()),
            "int_accuracy": float((int_pred == y).mean()), "layers": layers}
