"""Reference integer simulator: an IntNetwork run in torch, batched, bit-exact with Lava fixed_pt.

Populations are in topological order and projections carry their delays as taps, so a whole
sequence is computed one population at a time: every projection into a population is a causal
integer convolution over time (exact in float64 for the magnitudes Loihi allows), then the LIF
recurrence scans the steps for the whole batch at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core.intnet import IntNetwork, Projection


@dataclass
class SimResult:
    spikes: dict[str, torch.Tensor]  # population -> (batch, T, n) bool; readout: all False
    scores: torch.Tensor  # (batch, n_out) int64: output score after the last step (intnet docstring)
    readout_trace: torch.Tensor  # (batch, T, n_out) int64: output score after each step
    wrapped: dict[str, int]  # population -> count of (sample, step, neuron) whose current wrapped
    peak_current: dict[str, int]  # population -> largest |current| before the 24-bit wrap

    @property
    def predictions(self) -> torch.Tensor:
        return self.scores.argmax(dim=1)


def projection_current(proj: Projection, x: torch.Tensor) -> torch.Tensor:
    """shift(sum_j W[j] @ x[t - j], exp) for x of shape (batch, T, n_in); returns int64 (batch, T, n_out)."""
    w = torch.as_tensor(np.asarray(proj.weights), dtype=torch.float64)
    xf = x.to(torch.float64)
    steps = x.shape[1]
    acc = torch.zeros(x.shape[0], steps, w.shape[1], dtype=torch.float64)
    for j in range(min(proj.taps, steps)):
        if torch.count_nonzero(w[j]) == 0:
            continue
        acc[:, j:] += xf[:, : steps - j] @ w[j].T
    # Products of int8 inputs and 8-bit weights summed over taps and fan-in stay far below 2**53.
    return fx.shift_by_exp(acc.round().to(torch.int64), proj.weight_exp)


def simulate(net: IntNetwork, x_int: torch.Tensor | np.ndarray) -> SimResult:
    """Run a batch of quantized inputs (batch, T, input_size) through the network."""
    x = torch.as_tensor(np.asarray(x_int), dtype=torch.int64)
    if x.ndim != 3 or x.shape[2] != net.input_size:
        raise ValueError(f"input shape {tuple(x.shape)}, expected (batch, T, {net.input_size})")
    batch, steps, _ = x.shape
    signals: dict[str, torch.Tensor] = {net.input_name: x}
    spikes: dict[str, torch.Tensor] = {}
    wrapped: dict[str, int] = {}
    peak: dict[str, int] = {}
    trace = torch.zeros(batch, steps, net.population(net.output).size, dtype=torch.int64)
    for pop in net.populations:
        a_in = torch.zeros(batch, steps, pop.size, dtype=torch.int64)
        recurrent = []
        for proj in net.projections_into(pop.name):
            if proj.source == pop.name:
                recurrent.append((torch.as_tensor(np.asarray(proj.weights), dtype=torch.int64), proj.weight_exp))
            else:
                a_in += projection_current(proj, signals[proj.source])
        u = torch.zeros(batch, pop.size, dtype=torch.int64)
        v = torch.zeros_like(u)
        bias = torch.as_tensor(pop.bias, dtype=torch.int64)
        out = torch.zeros(batch, steps, pop.size, dtype=torch.bool)
        vs = torch.zeros(batch, steps, pop.size, dtype=torch.int64) if pop.readout else None
        n_wrapped, peak_u = 0, 0
        for t in range(steps):
            a_t = a_in[:, t]
            for w, exp in recurrent:  # own spikes of earlier steps (tap 0 is zero)
                acc = torch.zeros_like(a_t)
                for j in range(1, min(w.shape[0], t + 1)):
                    acc += out[:, t - j].to(torch.int64) @ w[j].T
                a_t = a_t + fx.shift_by_exp(acc, exp)
            r = fx.lif_step(u, v, a_t, pop.du, pop.dv, pop.vth, bias)
            u, v = r.u, r.v
            out[:, t] = r.spikes
            n_wrapped += int(r.wrapped.sum())
            if r.u_unwrapped.numel():
                peak_u = max(peak_u, int(r.u_unwrapped.abs().max()))
            if vs is not None:
                vs[:, t] = v
        wrapped[pop.name] = n_wrapped
        peak[pop.name] = peak_u
        spikes[pop.name] = out
        signals[pop.name] = out.to(torch.int64)
        if pop.name == net.output:
            trace = vs if pop.readout else out.to(torch.int64).cumsum(dim=1)
    return SimResult(spikes=spikes, scores=trace[:, -1], readout_trace=trace, wrapped=wrapped,
                     peak_current=peak)
