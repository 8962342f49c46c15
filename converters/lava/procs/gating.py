"""What every gated population process shares, whatever its neuron kind: B samples side by side
(lanes), each sample's window of steps, and what it did counted in the graph and written to the
record files the builder created (see GatedLIF's docstring: Lava 0.10 reads a Var back one element
per message, the files take milliseconds)."""

from __future__ import annotations

import numpy as np

from converters.lava.procs import one_blas_thread
from lmu2neuro.core.measurement import HASH_MOD, spike_hash_terms

# the columns of a population's per-sample record: spikes of all neurons, the fingerprint of the
# (step, neuron) spike set, neuron-steps whose 24-bit current wrapped, largest |current| before it
SAMPLE_COLUMNS = ("spikes", "fingerprint", "wrapped", "peak_current")
SPIKES, FINGERPRINT, WRAPPED, PEAK = (SAMPLE_COLUMNS.index(c) for c in
                                      ("spikes", "fingerprint", "wrapped", "peak_current"))


class Gate:
    """The window and the counting; mixed into each kind's ProcessModels (fixed_pt and floating_pt)."""

    _open = False

    def open_records(self):
        """Once, in the worker process: the record files and the per-lane accumulators."""
        one_blas_thread()
        p = self.proc_params
        lanes, size = self.s_out.shape
        rec = {k: np.load(path, mmap_mode="r+") for k, path in p["records"].items()}
        self._sample_rec, self._neuron_rec = rec["sample"], rec["neuron"]
        self._step_rec, self._raster_rec, self._trace_rec = rec["step"], rec["raster0"], rec.get("trace")
        self._acc = np.zeros((lanes, len(SAMPLE_COLUMNS)), dtype=np.int64)  # this window's counts per lane
        self._neuron = np.zeros(size, dtype=np.int64)
        self._step = np.zeros(p["steps"], dtype=np.int64)
        self._count = np.zeros((lanes, size), dtype=np.int64)
        self._ref_end = np.zeros((lanes, size), dtype=np.int64)  # last held Lava step of each neuron
        # a population the input drives through its bias: (samples, steps, size), in the form the
        # model's bias_mant takes (fixed_pt: the mantissa; floating_pt: the effective bias)
        self._bias_frames = np.load(p["bias_frames"], mmap_mode="r") if p.get("bias_frames") else None
        # per step, a column of ones (the spike count) and the fingerprint terms of a spike at
        # (step, neuron), each below 2**31: a lane's sum over its spikes stays below
        # size * 2**31 < 2**53, so one float64 product per step is exact
        terms = spike_hash_terms(np.arange(p["steps"])[:, None], np.arange(size)[None, :])
        self._terms = np.stack([np.ones_like(terms), terms], axis=2).astype(np.float64)  # (steps, size, 2)
        self._open = True

    def window(self):
        p = self.proc_params
        rel = self.time_step - 1 - p["offset"]
        if rel < 0:
            return None
        rnd, phase = divmod(rel, p["steps"])
        first = rnd * p["lanes"]
        if first >= p["samples"]:
            return None
        return rnd, phase, first, min(p["lanes"], p["samples"] - first)

    def tally(self, spikes, rnd, phase, first, live, voltage, increment=None):
        """Count this step's spikes (bool, (lanes, n)); record ``voltage`` (a readout's score) or the
        output's running sum of ``increment`` (None: the spikes; a graded kind: its payloads)."""
        # lanes past the last sample (the last round of a stream that B does not divide) run
        # on zero input and are never counted
        s = spikes[:live]
        if s.any():
            # one product gives every lane's spike count and fingerprint sum (exact: see _setup)
            per_lane = (s @ self._terms[phase]).astype(np.int64)
            acc = self._acc
            acc[:live, SPIKES] += per_lane[:, 0]
            acc[:live, FINGERPRINT] = (acc[:live, FINGERPRINT] + per_lane[:, 1]) % HASH_MOD
            self._neuron += np.count_nonzero(s, axis=0)
            self._step[phase] += int(per_lane[:, 0].sum())
            if rnd == 0:
                self._raster_rec[phase] = s[0]
        record = self.proc_params["record"]
        if record == "voltage":
            self._trace_rec[first:first + live, phase] = voltage[:live]
        elif record == "count":
            if phase == 0:
                self._count[:] = 0
            self._count += spikes if increment is None else increment
            self._trace_rec[first:first + live, phase] = self._count[:live]
        if phase == self.proc_params["steps"] - 1:  # the window closes: this round's samples are done
            self._sample_rec[first:first + live] = self._acc[:live]
            self._neuron_rec[:] = self._neuron
            self._step_rec[:] = self._step
            self._acc[:] = 0
