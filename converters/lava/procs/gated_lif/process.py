"""GatedLIF: Lava's LIF with a per-sample window and in-graph spike counting (its ProcessModels, per
back end, are in models.py beside it)."""

from __future__ import annotations

import numpy as np
from lava.magma.core.process.variable import Var
from lava.proc.lif.process import LIF


class GatedLIF(LIF):
    """Lava's LIF, active only in one window of `steps` steps per sample, and counting its spikes.

    Many samples stream through one compiled network: sample k occupies Lava steps
    [offset + k * period, offset + k * period + steps). The neuron starts each window from zero
    state and is silent (state held at zero) outside all windows.
    The counts are kept here, in the graph, so that only a few small Vars are read after the run.
    """

    def __init__(self, *, shape, steps: int, period: int, offset: int, samples: int,
                 record: str | None = None, **kwargs):
        super().__init__(shape=shape, **kwargs)
        n = int(np.prod(shape))
        self.proc_params["steps"] = int(steps)
        self.proc_params["period"] = int(period)
        self.proc_params["offset"] = int(offset)
        self.proc_params["samples"] = int(samples)
        self.proc_params["record"] = record  # "voltage" (readout), "count" (spiking output) or None
        self.spike_counts = Var(shape=(n,), init=0)  # per neuron, all samples
        self.sample_spikes = Var(shape=(samples,), init=0)  # per sample, all neurons
        self.step_spikes = Var(shape=(steps,), init=0)  # per step in the window, all samples
        self.fingerprint = Var(shape=(samples,), init=0)  # hash of the (step, neuron) spike set
        self.wrapped = Var(shape=(samples,), init=0)  # neuron-steps whose 24-bit current wrapped
        self.peak_current = Var(shape=(samples,), init=0)  # largest |current| before the wrap
        self.raster0 = Var(shape=(steps, n), init=0)  # sample 0's spikes, for plots
        rec = (samples * steps, n) if record else (1, 1)
        self.voltage = Var(shape=rec, init=0)  # output score after each step of each sample
