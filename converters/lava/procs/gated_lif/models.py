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
from converters.lava.procs.gating import PEAK, WRAPPED, Gate


class _GatedMixin(Gate):
    """The LIF's window step: the reset to zero state, lava-dl's reset interval, the bias frames and
    the refractory hold around Lava's own LIF update; shared by both back ends."""

    def run_spk(self):
        a_in = self.a_in.recv()
        if not self._open:
            self.open_records()
        where = self.window()
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
        self.tally(spikes, rnd, phase, first, live, self.v)


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
