"""Measured baselines: the deployed network's conventional equivalents, timed on this machine.

Two torch networks are built from the IntNetwork (its deployed integers as float weights,
``mantissa x 2^weight_exp``; a convolution stays a convolution, run by torch's own ``conv1d`` /
``conv2d``, as an ANN on this machine would run it):

- the non-spiking equivalent (the report's ANN baseline, ``Counts.totals["ann_passes"]``): the same
  layers with ReLU for every LIF population and the readout linear; ONE pass for a static input to
  a network without recurrence (the delay taps then all see the same frame, so they add up), T
  passes otherwise, each pass one frame, a recurrent or delayed projection reading the passes before;
- the SNN as a dense torch network: the same layers with a float CUBA LIF (current and voltage
  decays, threshold, reset to zero) stepped T times, every connection computed every step.

Helpers a conversion added (``Projection.helper``, ``Population.helper``) are not part of either:
an ANN has no reset self connections or spike-count readouts, and a network whose output is a
helper readout ends at the last spiking population. A bias source (an always-on neuron whose
synapses put the model's bias into a synaptic current) becomes what it stands for: a constant
input to its targets.

``measure`` times a network at a batch size: median wall-clock of repeated runs after warm-up, in
``torch.inference_mode``, on one device; energy comes from ``analysis.energy_meter``.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core.intnet import IntNetwork, Population, Projection


@dataclass
class _Edge:
    source: str
    taps: list[tuple[int, torch.Tensor]]  # (delay, weight) of the nonzero taps
    conv: object | None  # ConvGeometry


class TorchEquivalent(nn.Module):
    """The network as float torch layers (module docstring): ``spiking`` False is the ANN baseline
    (ReLU, ``passes`` frames), True the SNN stepped over every frame."""

    def __init__(self, net: IntNetwork, spiking: bool, passes: int):
        super().__init__()
        self.spiking, self.passes, self.input = spiking, int(passes), net.input_name
        self.pops: list[Population] = [p for p in net.populations if not p.helper]
        names = {p.name for p in self.pops} | {net.input_name}
        self.edges: dict[str, list[_Edge]] = {}
        for p in list(self.pops):
            own = [s for s in net.projections_into(p.name) if not s.helper and s.source in names]
            if not own:  # a readout fed only by a helper (a spike count): not part of an ANN
                self.pops.remove(p)
                continue
            self.edges[p.name] = [self._edge(s, single=self.passes == 1) for s in own]
        sources = {p.name for p in net.populations if p.helper == "bias source"}
        for i, p in enumerate(self.pops):  # buffers, so .to(device) moves them
            self.register_buffer(f"bias{i}", torch.as_tensor(p.bias, dtype=torch.float32))
            current = torch.zeros(p.size)  # the bias sources' constant input (the always-on spike is 1)
            for s in net.projections_into(p.name):
                if s.source in sources and s.conv is None:
                    current += torch.as_tensor(np.asarray(s.weights), dtype=torch.float32).sum((0, 2)) * 2.0 ** s.weight_exp
            self.register_buffer(f"cbias{i}", current)
            for j, e in enumerate(self.edges[p.name]):
                for k, (_, w) in enumerate(e.taps):
                    self.register_buffer(f"w{i}_{j}_{k}", w)
        self.output = self.pops[-1].name

    @staticmethod
    def _edge(s: Projection, single: bool) -> _Edge:
        w = torch.as_tensor(np.asarray(s.weights), dtype=torch.float32) * 2.0 ** s.weight_exp
        taps = [(j, w[j]) for j in range(s.taps) if bool(w[j].any())]
        if single and taps:  # one pass on a static frame: every delay sees the same frame
            taps = [(0, torch.stack([t for _, t in taps]).sum(0))]
        return _Edge(s.source, taps, s.conv)

    def _weights(self, i: int, j: int) -> list[tuple[int, torch.Tensor]]:
        e = self.edges[self.pops[i].name][j]
        return [(d, getattr(self, f"w{i}_{j}_{k}")) for k, (d, _) in enumerate(e.taps)]

    @staticmethod
    def _project(w: torch.Tensor, x: torch.Tensor, conv) -> torch.Tensor:
        if conv is None:
            return x @ w.T
        frames = x.reshape(x.shape[0], *conv.in_shape)
        op = F.conv1d if conv.dims == 1 else F.conv2d
        y = op(frames, w, stride=conv.stride, padding=conv.padding, dilation=conv.dilation, groups=conv.groups)
        return y.reshape(x.shape[0], -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, input size) float -> the output population's activity after the last pass (B, n)."""
        hist: dict[str, list[torch.Tensor]] = {self.input: [x[:, t] for t in range(self.passes)]}
        state: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for t in range(self.passes):
            for i, p in enumerate(self.pops):
                acc = getattr(self, f"cbias{i}").expand(x.shape[0], -1)
                for j, e in enumerate(self.edges[p.name]):
                    for d, w in self._weights(i, j):
                        if t - d >= 0:
                            acc = acc + self._project(w, hist[e.source][t - d], e.conv)
                hist.setdefault(p.name, []).append(self._activate(i, p, acc, state))
        return hist[self.output][-1]

    def _activate(self, i_pop: int, p: Population, acc: torch.Tensor, state: dict) -> torch.Tensor:
        bias = getattr(self, f"bias{i_pop}")  # Loihi's bias enters the voltage, in units of 2^-6 of a_in
        if not self.spiking:
            y = acc + bias / 64.0
            return y if p.readout else torch.relu(y)
        i, v = state.get(p.name, (torch.zeros_like(acc), torch.zeros_like(acc)))
        i = i * (1.0 - (p.du + fx.DU_OFFSET) / fx.DECAY_UNITY) + acc * 64.0  # a_in << 6, as Loihi adds it
        v = v * (1.0 - p.dv / fx.DECAY_UNITY) + i + bias
        s = (v > p.vth * 64.0).to(acc.dtype) if not p.readout else torch.zeros_like(v)
        state[p.name] = (i, v * (1.0 - s))
        return v if p.readout else s


@dataclass
class Timing:
    batch: int
    runs: int
    latency_s: float  # median wall-clock per call (one batch)
    latency_min_s: float
    latency_max_s: float
    per_inference_s: float  # latency / batch
    throughput_per_s: float  # inferences per second at this batch
    energy_j: float | None = None  # the counter's energy over all timed runs (not the warm-up)


def measure(model: nn.Module, x: torch.Tensor, device: str, min_time_s: float = 1.0, warmup: int = 3,
            max_runs: int = 200, meter=None) -> Timing:
    """Median wall-clock of ``model(x)`` on ``device`` (x's batch), repeated until ``min_time_s``
    has passed (at least 5 runs) after ``warmup`` calls; CUDA is synchronised around each call.
    ``meter`` (``energy_meter.Meter``): its energy over the timed runs."""
    dev = torch.device(device)
    model = model.to(dev).eval()
    x = x.to(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    times: list[float] = []
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        sync()
        e0 = meter.read_j() if meter is not None else None
        start = time.perf_counter()
        while len(times) < 5 or (time.perf_counter() - start < min_time_s and len(times) < max_runs):
            t0 = time.perf_counter()
            model(x)
            sync()
            times.append(time.perf_counter() - t0)
    energy = meter.read_j() - e0 if meter is not None else None
    med = statistics.median(times)
    b = int(x.shape[0])
    return Timing(batch=b, runs=len(times), latency_s=med, latency_min_s=min(times), latency_max_s=max(times),
                  per_inference_s=med / b, throughput_per_s=b / med, energy_j=energy)
