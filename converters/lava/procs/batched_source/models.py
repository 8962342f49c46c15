"""How BatchedSource runs: integer payloads (fixed_pt) or floats (floating_pt)."""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from converters.lava.procs.batched_source.process import BatchedSource


class _SourceBase(PyLoihiProcessModel):
    _frames = None

    def run_spk(self):
        p = self.proc_params
        if self._frames is None:
            self._frames = np.load(p["path"], mmap_mode="r")
        rnd, phase = divmod(self.time_step - 1, p["steps"])
        first = rnd * p["lanes"]
        out = np.zeros(self.s_out.shape, dtype=self._frames.dtype)
        if first < p["samples"]:
            live = min(p["lanes"], p["samples"] - first)
            out[:live] = self._frames[first:first + live, phase]
        self.s_out.send(out)


@implements(proc=BatchedSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyBatchedSourceFixed(_SourceBase):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32)  # as Lava's RingBuffer (PySendModelFixed)


@implements(proc=BatchedSource, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyBatchedSourceFloat(_SourceBase):
    s_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
