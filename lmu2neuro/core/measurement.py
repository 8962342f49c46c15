"""What a run of an IntNetwork measured, reduced the same way for every back end.

Every back end (the Lava run, the reference executor, the QAT model in integer mode) is reduced
to a ``Measurement``, so agreement is checked on the same numbers: per sample and population a
spike count and an order-free hash of the (step, neuron) spike set, and the readout's integer
voltage after every step. The Lava processes count and hash inside the graph with ``spike_hash``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lmu2neuro.core import fixed_point as fx

HASH_MOD = (1 << 31) - 1


def spike_hash_terms(steps: np.ndarray, neurons: np.ndarray) -> np.ndarray:
    """One term per spike at (step, neuron); a sample's fingerprint is their sum mod 2**31 - 1."""
    return ((np.asarray(steps, dtype=np.int64) + 1) * 1_000_003 + np.asarray(neurons, dtype=np.int64) + 1) \
        * 2_654_435_761 % HASH_MOD


def spike_hash(step: int, neurons: np.ndarray) -> int:
    """Hash of one step's spikes (the Lava processes add these up inside the graph)."""
    return int(spike_hash_terms(step, neurons).sum() % HASH_MOD)


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
        vals = spike_hash_terms(t, i)
        fp = np.zeros(s.shape[0], dtype=np.int64)
        np.add.at(fp, k, vals)
        prints[name] = fp % HASH_MOD
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


