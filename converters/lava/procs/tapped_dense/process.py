"""TappedDense: a Dense connection with one weight matrix per synaptic delay, B samples side by side
(its ProcessModels, per back end, are in models.py beside it)."""

from __future__ import annotations

import numpy as np
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var


class TappedDense(AbstractProcess):
    """Dense connection with one weight matrix per synaptic delay ("tap"), for ``lanes`` samples.

    a_out[b] at step t+1 = shift(sum_j W[j] @ s_in[b, t - j], weight_exp) for every lane b, as
    Lava's Dense computes for one tap and one sample: plain dense layers, temporal convolutions,
    the LMU memory as a finite impulse response and the extra delays that align paths of unequal
    length are all this one process. (Lava's own Dense takes no batch dimension.)
    """

    def __init__(self, *, weights: np.ndarray, lanes: int, period: int, weight_exp: int = 0,
                 num_message_bits: int = 0, input_max: int = 1, source_offset: int = 0, target_offset: int = 1,
                 **kwargs):
        # Keyword arguments become proc_params, which the ProcessModels read. Rounds of samples
        # start at Lava steps offset + r * period (the source's and the target's own offsets),
        # and every lane of a round is at the same phase of its sample, so one rule serves all
        # lanes: an entry of the delay line reaches the target only if the source step it holds
        # belongs to the same round as the target step it arrives in. No spike of one sample
        # reaches the next, while the delays that only align paths of unequal latency keep
        # delivering. input_max: the largest |value| the source sends (spikes: 1), which bounds
        # the sums.
        super().__init__(weight_exp=int(weight_exp), num_message_bits=int(num_message_bits), input_max=int(input_max),
                         source_offset=int(source_offset), target_offset=int(target_offset),
                         period=int(period), lanes=int(lanes), **kwargs)
        taps, n_out, n_in = weights.shape
        self.s_in = InPort(shape=(int(lanes), n_in))
        self.a_out = OutPort(shape=(int(lanes), n_out))
        self.weights = Var(shape=weights.shape, init=weights)
        self.a_buff = Var(shape=(int(lanes), n_out), init=0)
