"""GatedSigmaDelta: Lava's SigmaDelta, B samples side by side, with a per-sample window and in-graph
counting (its ProcessModel, fixed_pt, is in models.py beside it)."""

from __future__ import annotations

import numpy as np
from lava.proc.sdn.process import ActivationMode, SigmaDelta

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
