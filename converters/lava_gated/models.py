"""How the custom processes run: fixed_pt (bit-accurate, Lava's own LIF arithmetic) and floating_pt."""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.lif.models import AbstractPyLifModelFixed, AbstractPyLifModelFloat

from converters.lava_gated.process import GatedLIF, TappedDense
from lmu2neuro.traffic import _HASH_MOD, spike_hash


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
            self.fingerprint[sample] = (self.fingerprint[sample] + spike_hash(phase, idx)) % _HASH_MOD
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


class _TappedBase(PyLoihiProcessModel):
    def run_spk(self):
        self.a_out.send(self.a_buff)
        s_in = self.s_in.recv()
        self.history = np.roll(self.history, 1, axis=0)
        self.history[0] = s_in
        acc = np.einsum("toi,ti->o", self.weights, self.history * self._same_sample()[:, None])
        self.a_buff = self._scale(acc)

    def _same_sample(self) -> np.ndarray:
        """Mask over delays d: does the source step in history[d] feed the same sample?"""
        p = self.proc_params
        taps = self.history.shape[0]
        if not p["period"]:
            return np.ones(taps, dtype=self.history.dtype)
        # history[d] holds the source's output of Lava step time_step - d (1-based); the sum
        # computed now reaches the target at time_step + 1.
        src_sample = (self.time_step - 1 - np.arange(taps) - p["source_offset"]) // p["period"]
        dst_sample = (self.time_step - p["target_offset"]) // p["period"]
        return (src_sample == dst_sample).astype(self.history.dtype)


@implements(proc=TappedDense, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyTappedDenseFixed(_TappedBase):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32)
    weights: np.ndarray = LavaPyType(np.ndarray, np.int64)
    history: np.ndarray = LavaPyType(np.ndarray, np.int64)
    a_buff: np.ndarray = LavaPyType(np.ndarray, np.int64)

    def _scale(self, acc):
        exp = self.proc_params["weight_exp"]
        acc = acc.astype(np.int64)
        return np.left_shift(acc, exp) if exp >= 0 else np.right_shift(acc, -exp)


@implements(proc=TappedDense, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyTappedDenseFloat(_TappedBase):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    weights: np.ndarray = LavaPyType(np.ndarray, float)
    history: np.ndarray = LavaPyType(np.ndarray, float)
    a_buff: np.ndarray = LavaPyType(np.ndarray, float)

    def _scale(self, acc):
        return acc * 2.0 ** self.proc_params["weight_exp"]
