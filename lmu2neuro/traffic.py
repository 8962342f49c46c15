"""Spike traffic: what a run of an IntNetwork measured, and the traffic.json built from it.

Every back end (the Lava run, the reference simulator, the QAT model in integer mode) is
reduced to the same `Measurement`, so agreement is checked on the same numbers: per sample and
population a spike count and an order-free hash of the (step, neuron) spike set, and the
readout's integer voltage after every step.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lmu2neuro import fixed_point as fx
from lmu2neuro.intnet import IntNetwork

SCHEMA = "lmu2neuro.traffic/1"
_HASH_MOD = (1 << 31) - 1


def spike_hash(step: int, neurons: np.ndarray) -> int:
    """Hash of one step's spikes; a sample's fingerprint is the sum over steps mod 2**31 - 1."""
    vals = ((step + 1) * 1_000_003 + np.asarray(neurons, dtype=np.int64) + 1) * 2_654_435_761 % _HASH_MOD
    return int(vals.sum() % _HASH_MOD)


@dataclass
class Measurement:
    backend: str
    spike_counts: dict[str, np.ndarray]  # population -> (n,) totals over samples
    sample_spikes: dict[str, np.ndarray]  # population -> (samples,)
    step_spikes: dict[str, np.ndarray]  # population -> (T,) totals over samples
    fingerprints: dict[str, np.ndarray]  # population -> (samples,)
    wrapped: dict[str, int]  # population -> neuron-steps whose 24-bit current wrapped
    raster0: dict[str, np.ndarray]  # population -> (T, n) bool, sample 0
    readout_trace: np.ndarray  # (samples, T, n_out) readout voltage after each step
    timing: dict = field(default_factory=dict)
    peak_current: dict[str, int] = field(default_factory=dict)  # population -> max |current| before wrap

    @property
    def scores(self) -> np.ndarray:
        return self.readout_trace[:, -1]

    @property
    def predictions(self) -> np.ndarray:
        return self.scores.argmax(axis=1)


def measure_spikes(backend: str, spikes: dict, readout_trace, wrapped: dict | None = None,
                   timing: dict | None = None, peak_current: dict | None = None) -> Measurement:
    """Reduce full spike trains {population: (samples, T, n) bool} to a Measurement."""
    counts, per_sample, per_step, prints, raster = {}, {}, {}, {}, {}
    for name, s in spikes.items():
        s = np.asarray(s, dtype=bool)
        counts[name] = s.sum(axis=(0, 1)).astype(np.int64)
        per_sample[name] = s.sum(axis=(1, 2)).astype(np.int64)
        per_step[name] = s.sum(axis=(0, 2)).astype(np.int64)
        # the sum over steps of spike_hash(t, spiking neurons), mod 2**31 - 1, in one pass
        k, t, i = np.nonzero(s)
        vals = ((t.astype(np.int64) + 1) * 1_000_003 + i + 1) * 2_654_435_761 % _HASH_MOD
        fp = np.zeros(s.shape[0], dtype=np.int64)
        np.add.at(fp, k, vals)
        prints[name] = fp % _HASH_MOD
        raster[name] = s[0] if s.shape[0] else np.zeros(s.shape[1:], dtype=bool)
    return Measurement(backend, counts, per_sample, per_step, prints, dict(wrapped or {}), raster,
                       np.asarray(readout_trace, dtype=np.int64), dict(timing or {}), dict(peak_current or {}))


def agreement(a: Measurement, b: Measurement) -> dict:
    """Fraction of samples with identical spikes in every population / identical predictions."""
    samples = a.readout_trace.shape[0]
    same_spikes = np.ones(samples, dtype=bool)
    first = None
    for name in a.fingerprints:
        eq = (a.fingerprints[name] == b.fingerprints[name]) & (a.sample_spikes[name] == b.sample_spikes[name])
        if first is None and not eq.all():
            k = int(np.flatnonzero(~eq)[0])
            first = {"sample": k, "layer": name, f"{a.backend}_spikes": int(a.sample_spikes[name][k]),
                     f"{b.backend}_spikes": int(b.sample_spikes[name][k])}
        same_spikes &= eq
    same_scores = (a.scores == b.scores).all(axis=1)
    same_pred = a.predictions == b.predictions
    if first is None and not same_scores.all():
        k = int(np.flatnonzero(~same_scores)[0])
        first = {"sample": k, "layer": "readout scores", f"{a.backend}": a.scores[k].tolist(),
                 f"{b.backend}": b.scores[k].tolist()}
    return {
        "between": [a.backend, b.backend],
        "samples": samples,
        "identical_spikes": float(same_spikes.mean()) if samples else 1.0,
        "identical_scores": float(same_scores.mean()) if samples else 1.0,
        "identical_predictions": float(same_pred.mean()) if samples else 1.0,
        "first_mismatch": first,
    }


def readout_out_of_range(m: Measurement, name: str) -> int:
    """Samples whose readout voltage left Loihi's range: it crossed ``vth << 6`` (the neuron fired
    and reset to 0) or was clipped at -(2**23 - 1). Either way the score is no longer the sum the
    model computes."""
    fired = m.sample_spikes[name] > 0
    clipped = (m.readout_trace <= -(fx.STATE_MAX - 1)).any(axis=(1, 2))
    return int(np.count_nonzero(fired | clipped))


def fan_out(weights: np.ndarray) -> np.ndarray:
    """Per source neuron: nonzero synapses over all taps and targets."""
    return np.count_nonzero(np.asarray(weights), axis=(0, 1)).astype(np.int64)


def build_traffic(net: IntNetwork, x_int: np.ndarray, m: Measurement, *, model: str, model_sha256: str,
                  labels=None, backend: str | None = None, extra_agreement: dict | None = None,
                  dt: float | None = None, timing: dict | None = None) -> dict:
    """The traffic.json dict (docs/CONTRACTS.md) for inputs x_int (samples, T, input_size)."""
    x = np.asarray(x_int)
    samples, steps = x.shape[0], x.shape[1]
    nonzero_in = np.count_nonzero(x, axis=(0, 1)).astype(np.int64)  # per input channel
    layers = [{
        "name": net.input_name, "kind": "input", "neurons": net.input_size, "graded": True,
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
        fo = fan_out(proj.weights)
        graded = net.is_graded(proj)
        src_counts = nonzero_in if graded else m.spike_counts[proj.source]
        projections.append({
            "name": proj.name, "source": proj.source, "target": proj.target, "taps": proj.taps,
            "graded": graded, "weights": int(np.asarray(proj.weights).size),
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
    }
    if labels is not None:
        y = np.asarray(labels)
        traffic["labels"] = y.astype(int).tolist()
        traffic["accuracy"] = float((preds == y).mean())
        by_frame = m.readout_trace.argmax(axis=2) == y[:, None]
        traffic["accuracy_by_frame"] = by_frame.mean(axis=0).tolist()
    return traffic
