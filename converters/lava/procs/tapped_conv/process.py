"""TappedConv: a convolutional connection with one kernel per synaptic delay, B samples side by side
(its ProcessModels, per back end, are in models.py beside it)."""

from __future__ import annotations

import numpy as np
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var


class TappedConv(AbstractProcess):
    """A 2-D convolution (PyTorch's cross-correlation, zero padding) per delay tap, for ``lanes``
    samples: a_out[b] at step t+1 = shift(sum_j conv(K[j], s_in[b, t - j]), weight_exp).

    ``weights`` (taps, C_out, C_in // groups, kH, kW), ``in_shape`` (C, H, W); stride, padding and
    dilation are (along H, along W). The ports are flat, (lanes, C * H * W) in and
    (lanes, C_out * H_out * W_out) out, in C order of the frames (our populations' layout). A 1-D
    convolution is the case H = kH = 1. The delays, the rounds and the lanes follow TappedDense
    (the same delay line, procs.delay_line).
    """

    def __init__(self, *, weights: np.ndarray, in_shape: tuple[int, int, int], stride: tuple[int, int],
                 padding: tuple[int, int], dilation: tuple[int, int], groups: int, lanes: int, period: int,
                 weight_exp: int = 0, num_message_bits: int = 0, input_max: int = 1, source_offset: int = 0,
                 target_offset: int = 1, **kwargs):
        in_shape, stride, padding, dilation = (tuple(int(v) for v in t) for t in (in_shape, stride, padding, dilation))
        taps, c_out, _, kh, kw = weights.shape
        out_hw = tuple((n + 2 * p - d * (k - 1) - 1) // s + 1 for n, k, s, p, d in
                       zip(in_shape[1:], (kh, kw), stride, padding, dilation))
        super().__init__(weight_exp=int(weight_exp), num_message_bits=int(num_message_bits), input_max=int(input_max),
                         source_offset=int(source_offset), target_offset=int(target_offset), period=int(period),
                         lanes=int(lanes), in_shape=in_shape, stride=stride, padding=padding, dilation=dilation,
                         groups=int(groups), out_hw=out_hw, **kwargs)
        self.s_in = InPort(shape=(int(lanes), int(np.prod(in_shape))))
        self.a_out = OutPort(shape=(int(lanes), int(c_out * np.prod(out_hw))))
        self.weights = Var(shape=weights.shape, init=weights)
        self.a_buff = Var(shape=(int(lanes), int(c_out * np.prod(out_hw))), init=0)
