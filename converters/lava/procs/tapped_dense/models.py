"""How TappedDense runs: fixed_pt (integer sum, shifted by weight_exp as Lava's Dense does) and floating_pt."""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from converters.lava.procs.tapped_dense.process import TappedDense


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
