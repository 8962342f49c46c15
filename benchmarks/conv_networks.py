"""Convolutional integer networks at real size, built directly as conv projections (no training).

The benchmarks and tests of convolutional counting, chip mapping, simulation speed and the
Loihi 2 PilotNet check need networks of the shapes people deploy, without a dataset or a trained
model. Each builder returns ``(IntNetwork, x_int)``: random even 8-bit kernels, a static random
input frame presented for every step (batch, T, input size), and each layer's threshold chosen
by bisection on the real input it receives so that about ``rate`` of its neurons spike per step
(default 0.1; measured values are what the builder's callers report, not this target).
Neurons: Loihi CUBA LIF with the current cleared every step (du = 4095: snnTorch's Leaky has no
synaptic current), voltage decay dv = 410 (beta = 0.9), zero reset (the only reset on Loihi 1).

- ``tutorial_cnn``: snnTorch tutorial 6's CNN, 1x28x28 -> Conv2d 12@5 -> pool 2 -> Leaky ->
  Conv2d 64@5 -> pool 2 -> Leaky -> Linear 1024 -> 10 -> Leaky (the tutorial max-pools; a max is
  no Loihi synapse, so the pooling here is a 2x2 sum pooling, i.e. average pooling with its 1/4
  in the threshold). Each conv + pool pair is one projection (``core.conv.compose``) whose
  ``origin["ann_macs"]`` is the Conv2d layer's own MACs, as NeuroBench counts them.
- ``pilotnet``: NVIDIA's PilotNet (Bojarski et al. 2016, "End to End Learning for Self-Driving
  Cars", arXiv 1604.07316, Fig. 4): 3x66x200 input, convs 24@5x5 s2, 36@5x5 s2, 48@5x5 s2,
  64@3x3, 64@3x3, flatten 1152, dense 100, 50, 10, and 1 output (a readout here).
- ``pilotnet_lavadl``: the PilotNet LIF network of lava-dl's Loihi 2 benchmark (tutorials/lava/lib/
  dl/netx/pilotnet_snn/benchmark.ipynb, its printout of network.net, W x H x C): input 200x66x3,
  convs 3x3: 24 s2, 36 s2, 48 s2, 64 with stride (W 1, H 2) and padding (W 0, H 1), 64 s1
  (20x2x64 = 2560), dense 100, 50, 10, 1. It differs from NVIDIA's (3x3 kernels throughout), so
  issue 14's comparison with that measurement uses this one.

Usage: python benchmarks/conv_networks.py   (prints each network's layers and measured rates)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lmu2neuro.core import fixed_point as fx  # noqa: E402
from lmu2neuro.core.conv import ConvGeometry, compose  # noqa: E402
from lmu2neuro.core.executor import execute, projection_current  # noqa: E402
from lmu2neuro.core.intnet import IntNetwork, Population, Projection  # noqa: E402

DU, DV = fx.DECAY_UNITY - 1, 410


def _kernel(rng, shape, amp):
    return (rng.integers(-amp // 2, amp // 2 + 1, size=shape) * 2).astype(np.int64)


def _rate(current: torch.Tensor, vth: int) -> float:
    """Fraction of (sample, step, neuron) that spike for input current (B, T, n)."""
    u = torch.zeros(current.shape[0], current.shape[2], dtype=torch.int64)
    v = torch.zeros_like(u)
    fired = 0
    for t in range(current.shape[1]):
        r = fx.lif_step(u, v, current[:, t], DU, DV, vth)
        u, v = r.u, r.v
        fired += int(r.spikes.sum())
    return fired / current.numel()


def _threshold(current: torch.Tensor, rate: float) -> int:
    """The threshold whose spike rate on this current is closest to ``rate`` (rate falls as vth grows)."""
    lo, hi = 0, fx.VTH_MAX
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _rate(current, mid) > rate:
            lo = mid
        else:
            hi = mid
    return hi


class _Builder:
    """Appends one population at a time, setting its threshold from the spikes the network so
    far produces on the batch."""

    def __init__(self, x_int: np.ndarray, input_scale: float, rate: float):
        self.x = torch.as_tensor(x_int, dtype=torch.int64)
        self.input_size = self.x.shape[2]
        self.input_scale = input_scale
        self.rate = rate
        self.pops: list[Population] = []
        self.projs: list[Projection] = []
        self.signal = (self.x, int(self.x.abs().max()))
        self.source = "input"

    def add(self, name, weights, conv=None, shape=None, readout=False, origin=None):
        proj = Projection(f"{self.source}->{name}", self.source, name, weights, 0,
                          origin or {"kind": "conv" if conv is not None else "dense"}, conv)
        size = int(np.prod(proj.out_shape)) if conv is not None else weights.shape[1]
        current = projection_current(self.signal[0], proj, self.signal[1])
        if readout:
            pop = Population(name, size, DU, 0, 0, np.zeros(size, np.int64), readout=True)
        else:
            vth = _threshold(current, self.rate)
            pop = Population(name, size, DU, DV, vth, np.zeros(size, np.int64), shape=shape, reset="zero")
        self.pops.append(pop)
        self.projs.append(proj)
        if not readout:
            net = self.network(name)
            spikes = execute(net, self.x).spikes[name]
            self.signal = (spikes.to(torch.float32), 1)
            self.source = name
        return pop

    def network(self, output):
        return IntNetwork(self.input_size, self.input_scale, list(self.pops), list(self.projs), output,
                          meta={"builder": "benchmarks/conv_networks.py"})


def _static_input(rng, batch, steps, shape):
    """A smooth random frame per sample (neighbouring pixels alike, as in images), 0..127,
    the same at every step: a static input presented for T steps."""
    frame = torch.as_tensor(rng.random((batch,) + shape), dtype=torch.float32)
    frame = torch.nn.functional.avg_pool2d(frame, 5, stride=1, padding=2, count_include_pad=False)
    lo = frame.amin(dim=(1, 2, 3), keepdim=True)
    hi = frame.amax(dim=(1, 2, 3), keepdim=True)
    frame = ((frame - lo) / (hi - lo) * 127).round().to(torch.int64).reshape(batch, 1, -1)
    return frame.expand(batch, steps, frame.shape[2]).contiguous().numpy()


def _spiking_input(rng, batch, steps, shape, rate):
    """The frame as binary spikes: each pixel fires each step with probability proportional to its
    brightness, ``rate`` on average (as an input layer of neurons biased by the frame spikes)."""
    frame = _static_input(rng, batch, 1, shape).astype(np.float64) / 127.0
    p = np.clip(frame * rate / max(frame.mean(), 1e-9), 0.0, 1.0)
    return (rng.random((batch, steps, frame.shape[2])) < p).astype(np.int64)


def _conv_pool(rng, in_shape, c_out, k, amp):
    """A Conv2d (no padding, stride 1) followed by a 2x2 sum pooling, as one projection."""
    g1 = ConvGeometry(in_shape, 1, 0, 1, 1)
    k1 = _kernel(rng, (c_out, in_shape[0], k, k), amp)
    mid = g1.out_shape((1,) + k1.shape)
    g2 = ConvGeometry(mid, 2, 0, 1, c_out)
    geometry, kernel = compose(g1, k1, g2, np.ones((c_out, 1, 2, 2)))
    kernel = np.rint(kernel).astype(np.int64)[None]
    ann_macs = g1.macs((1,) + k1.shape)
    origin = {"kind": "conv", "layers": [f"Conv2d({in_shape[0]}, {c_out}, {k})", "AvgPool2d(2) as a 2x2 sum"],
              "ann_macs": ann_macs}
    return geometry, kernel, origin


def tutorial_cnn(seed: int = 0, steps: int = 25, batch: int = 4, rate: float = 0.1):
    """snnTorch tutorial 6's CNN as an integer network: (IntNetwork, x_int (batch, steps, 784))."""
    rng = np.random.default_rng(seed)
    x = _static_input(rng, batch, steps, (1, 28, 28))
    b = _Builder(x, 127.0, rate)
    g, k, origin = _conv_pool(rng, (1, 28, 28), 12, 5, 30)
    b.add("conv1", k, g, shape=g.out_shape(k.shape), origin=origin)
    g, k, origin = _conv_pool(rng, (12, 12, 12), 64, 5, 30)
    b.add("conv2", k, g, shape=g.out_shape(k.shape), origin=origin)
    b.add("fc1", _kernel(rng, (1, 10, 64 * 4 * 4), 60))
    return b.network("fc1"), x


def _conv_stack(rng, b, in_shape, layers, dense, amp_first=8, amp=40):
    shape = in_shape
    for i, (c_out, k, stride, padding) in enumerate(layers, 1):
        g = ConvGeometry(shape, stride, padding, 1, 1)
        kern = _kernel(rng, (1, c_out, shape[0], k, k), amp_first if i == 1 else amp)
        shape = g.out_shape(kern.shape)
        b.add(f"conv{i}", kern, g, shape=shape,
              origin={"kind": "conv", "layers": [f"Conv2d({g.in_shape[0]}, {c_out}, {k}, stride={g.stride}, "
                                                 f"padding={g.padding})"]})
    n_in = int(np.prod(shape))
    for i, n in enumerate(dense, 1):
        last = i == len(dense)
        b.add(f"dense{i}" if not last else "out", _kernel(rng, (1, n, n_in), amp), readout=last)
        n_in = n
    return b


def pilotnet(steps: int = 16, seed: int = 0, batch: int = 2, rate: float = 0.1):
    """NVIDIA's PilotNet (Bojarski 2016) as an integer network: (IntNetwork, x_int (batch, steps, 39600))."""
    rng = np.random.default_rng(seed)
    x = _static_input(rng, batch, steps, (3, 66, 200))
    b = _Builder(x, 127.0, rate)
    layers = [(24, 5, 2, 0), (36, 5, 2, 0), (48, 5, 2, 0), (64, 3, 1, 0), (64, 3, 1, 0)]
    _conv_stack(rng, b, (3, 66, 200), layers, [100, 50, 10, 1])
    return b.network("out"), x


def pilotnet_lavadl(steps: int = 16, seed: int = 0, batch: int = 2, rate: float = 0.1, spiking_input: bool = False):
    """lava-dl's PilotNet LIF (benchmark.ipynb's network.net) as an integer network, in (C, H, W):
    (IntNetwork, x_int (batch, steps, 39600)). ``spiking_input``: the frame as binary spikes at
    ``rate`` (the notebook's input layer is spiking neurons biased by the frame) instead of the
    static graded frame; the first kernel is then as large as the others'."""
    rng = np.random.default_rng(seed)
    shape = (3, 66, 200)
    x = _spiking_input(rng, batch, steps, shape, rate) if spiking_input else _static_input(rng, batch, steps, shape)
    b = _Builder(x, 1.0 if spiking_input else 127.0, rate)
    # (C_out, k, stride (H, W), padding (H, W)); lava-dl prints W, H: stride "1, 2" is W 1, H 2
    layers = [(24, 3, (2, 2), (0, 0)), (36, 3, (2, 2), (0, 0)), (48, 3, (2, 2), (0, 0)),
              (64, 3, (2, 1), (1, 0)), (64, 3, (1, 1), (0, 0))]
    _conv_stack(rng, b, shape, layers, [100, 50, 10, 1], amp_first=40 if spiking_input else 8)
    return b.network("out"), x


BUILDERS = {"tutorial_cnn": tutorial_cnn, "pilotnet": pilotnet, "pilotnet_lavadl": pilotnet_lavadl}


def main() -> int:
    torch.set_num_threads(2)
    for name, build in BUILDERS.items():
        net, x = build()
        run = execute(net, x)
        print(f"{name}: input {net.input_size}, batch {x.shape[0]}, {x.shape[1]} steps")
        for pop in net.populations:
            s = run.spikes[pop.name]
            proj = net.projections_into(pop.name)[0]
            rate = "readout" if pop.readout else f"{float(s.float().mean()):.3f}"
            print(f"  {pop.name:8s} {pop.size:7d} neurons shape {pop.shape} vth {pop.vth:6d} "
                  f"rate {rate} macs/step {proj.macs():,} "
                  f"ann_macs {proj.origin.get('ann_macs', proj.macs()):,} wrapped {run.wrapped[pop.name]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
