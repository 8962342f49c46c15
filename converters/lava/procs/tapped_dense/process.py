"""TappedDense: a Dense connection with one weight matrix per synaptic delay (its ProcessModels, per
back end, are in models.py beside it)."""

from __future__ import annotations

import numpy as np
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var


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
