"""How TappedDense runs: fixed_pt (integer sum, shifted by weight_exp as Lava's Dense does) and floating_pt."""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from converters.lava.procs import one_blas_thread
from converters.lava.procs.delay_line import DelayLine, FixedScale, FloatScale, sum_dtype, used_taps
from converters.lava.procs.tapped_dense.process import TappedDense


class _TappedBase(DelayLine, PyLoihiProcessModel):
    """The delay line (procs.delay_line) times one weight matrix per delay: the sum over the live
    delays is one matrix product over a row slice of the ring, with no copy."""

    def _setup(self):
        one_blas_thread()
        w = np.asarray(self.weights)
        taps, n_out, n_in = w.shape
        dtype = self._sum_dtype(w)
        # rows ordered (delay, source neuron), matching the ring's columns
        self._w = np.ascontiguousarray(w.transpose(0, 2, 1).reshape(taps * n_in, n_out), dtype=dtype)
        self.ring_setup(self.a_out.shape[0], taps, n_in, dtype)
        self._used = used_taps(w)

    def run_spk(self):
        self.a_out.send(self.a_buff)
        s_in = self.s_in.recv()
        if self._ring is None:
            self._setup()
        self.ring_push(s_in)
        d0, d1 = self.live_delays()
        d0, d1 = max(d0, self._used[0]), min(d1, self._used[1])
        k = self._ring_n
        if d0 < d1:
            acc = self.ring_window(d0, d1) @ self._w[d0 * k:d1 * k]
        else:
            acc = np.zeros(self.a_out.shape, dtype=self._w.dtype)
        self.a_buff = self._scale(acc)


@implements(proc=TappedDense, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyTappedDenseFixed(FixedScale, _TappedBase):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32)
    weights: np.ndarray = LavaPyType(np.ndarray, np.int64)
    a_buff: np.ndarray = LavaPyType(np.ndarray, np.int64)

    def _sum_dtype(self, w):
        # no partial sum of a row exceeds sum |W| * max |input| (inputs: spikes, or the graded
        # payloads the builder measured)
        return sum_dtype(int(np.abs(w).sum(axis=(0, 2)).max(initial=0)) * self.proc_params["input_max"])


@implements(proc=TappedDense, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyTappedDenseFloat(FloatScale, _TappedBase):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    weights: np.ndarray = LavaPyType(np.ndarray, float)
    a_buff: np.ndarray = LavaPyType(np.ndarray, float)
