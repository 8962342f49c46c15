"""GatedLIF: Lava's LIF, B samples side by side, with a per-sample window and in-graph spike counting
(its ProcessModels, per back end, are in models.py beside it)."""

from __future__ import annotations

import numpy as np
from lava.proc.lif.process import LIF

from lmu2neuro.core.fixed_point import REFRACTORY_MAX, RESETS



class GatedLIF(LIF):
    """Lava's LIF holding ``lanes`` independent copies of a population of ``size`` neurons.

    Its Vars and ports have the shape (lanes, size): lane b of round r runs sample r * lanes + b,
    and the arithmetic is Lava's own elementwise LIF update on the whole array. Round r occupies
    Lava steps [offset + r * steps, offset + (r + 1) * steps); each lane starts every window from
    zero state and is silent (state held at zero) outside all windows.

    What the population did is counted here, in the graph, per lane and per sample, and written
    to the record files named by ``records`` (one .npy each, created by the builder): Lava 0.10
    reads a Var back one element per message (``PyLoihiProcessModel._get_var``), which for a
    readout trace of thousands of samples takes minutes; the files take milliseconds.

    ``reset``: one of ``fixed_point.RESETS`` (Lava's LIF resets to zero; "subtract" takes vth << 6
    off in the step the neuron fires, a Loihi 2 option). ``refractory``: steps after a spike in which a neuron is held, as
    Lava's LIFRefractory holds it (its voltage is frozen and it cannot fire, its current goes on
    integrating); 0 is Lava's LIF. ``bias_frames``: an .npy of the bias per sample and step, set
    before each step (the input drives this population through its bias, lava-dl's way into a
    netx input layer). ``reset_interval`` / ``reset_offset``: state zeroed before window step p > 0
    with (p - offset) % interval == 0 (lava-dl's reset_interval, latency already aligned).
    """

    def __init__(self, *, size: int, lanes: int, steps: int, offset: int, samples: int,
                 records: dict[str, str], record: str | None = None, bias_mant=0, reset: str = "zero",
                 refractory: int = 0, bias_frames: str | None = None, reset_interval: int | None = None,
                 reset_offset: int = 0, **kwargs):
        shape = (int(lanes), int(size))
        super().__init__(shape=shape, bias_mant=np.broadcast_to(np.asarray(bias_mant), shape).copy(), **kwargs)
        self.proc_params["lanes"] = int(lanes)
        self.proc_params["steps"] = int(steps)
        self.proc_params["offset"] = int(offset)
        self.proc_params["samples"] = int(samples)
        # "voltage" (a readout: its voltage after every step), "count" (a spiking output: its
        # spike count so far) or None
        self.proc_params["record"] = record
        self.proc_params["records"] = dict(records)
        if reset not in RESETS:
            raise ValueError(f"reset {reset!r}: expected one of {RESETS}")
        self.proc_params["reset"] = reset
        if not 0 <= int(refractory) <= REFRACTORY_MAX:
            raise ValueError(f"refractory {refractory}: expected 0..{REFRACTORY_MAX} steps")
        self.proc_params["refractory"] = int(refractory)
        # an .npy (samples, steps, size) of this population's bias per step (the input drives it)
        self.proc_params["bias_frames"] = bias_frames
        self.proc_params["reset_interval"] = None if reset_interval is None else int(reset_interval)
        self.proc_params["reset_offset"] = int(reset_offset)
