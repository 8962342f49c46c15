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
from converters.lava.procs.tapped_dense.process import TappedDense


class _TappedBase(PyLoihiProcessModel):
    """The delay line is a ring of the last ``taps`` inputs per lane, stored twice over so that
    the entries for delays d0..d1-1 are always one row slice (lanes, (d1 - d0) * n_in): the sum
    over those delays is then one matrix product with no copy."""

    _ring = None

    def _setup(self):
        one_blas_thread()
        w = np.asarray(self.weights)
        taps, n_out, n_in = w.shape
        dtype = self._sum_dtype(w)
        # rows ordered (delay, source neuron), matching the ring's columns
        self._w = np.ascontiguousarray(w.transpose(0, 2, 1).reshape(taps * n_in, n_out), dtype=dtype)
        self._ring = np.zeros((self.a_out.shape[0], 2 * taps * n_in), dtype=dtype)
        self._taps, self._n_in, self._pos = taps, n_in, 0
        # only the delays with a nonzero weight are multiplied: the extra delays that align a
        # shorter path are all-zero leading taps
        used = np.flatnonzero(np.abs(w).sum(axis=(1, 2)))
        self._used = (int(used[0]), int(used[-1]) + 1) if used.size else (0, 0)

    def run_spk(self):
        self.a_out.send(self.a_buff)
        s_in = self.s_in.recv()
        if self._ring is None:
            self._setup()
        taps, k = self._taps, self._n_in
        self._pos = pos = (self._pos - 1) % taps  # delay d sits at ring slot pos + d
        self._ring[:, pos * k:(pos + 1) * k] = s_in
        self._ring[:, (pos + taps) * k:(pos + taps + 1) * k] = s_in
        d0, d1 = self._live_delays()
        d0, d1 = max(d0, self._used[0]), min(d1, self._used[1])
        if d0 < d1:
            acc = self._ring[:, (pos + d0) * k:(pos + d1) * k] @ self._w[d0 * k:d1 * k]
        else:
            acc = np.zeros(self.a_out.shape, dtype=self._w.dtype)
        self.a_buff = self._scale(acc)

    def _live_delays(self) -> tuple[int, int]:
        """Delays d0 <= d < d1 whose source step feeds the target's current round.

        The entry at delay d holds the source's output of Lava step t - d (t = time_step,
        1-based), which belongs to the source's round (t - 1 - d - source_offset) // period; the
        sum computed now reaches the target at t + 1, in its round (t - target_offset) // period.
        The two are equal exactly for t - so - (r + 1) * period <= d < t - so - r * period.
        """
        p = self.proc_params
        t, so, period = self.time_step, p["source_offset"], p["period"]
        r = (t - p["target_offset"]) // period
        return max(0, t - so - (r + 1) * period), min(self._taps, t - so - r * period)


@implements(proc=TappedDense, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyTappedDenseFixed(_TappedBase):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32)
    weights: np.ndarray = LavaPyType(np.ndarray, np.int64)
    a_buff: np.ndarray = LavaPyType(np.ndarray, np.int64)

    def _sum_dtype(self, w):
        """The narrowest type in which every partial sum of the product is an exact integer.

        No partial sum of a row exceeds sum |W| * max |input| in magnitude (inputs: spikes, or
        the graded payloads the builder measured). float32 holds every integer below 2**24 and
        float64 below 2**53, whatever order BLAS adds in; beyond, int64.
        """
        bound = int(np.abs(w).sum(axis=(0, 2)).max(initial=0)) * self.proc_params["input_max"]
        if bound < 1 << 24:
            return np.float32
        return np.float64 if bound < 1 << 53 else np.int64

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
    a_buff: np.ndarray = LavaPyType(np.ndarray, float)

    def _sum_dtype(self, w):
        return np.float64

    def _scale(self, acc):
        return acc * 2.0 ** self.proc_params["weight_exp"]
