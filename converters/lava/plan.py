"""How a network is laid out in time and memory before Lava builds it: each population's lag
behind the input (``schedule``), and how many samples run side by side in one compiled network
(``plan_lanes``), from the model's size and the memory the system has. ``builder`` builds and runs.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lmu2neuro.core.errors import UserError
from lmu2neuro.core.intnet import IntNetwork, Projection

# Messages a Lava channel buffers (Lava's default is 64). The Loihi protocol's barrier after
# every step lets no process run ahead of another, so at most one message per channel waits:
# a small buffer saves 60 copies of every (lanes, n) message in shared memory.
CHANNEL_SLOTS = 4
# The automatic number of lanes, counted in state values (neurons plus delay-line entries) over
# all lanes: enough that the per-step handshake is a small part of a step. Beyond it the gain
# flattens while memory grows linearly (benchmarks/lava_speed.py: scv2, 38,436 values a lane,
# runs 12.6 samples/s at 32 lanes, 31.4 at 128, 41.5 at 512).
LANE_VALUES = 1 << 24
# Memory a Lava worker process costs whatever it holds (the pages of its Python runtime that it
# no longer shares with the builder's process): 13-15 MiB per worker measured on this machine
# (benchmarks/lava_speed.py, workers' private memory).
PROCESS_BYTES = 16 << 20
# Of the memory the system reports available, the share an automatic plan may take, and the
# share beyond which an explicit --lava-batch is refused.
AUTO_MEMORY_SHARE, MAX_MEMORY_SHARE = 0.25, 0.8


@dataclass
class Schedule:
    steps: int  # T: frames per sample
    samples: int
    latency: dict[str, int]  # population -> lag behind the input, in Lava steps
    period: int  # Lava steps per round
    total_steps: int
    lanes: int = 1  # samples side by side
    rounds: int = 1  # ceil(samples / lanes)

    def extra_delay(self, proj: Projection, input_name: str) -> int:
        src = 0 if proj.source == input_name else self.latency[proj.source]
        return self.latency[proj.target] - src - 1


def schedule(net: IntNetwork, steps: int, samples: int, lanes: int = 1) -> Schedule:
    latency: dict[str, int] = {}
    for pop in net.populations:  # topological order
        if net.bias_driven(pop.name):  # its input arrives as a bias, in the step itself
            latency[pop.name] = 0
            continue
        incoming = [s for s in net.projections_into(pop.name) if s.source != pop.name]
        lags = [0 if s.source == net.input_name else latency[s.source] for s in incoming]
        latency[pop.name] = max(lags, default=0) + 1
    lanes = max(1, min(int(lanes), samples))
    rounds = math.ceil(samples / lanes)
    total = rounds * steps + max(latency.values())
    return Schedule(steps, samples, latency, steps, total, lanes, rounds)


# -- how many lanes ------------------------------------------------------------------------------------
def _taps_kept(net: IntNetwork, proj: Projection, steps: int, sched: Schedule) -> int:
    extra = sched.extra_delay(proj, net.input_name)
    return max(1, min(proj.taps, steps) + extra)


def lane_values(net: IntNetwork, steps: int) -> int:
    """State values one lane holds: every neuron, and every delay line entry (twice: a ring)."""
    sched = schedule(net, steps, 1)
    ring = sum(2 * _taps_kept(net, p, steps, sched) * net.size_of(p.source) for p in net.projections)
    return sum(p.size for p in net.populations) + ring


def lane_bytes(net: IntNetwork, steps: int) -> int:
    """Memory one lane costs, summed over every process: estimated from what the ProcessModels
    allocate (assumed, not measured per allocation; benchmarks/lava_speed.py compares the plan
    with the workers' measured peak)."""
    sched = schedule(net, steps, 1)
    total = net.input_size * (8 + 4 * CHANNEL_SLOTS)  # the source's frame and its channel
    for pop in net.populations:
        # Lava's u, v, bias (int32/int16) and about ten int64 temporaries of its update and our
        # counting, one incoming sum per projection, and the spike channel
        fan_in = len(net.projections_into(pop.name))
        total += pop.size * (12 + 10 * 8 + 8 * fan_in + 4 * CHANNEL_SLOTS)
    for proj in net.projections:
        n_in, n_out = net.size_of(proj.source), net.size_of(proj.target)
        taps = _taps_kept(net, proj, steps, sched)
        ring = 2 * taps * n_in * 8
        total += ring + 8 * (n_in + 3 * n_out) + 8 * n_out * CHANNEL_SLOTS
        if proj.conv is not None:
            # TappedConv's windows as one matrix (positions, delays x C_in x kernel) per step,
            # and its padded frames
            positions = n_out // proj.out_shape[0]
            total += 8 * positions * taps * proj.conv.in_shape[0] * int(np.prod(proj.weights.shape[3:]))
            total += 8 * taps * proj.conv.in_shape[0] * int(np.prod([n + 2 * p for n, p in
                                                                     zip(proj.conv.in_shape[1:], proj.conv.padding)]))
    return total


def run_bytes(net: IntNetwork, steps: int, samples: int) -> int:
    """Memory a run costs whatever the lanes: the worker processes (one per population and
    projection, the source, Lava's runtime service and its shared-memory manager), the weights
    (held by the builder and by the process, as given and as the sum's type), the input file and
    the records of every sample."""
    processes = (len(net.populations) + len(net.projections) + 3) * PROCESS_BYTES
    weights = sum(p.weights[:steps].size for p in net.projections) * 24
    frames = samples * steps * net.input_size * 8
    per_sample = samples * len(net.populations) * 4 * 8
    trace = samples * steps * net.population(net.output).size * 8 * 2  # the file and the Measurement
    return processes + weights + frames + per_sample + trace


def available_memory() -> int | None:
    """Bytes the system says a new allocation can take (MemAvailable, or the cgroup's room if
    smaller); None where neither is known."""
    found = []
    with contextlib.suppress(OSError, ValueError, StopIteration):
        with open("/proc/meminfo") as f:
            line = next(line for line in f if line.startswith("MemAvailable:"))
        found.append(int(line.split()[1]) * 1024)
    with contextlib.suppress(OSError, ValueError):
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if limit != "max":
            found.append(int(limit) - int(Path("/sys/fs/cgroup/memory.current").read_text()))
    return min(found) if found else None


def check_lanes_value(value) -> int | None:
    """None (choose automatically) or a positive integer; anything else is a UserError."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    if isinstance(value, str) and value.strip().lstrip("+").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise UserError(f"--lava-batch {value}: expected a positive integer (samples side by side in "
                        "one Lava network) or 'auto'")
    return int(value)


def plan_lanes(net: IntNetwork, samples: int, steps: int, requested=None, available: int | None = None) -> int:
    """Samples side by side in one Lava network: ``requested`` if it fits in memory (else a
    UserError, before any process starts), or chosen from the model's size and the memory."""
    requested = check_lanes_value(requested)
    per_lane = lane_bytes(net, steps)
    fixed = run_bytes(net, steps, samples)
    room = available_memory() if available is None else available
    gib = 2.0 ** 30
    lanes = min(requested or 1, samples)
    need = fixed + lanes * per_lane
    if room is not None and need > MAX_MEMORY_SHARE * room:
        fits = max(0, int((MAX_MEMORY_SHARE * room - fixed) // per_lane))
        asked = (f"--lava-batch {requested}: {lanes} samples side by side need about {need / gib:.1f} GiB for this "
                 "model" if requested else
                 f"Lava needs about {need / gib:.1f} GiB for this model even one sample at a time")
        raise UserError(
            f"{asked} ({per_lane / 2**20:.2f} MiB per sample "
            f"side by side, {fixed / gib:.2f} GiB for the worker processes, weights, inputs and records), more than "
            f"{MAX_MEMORY_SHARE:.0%} of the {room / gib:.1f} GiB available; "
            + (f"at most {fits} fit" if fits else "use fewer --samples"))
    if requested is not None:
        return lanes
    lanes = max(1, LANE_VALUES // max(1, lane_values(net, steps)))
    if room is not None:
        lanes = min(lanes, max(1, int((AUTO_MEMORY_SHARE * room - fixed) // per_lane)))
    lanes = min(lanes, samples)
    rounds = math.ceil(samples / lanes)
    return math.ceil(samples / rounds)  # the same rounds, with the lanes spread evenly
