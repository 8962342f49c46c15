"""How GatedLIF runs: fixed_pt (bit-accurate, Lava's own LIF arithmetic) and floating_pt."""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.ports import PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.lif.models import AbstractPyLifModelFixed, AbstractPyLifModelFloat

from converters.lava.procs import one_blas_thread
from converters.lava.procs.gated_lif.process import SAMPLE_COLUMNS, GatedLIF
from lmu2neuro.core.measurement import HASH_MOD, spike_hash_terms

SPIKES, FINGERPRINT, WRAPPED, PEAK = (SAMPLE_COLUMNS.index(c) for c in
                                      ("spikes", "fingerprint", "wrapped", "peak_current"))


class _GatedMixin:
    """The window, the reset to zero state, and the counting; shared by both back ends."""

    _open = False

    def _setup(self):
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

    def _window(self):
        p = self.proc_params
        rel = self.time_step - 1 - p["offset"]
        if rel < 0:
            return None
        rnd, phase = divmod(rel, p["steps"])
        first = rnd * p["lanes"]
        if first >= p["samples"]:
            return None
        return rnd, phase, first, min(p["lanes"], p["samples"] - first)

    def run_spk(self):
        a_in = self.a_in.recv()
        if not self._open:
            self._setup()
        where = self._window()
        if where is None or where[1] == 0:
            self.u[:] = 0
            self.v[:] = 0
        if where is None:
            self.s_out.send(np.zeros(self.s_out.shape))
            return
        rnd, phase, first, live = where
        interval = self.proc_params.get("reset_interval")
        if interval and phase > 0 and (phase - self.proc_params["reset_offset"]) % interval == 0:
            # lava-dl's reset_interval (Lava's LIFReset zeroes u and v); the held count too
            self.u[:] = 0
            self.v[:] = 0
            self._ref_end[:] = 0
        if self._bias_frames is not None:  # lava-dl's in_layer.neuron.bias_mant = frame, every step
            self.bias_mant[:] = 0
            self.bias_mant[:live] = self._bias_frames[first:first + live, phase]
            self.isbiasscaled = False
        if not self.isbiasscaled:  # the bias is constant: Lava rescales it every step to the same value
            self.scale_bias()
        if not self.isthrscaled:
            self.scale_threshold()
        period = self.proc_params.get("refractory", 0)
        if period:
            # as Lava's LIFRefractory: a neuron is held through the step its refractory period
            # ends in (refractory_period_end >= time_step); the window start clears it
            if where[1] == 0:
                self._ref_end[:] = 0
            held = self._ref_end >= self.time_step
            v_before = np.array(self.v, copy=True)
        self._dynamics(a_in, live)
        if period:
            self.v[held] = v_before[held]
            spikes = np.logical_and(self.spiking_activation(), ~held)
        else:
            spikes = self.spiking_activation()
        self.reset_voltage(spike_vector=spikes)
        if period:
            self._ref_end[spikes] = self.time_step + period
        self.s_out.send(spikes)
        self._tally(spikes, rnd, phase, first, live)

    def _tally(self, spikes, rnd, phase, first, live):
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
            self._trace_rec[first:first + live, phase] = self.v[:live]
        elif record == "count":
            if phase == 0:
                self._count[:] = 0
            self._count += spikes
            self._trace_rec[first:first + live, phase] = self._count[:live]
        if phase == self.proc_params["steps"] - 1:  # the window closes: this round's samples are done
            self._sample_rec[first:first + live] = self._acc[:live]
            self._neuron_rec[:] = self._neuron
            self._step_rec[:] = self._step
            self._acc[:] = 0


@implements(proc=GatedLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyGatedLifFixed(_GatedMixin, AbstractPyLifModelFixed):
    """Lava's fixed-point LIF arithmetic (AbstractPyLifModelFixed, as PyLifModelBitAcc uses it).

    Lava refuses a subclass of a model that already implements a Process, so the two small
    pieces PyLifModelBitAcc adds (threshold << 6, strict comparison) are restated here and
    checked against it in the tests. The reset is Lava's (to zero) or, for Population.reset ==
    "subtract", the threshold taken off (written here, not taken from lmu2neuro.core.fixed_point:
    the reference is the independent check).
    """

    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    vth: int = LavaPyType(int, np.int32, precision=17)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.effective_vth = 0

    def scale_threshold(self):
        self.effective_vth = np.left_shift(self.vth, self.vth_shift)
        self.isthrscaled = True

    def spiking_activation(self):
        return self.v > self.effective_vth

    def reset_voltage(self, spike_vector):
        # the voltage was clipped to 24 bits before the comparison and exceeds the threshold, so
        # the difference is positive and in range
        if self.proc_params["reset"] == "subtract":
            self.v[spike_vector] -= self.effective_vth
        else:
            self.v[spike_vector] = 0

    def _dynamics(self, a_in, live):
        u_peak = int(np.abs(self.u[:live]).max(initial=0))
        a_peak = int(np.abs(a_in[:live]).max(initial=0)) << self.act_shift
        if u_peak + a_peak < self.max_uv_val:
            # no current can reach 2**23, so none wraps and the new current is the exact one
            self.subthr_dynamics(activation_in=a_in)
            acc = self._acc[:live]
            np.maximum(acc[:, PEAK], np.abs(self.u[:live]).max(axis=1, initial=0), out=acc[:, PEAK])
            return
        # Lava's own bit-accurate update; the wrap check mirrors its 24-bit current arithmetic.
        before = np.int64(self.u) * (self.decay_unity - (self.du + self.ds_offset))
        unwrapped = np.sign(before) * (np.abs(before) >> self.decay_shift) + (np.int64(a_in) << self.act_shift)
        self.subthr_dynamics(activation_in=a_in)
        acc = self._acc[:live]
        acc[:, WRAPPED] += np.count_nonzero(unwrapped[:live] != self.u[:live], axis=1)
        np.maximum(acc[:, PEAK], np.abs(unwrapped[:live]).max(axis=1, initial=0), out=acc[:, PEAK])


@implements(proc=GatedLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyGatedLifFloat(_GatedMixin, AbstractPyLifModelFloat):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    vth: float = LavaPyType(float, float)

    def spiking_activation(self):
        return self.v > self.vth

    def reset_voltage(self, spike_vector):
        if self.proc_params["reset"] == "subtract":
            self.v[spike_vector] -= self.vth
        else:
            self.v[spike_vector] = 0

    def scale_bias(self):  # the float model has no bias exponent to apply
        pass

    isbiasscaled = True
    isthrscaled = True

    def _dynamics(self, a_in, live):
        self.subthr_dynamics(activation_in=a_in)
