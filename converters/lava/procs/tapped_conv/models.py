"""How TappedConv runs: fixed_pt (exact integer sums, shifted by weight_exp as Lava's Dense and Conv
state it) and floating_pt. An implementation of its own (numpy windows times the kernel as one matrix
product per group), sharing no code with the reference executor."""

from __future__ import annotations

import numpy as np
from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol
from numpy.lib.stride_tricks import sliding_window_view

from converters.lava.procs import one_blas_thread
from converters.lava.procs.delay_line import DelayLine, FixedScale, FloatScale, sum_dtype, used_taps
from converters.lava.procs.tapped_conv.process import TappedConv


class _ConvBase(DelayLine, PyLoihiProcessModel):
    """The delay line holds flat input frames; the live delays are viewed as frames
    (lanes, D, C, H, W), cut into windows without a copy (sliding_window_view, then stride and
    dilation as slices), and multiplied with the kernel: rows (position), columns (delay, input
    channel of the group, kernel row, kernel column), one product per group."""

    def _setup(self):
        one_blas_thread()
        p = self.proc_params
        w = np.asarray(self.weights)
        taps, c_out, c_in_g, kh, kw = w.shape
        g = p["groups"]
        self._dtype = self._sum_dtype(w)
        # (G, taps, C_in/g * kH * kW, C_out/g): slicing taps d0:d1 gives the product's rows in order
        k = w.reshape(taps, g, c_out // g, c_in_g * kh * kw).transpose(1, 0, 3, 2)
        self._k = np.ascontiguousarray(k, dtype=self._dtype)
        self.ring_setup(self.a_out.shape[0], taps, int(np.prod(p["in_shape"])), self._dtype)
        self._used = used_taps(w)
        self._khw = (kh, kw)

    def _conv(self, frames: np.ndarray, d0: int, d1: int) -> np.ndarray:
        """frames (lanes, D, C, H, W) of delays d0..d1-1 -> (lanes, C_out * H_out * W_out)."""
        p = self.proc_params
        (sh, sw), (ph, pw), (dh, dw), g = p["stride"], p["padding"], p["dilation"], p["groups"]
        ho, wo = p["out_hw"]
        lanes, depth, c, _, _ = frames.shape
        _, _, rows, og = self._k.shape
        kh, kw = self._khw
        if ph or pw:
            frames = np.pad(frames, ((0, 0), (0, 0), (0, 0), (ph, ph), (pw, pw)))
        win = sliding_window_view(frames, (dh * (kh - 1) + 1, dw * (kw - 1) + 1), axis=(3, 4))
        win = win[:, :, :, ::sh, ::sw, ::dh, ::dw]  # (lanes, D, C, H_out, W_out, kH, kW)
        win = win.reshape(lanes, depth, g, c // g, ho, wo, kh, kw)
        cols = win.transpose(0, 2, 4, 5, 1, 3, 6, 7).reshape(lanes, g, ho * wo, depth * rows)
        kernel = self._k[:, d0:d1].reshape(g, depth * rows, og)
        out = cols @ kernel  # (lanes, G, positions, C_out/g)
        return out.transpose(0, 1, 3, 2).reshape(lanes, -1)

    def run_spk(self):
        self.a_out.send(self.a_buff)
        s_in = self.s_in.recv()
        if self._ring is None:
            self._setup()
        self.ring_push(s_in)
        d0, d1 = self.live_delays()
        d0, d1 = max(d0, self._used[0]), min(d1, self._used[1])
        window = self.ring_window(d0, d1) if d0 < d1 else None
        if window is not None and window.any():
            frames = window.reshape((window.shape[0], d1 - d0) + tuple(self.proc_params["in_shape"]))
            acc = self._conv(frames, d0, d1)
        else:  # nothing arrives (silent spikes are the common case): no windows to cut
            acc = np.zeros(self.a_out.shape, dtype=self._dtype)
        self.a_buff = self._scale(acc)


@implements(proc=TappedConv, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyTappedConvFixed(FixedScale, _ConvBase):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, np.int32)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, np.int32)
    weights: np.ndarray = LavaPyType(np.ndarray, np.int64)
    a_buff: np.ndarray = LavaPyType(np.ndarray, np.int64)

    def _sum_dtype(self, w):
        # an output sums one kernel slice per delay over its window: no partial sum exceeds
        # sum |K| over (taps, C_in/g, kH, kW) of its channel, times max |input|
        per_channel = np.abs(w).sum(axis=(0, 2, 3, 4)).max(initial=0)
        return sum_dtype(int(per_channel) * self.proc_params["input_max"])


@implements(proc=TappedConv, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyTappedConvFloat(FloatScale, _ConvBase):
    s_in: PyInPort = LavaPyType(PyInPort.VEC_DENSE, float)
    a_out: PyOutPort = LavaPyType(PyOutPort.VEC_DENSE, float)
    weights: np.ndarray = LavaPyType(np.ndarray, float)
    a_buff: np.ndarray = LavaPyType(np.ndarray, float)
