"""GatedSigmaDelta: Lava's SigmaDelta, B samples side by side, with a per-sample window and in-graph
counting, and its fixed_pt ProcessModel, in one file (its folder holds nothing else: Lava imports
every .py file beside a custom Process while it looks for its ProcessModels).

The ProcessModel runs Lava's own sigma-delta arithmetic (``lava.proc.sdn.models``: sigma_dynamics,
activation_dynamics, delta_dynamics) inside GatedLIF's window and counting (``procs.gating``).
Lava refuses a subclass of a model that already implements a Process, so the fixed-point Var
types of PySigmaDeltaModelFixed and the two shifts its run_spk adds (Delta: the input << spike_exp +
state_exp; both: the message >> state_exp) are restated here; the arithmetic itself is inherited."""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from lava.proc.sdn.models import AbstractSigmaDeltaModel
from lava.proc.sdn.process import ActivationMode, SigmaDelta

from converters.lava.procs.gating import Gate

STAGES = ("sigma_delta", "delta", "sigma")  # which of Lava's Sigma, Delta, SigmaDelta it is


class GatedSigmaDelta(SigmaDelta):
    """Lava's SigmaDelta holding ``lanes`` independent copies of a population of ``size`` neurons,
    windows and records as GatedLIF's (see its docstring). ``stage``: "sigma_delta" runs Lava's
    SigmaDelta arithmetic, "delta" its Delta's (the input encoder), "sigma" its Sigma's (a readout);
    the arithmetic is Lava's own (``lava.proc.sdn.models``), only the window is added."""

    def __init__(self, *, size: int, lanes: int, steps: int, offset: int, samples: int,
                 records: dict[str, str], record: str | None = None, stage: str = "sigma_delta",
                 bias=0, activation: str = "relu", reset_interval: int | None = None, reset_offset: int = 0,
                 **kwargs):
        if stage not in STAGES:
            raise ValueError(f"stage {stage!r}: expected one of {STAGES}")
        shape = (int(lanes), int(size))
        act_mode = ActivationMode.RELU if activation == "relu" else ActivationMode.UNIT
        super().__init__(shape=shape, bias=np.broadcast_to(np.asarray(bias), shape).copy(), act_mode=act_mode,
                         **kwargs)
        self.proc_params["lanes"] = int(lanes)
        self.proc_params["steps"] = int(steps)
        self.proc_params["offset"] = int(offset)
        self.proc_params["samples"] = int(samples)
        self.proc_params["record"] = record
        self.proc_params["records"] = dict(records)
        self.proc_params["stage"] = stage
        self.proc_params["reset_interval"] = None if reset_interval is None else int(reset_interval)
        self.proc_params["reset_offset"] = int(reset_offset)


@implements(proc=GatedSigmaDelta, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyGatedSigmaDeltaFixed(Gate, AbstractSigmaDeltaModel):
    a_in = LavaPyType(PyInPort.VEC_DENSE, np.int32, precision=24)
    s_out = LavaPyType(PyOutPort.VEC_DENSE, np.int32, precision=24)
    vth: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    sigma: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    act: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    residue: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    error: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=24)
    bias: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=16)
    spike_exp: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=3)
    state_exp: np.ndarray = LavaPyType(np.ndarray, np.int32, precision=3)
    cum_error: np.ndarray = LavaPyType(np.ndarray, bool, precision=1)

    def _zero(self):
        for var in (self.sigma, self.act, self.residue, self.error):
            var[:] = 0

    def run_spk(self):
        a_in = self.a_in.recv()
        if not self._open:
            self.open_records()
        where = self.window()
        interval = self.proc_params.get("reset_interval")
        if where is None or where[1] == 0 or (
                interval and (where[1] - self.proc_params["reset_offset"]) % interval == 0):
            self._zero()
        if where is None:
            self.s_out.send(np.zeros(self.s_out.shape, dtype=np.int32))
            return
        rnd, phase, first, live = where
        stage = self.proc_params["stage"]
        if stage == "sigma":  # PySigmaModelFixed: sends sigma itself
            self.sigma = self.sigma_dynamics(a_in)
            self.s_out.send(self.sigma)
            self.tally(np.zeros(self.sigma.shape, dtype=bool), rnd, phase, first, live, self.sigma)
            return
        if stage == "delta":  # PyDeltaModelFixed
            scaled = np.left_shift(a_in, self.spike_exp + self.state_exp)
            out = np.right_shift(self.delta_dynamics(scaled), self.state_exp)
            self.act = scaled
            state = self.act
        else:  # PySigmaDeltaModelFixed
            out = np.right_shift(self.dynamics(a_in), self.state_exp)
            state = self.sigma
        self.s_out.send(out)
        self.tally(out != 0, rnd, phase, first, live, state, increment=out)
