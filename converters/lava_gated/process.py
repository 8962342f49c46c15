"""What the custom processes are (their ProcessModels, per back end, are in models.py)."""

from __future__ import annotations

import numpy as np
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
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


class TappedDense(AbstractProcess):
    """Dense connection with one weight matrix per synaptic delay ("tap").

    a_out at step t+1 = shift(sum_j W[j] @ s_in[t - j], weight_exp), as Lava's Dense computes for
    one tap: temporal convolutions, the LMU memory as a finite impulse response, and the extra
    delays that align paths of unequal length are all this one process.
    """

    def __init__(self, *, weights: np.ndarray, weight_exp: int = 0, num_message_bits: int = 0,
                 source_offset: int = 0, target_offset: int = 1, period: int = 0, **kwargs):
        # Keyword arguments become proc_params, which the ProcessModels read. With a period, an
        # entry of the delay line reaches the target only if the source step it holds belongs
        # to the same sample as the target step it arrives in (samples start at Lava steps
        # offset + k * period), so no spike of one sample reaches the next, while the delays
        # that only align paths of unequal latency keep delivering.
        super().__init__(weight_exp=int(weight_exp), num_message_bits=int(num_message_bits),
                         source_offset=int(source_offset), target_offset=int(target_offset),
                         period=int(period), **kwargs)
        taps, n_out, n_in = weights.shape
        self.s_in = InPort(shape=(n_in,))
        self.a_out = OutPort(shape=(n_out,))
        self.weights = Var(shape=weights.shape, init=weights)
        self.history = Var(shape=(taps, n_in), init=0)
        self.a_buff = Var(shape=(n_out,), init=0)
