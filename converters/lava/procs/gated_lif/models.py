"""How GatedLIF runs: fixed_pt (bit-accurate, Lava's own LIF arithmetic) and floating_pt."""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.ports import PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.lif.models import AbstractPyLifModelFixed, AbstractPyLifModelFloat

from converters.lava.procs.gated_lif.process import GatedLIF
from lmu2neuro.core.measurement import HASH_MOD, spike_hash


class _GatedMixin:
    """The window, the reset to zero state, and the counting; shared by both back ends."""

    spike_counts: np.ndarray = LavaPyType(np.ndarray, np.int64)
    sample_spikes: np.ndarray = LavaPyType(np.ndarray, np.int64)
    step_spikes: np.ndarray = LavaPyType(np.ndarray, np.int64)
    fingerprint: np.ndarray = LavaPyType(np.ndarray, np.int64)
    wrapped: np.ndarray = LavaPyType(np.ndarray, np.int64)
    peak_current: np.ndarray = LavaPyType(np.ndarray, np.int64)
    raster0: np.ndarray = LavaPyType(np.ndarray, np.int64)

    def _window(self):
        p = self.proc_params
        rel = self.time_step - 1 - p["offset"]
        if rel < 0:
            return None
        sample, phase = divmod(rel, p["period"])
        if sample >= p["samples"] or phase >= p["steps"]:
            return None
        return sample, phase

    def run_spk(self):
        a_in = self.a_in.recv()
        where = self._window()
        if where is None or where[1] == 0:
            self.u[:] = 0
            self.v[:] = 0
        if where is None:
            self.s_out.send(np.zeros(self.s_out.shape))
            return
        sample, phase = where
        self.scale_bias()
        if not self.isthrscaled:
            self.scale_threshold()
        self._dynamics(a_in, sample)
        spikes = self.spiking_activation()
        self.reset_voltage(spike_vector=spikes)
        self.s_out.send(spikes)
        idx = np.flatnonzero(spikes)
        if idx.size:
            self.spike_counts[idx] += 1
            self.sample_spikes[sample] += idx.size
            self.step_spikes[phase] += idx.size
            self.fingerprint[sample] = (self.fingerprint[sample] + spike_hash(phase, idx)) % HASH_MOD
            if sample == 0:
                self.raster0[phase, idx] = 1
        record = self.proc_params["record"]
        row = sample * self.proc_params["steps"] + phase
        if record == "voltage":
            self.voltage[row] = self.v
        elif record == "count":
            self.voltage[row] = spikes + (self.voltage[row - 1] if phase else 0)


@implements(proc=GatedLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyGatedLifFixed(_GatedMixin, AbstractPyLifModelFixed):
    """Lava's fixed-point LIF arithmetic (AbstractPyLifModelFixed, as PyLifModelBitAcc uses it).

    Lava refuses a subclass of a model that already implements a Process, so the two small
    pieces PyLifModelBitAcc adds (threshold << 6, strict comparison) are restated here and
    checked against it in the tests.
    """

    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    vth: int = LavaPyType(int, np.int32, precision=17)
    voltage: np.ndarray = LavaPyType(np.ndarray, np.int64)

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.effective_vth = 0

    def scale_threshold(self):
        self.effective_vth = np.left_shift(self.vth, self.vth_shift)
        self.isthrscaled = True

    def spiking_activation(self):
        return self.v > self.effective_vth

    def _dynamics(self, a_in, sample):
        # Lava's own bit-accurate update; the wrap check mirrors its 24-bit current arithmetic.
        before = np.int64(self.u) * (self.decay_unity - (self.du + self.ds_offset))
        unwrapped = np.sign(before) * (np.abs(before) >> self.decay_shift) + (np.int64(a_in) << self.act_shift)
        self.subthr_dynamics(activation_in=a_in)
        self.wrapped[sample] += int(np.count_nonzero(unwrapped != self.u))
        if unwrapped.size:
            self.peak_current[sample] = max(int(self.peak_current[sample]), int(np.abs(unwrapped).max()))


@implements(proc=GatedLIF, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyGatedLifFloat(_GatedMixin, AbstractPyLifModelFloat):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    vth: float = LavaPyType(float, float)
    voltage: np.ndarray = LavaPyType(np.ndarray, float)

    def spiking_activation(self):
        return self.v > self.vth

    def scale_bias(self):  # the float model has no bias exponent to apply
        pass

    isthrscaled = True

    def _dynamics(self, a_in, sample):
        self.subthr_dynamics(activation_in=a_in)
