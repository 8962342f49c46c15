"""IntNetwork -> Lava process graph, run in fixed_pt (bit-accurate) or floating_pt, B samples side by side.

Mapping (each population and projection of lmu2neuro.core.intnet):
- population -> its kind's process (``neuron_processes.PROCESSES``; a sigma-delta population ->
  GatedSigmaDelta, Lava's SigmaDelta with lanes); a CUBA LIF -> GatedLIF (Lava's LIF, bit-accurate model subclassed: same arithmetic, plus a
  per-sample window and in-graph spike counting), du/dv/vth/bias as given, reset to zero or
  (Population.reset == "subtract", Loihi 2) by subtracting the threshold; Population.refractory
  held steps after a spike as Lava's LIFRefractory holds them (written in GatedLIF's own models:
  Lava's LIFRefractory has a floating-point model only);
- dense projection -> TappedDense, one weight matrix per delay, the sum shifted by weight_exp as
  Lava's Dense does (a plain dense layer is its one-tap case: Lava's Dense takes no batch
  dimension); graded when fed by the input;
- convolutional projection (proj.conv) -> Lava's own Conv (lava.proc.conv) where it computes
  exactly our semantics, else TappedConv (procs/tapped_conv: one kernel per delay, lanes; the
  kernel is stored once, never expanded to its dense matrix). Lava's Conv is used when
  ``lava_conv_problem`` finds nothing against it: one sample at a time (it has no lanes), one
  delay after alignment (no delay line), not recurrent (nothing would keep a sample's last spikes
  out of the next sample), weight_exp >= 0 in fixed_pt (its fixed-point model never
  applies weight_exp, so a positive one is folded into the kernel; a negative one cannot be),
  sums below 2**23 (it wraps them at 24 bits) and geometry values below 128 (int8 Vars). Its
  frames are (W, H, C) and it convolves, ours are C-order (C, H, W) and correlate: the ports are
  reshaped and transposed (Lava's virtual ports) and the kernel is flipped. A 1-D convolution
  is the 2-D one with H = 1, in both processes;
- input -> BatchedSource sending the quantized frames as integer payloads.

Lanes: every process holds B ("lanes") independent copies of its state, shaped (B, n), and one
Lava step advances all of them. Lava's cost is a per-step handshake between its processes (one
OS process per Lava Process), paid once per step whatever the number of neurons, so B samples
side by side cost about one sample's handshakes. Lane b of round r runs sample r * B + b.

Latency: every Lava connection delivers one step late. Population P lags the input by
L(P) = max over its inputs of L(source) + 1, and a projection whose source lags less gets
L(P) - L(source) - 1 extra zero taps, so all inputs of a neuron arrive in the same step as in
the latency-free IntNetwork semantics. Population P at Lava step t + L(P) is the reference at t.

Streaming: round r occupies input steps [r * T, (r + 1) * T), back to back. Each population
starts its window from zero state, and a TappedDense (TappedConv) delivers a delayed spike only into the
round it came from, so nothing of one sample reaches the next; taps at delays >= T can never
act within a sample and are dropped. One compile serves all rounds.

Inputs and results travel through .npy files in a private run folder (in /dev/shm where it
exists) that the processes map: Lava 0.10 moves a Var between processes one element per message
(``PyLoihiProcessModel._get_var``/``_set_var``), about 20 us each, which for the readout trace
of 1,000 scv2 samples (4.5 million values) would take longer than the run.
"""

from __future__ import annotations

import contextlib
import gc
import math
import multiprocessing
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import converters.lava  # noqa: F401  (the compatibility layer before any Lava import)
from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core.atomic import atomic_path
from lmu2neuro.core.errors import UserError
from lmu2neuro.core.intnet import IntNetwork, Projection, check_reset_interval
from lmu2neuro.core.measurement import Measurement
from converters.lava.neuron_processes import process_for

TAGS = ("fixed_pt", "floating_pt")
CONV_PROCESSES = ("auto", "custom")
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


# -- the process graph ---------------------------------------------------------------------------------
def aligned_weights(proj: Projection, extra: int, steps: int) -> np.ndarray:
    """The projection's taps as Lava delivers them: at most a sample's worth, with Lava's one
    step of latency taken off a population's own spikes (extra < 0: the first delay) or ``extra``
    zero taps put in front to align a shorter path."""
    w = np.asarray(proj.weights, dtype=np.int64)[:steps]
    if extra < 0:
        w = w[-extra:]
    if extra > 0:
        w = np.concatenate([np.zeros((extra,) + w.shape[1:], dtype=np.int64), w])
    return w


def _frame2d(proj: Projection, w: np.ndarray):
    """A convolution in 2-D form: a 1-D frame (C, L) is (C, 1, L) with kernels (.., 1, k)."""
    g = proj.conv
    if g.dims == 2:
        return w, g.in_shape, g.stride, g.padding, g.dilation
    return (w[:, :, :, None, :], (g.in_shape[0], 1, g.in_shape[1]), (1,) + g.stride, (0,) + g.padding,
            (1,) + g.dilation)


# Lava's Conv stores kernel size, stride, padding, dilation and groups as int8 Vars
# (lava.proc.conv.models.AbstractPyConvModel), and its fixed-point sum wraps at 24 bits
LAVA_CONV_INT8_MAX = 127
LAVA_CONV_SUM_BITS = 24


def lava_conv_problem(proj: Projection, w: np.ndarray, tag: str, lanes: int, input_max: int) -> str | None:
    """Why Lava's own Conv process (lava.proc.conv, PyConvModelFixed / PyConvModelFloat) would not
    compute exactly this projection's synaptic input, with ``w`` its taps as aligned for Lava
    (aligned_weights); None when it does.

    Lava's fixed-point Conv model sums in float64 (scipy convolve2d, exact below 2**53), casts to
    int32 and wraps the sum at 24 bits; it never applies weight_exp. So it is exact for one
    sample at a time (it has no lanes), one delay (no delay line) from another population (its
    own spikes would cross from one sample into the next), a weight exponent >= 0 (folded
    into the kernel: sum(w << e) = sum(w) << e), sums below 2**23 (the wrap never acts), and
    geometry values that its int8 Vars hold.
    """
    if proj.conv is None:
        return "dense projection"
    if lanes != 1:
        return f"{lanes} samples side by side (Lava's Conv holds one sample)"
    if w.shape[0] != 1:
        return f"{w.shape[0]} delay taps after alignment (Lava's Conv has no delay line)"
    if proj.source == proj.target:
        # a population's spikes of a sample's last step would reach its own first step of the
        # next sample: only TappedConv's delay line knows the rounds apart
        return "recurrent (Lava's Conv cannot keep one sample's last spikes out of the next)"
    if tag == "fixed_pt":
        if proj.weight_exp < 0:
            return (f"weight_exp {proj.weight_exp} < 0 (Lava's fixed-point Conv ignores weight_exp; a right "
                    "shift of the sum cannot be folded into the kernel)")
        per_channel = np.abs(w).sum(axis=(0, 2) + tuple(range(3, w.ndim))).max(initial=0)
        bound = int(per_channel) * input_max << proj.weight_exp
        if bound >= 1 << (LAVA_CONV_SUM_BITS - 1):
            return f"sums up to {bound} reach 2**{LAVA_CONV_SUM_BITS - 1}, where Lava's Conv wraps them"
    g = proj.conv
    values = tuple(w.shape[3:]) + g.stride + g.padding + g.dilation + (g.groups,)
    if max(values) > LAVA_CONV_INT8_MAX:
        return (f"kernel/stride/padding/dilation/groups value {max(values)} > {LAVA_CONV_INT8_MAX} (Lava's Conv "
                "stores them as int8)")
    return None


@dataclass
class _Connection:
    """A synapse process and how it is wired: the source's flat (lanes, n) spikes reach ``s_in``
    through ``into`` (virtual ports: reshape, transpose) and ``a_out`` reaches the target's flat
    input through ``out_of``."""

    proc: object
    into: tuple = ()  # ("reshape", shape) / ("transpose", axes) applied to the source port
    out_of: tuple = ()

    def attach(self, source_port, target_port) -> None:
        for op, arg in self.into:
            source_port = getattr(source_port, op)(arg)
        source_port.connect(self.proc.s_in)
        port = self.proc.a_out
        for op, arg in self.out_of:
            port = getattr(port, op)(arg)
        port.connect(target_port)


def _connection(proj: Projection, extra: int, graded: bool, tag: str, sched: Schedule, source_offset: int,
                target_offset: int, input_max: int, conv_process: str = "auto") -> _Connection:
    from converters.lava.procs.tapped_dense.process import TappedDense

    w = aligned_weights(proj, extra, sched.steps)
    stream = dict(source_offset=source_offset, target_offset=target_offset, period=sched.period,
                  lanes=sched.lanes, input_max=input_max if graded else 1)
    bits = 8 if graded else 0
    exp = proj.weight_exp
    if tag == "floating_pt":  # float LIF does not shift its input by 6 bits: fold it in
        w, exp = w.astype(float) * 2.0 ** (proj.weight_exp + fx.ACT_SHIFT), 0
    if proj.conv is not None:
        if conv_process == "auto" and lava_conv_problem(proj, w, tag, sched.lanes, stream["input_max"]) is None:
            return _lava_conv(proj, w, exp, bits)
        from converters.lava.procs.tapped_conv.process import TappedConv

        w2, in_shape, stride, padding, dilation = _frame2d(proj, w)
        return _Connection(TappedConv(weights=w2, in_shape=in_shape, stride=stride, padding=padding,
                                      dilation=dilation, groups=proj.conv.groups, weight_exp=exp,
                                      num_message_bits=bits, name=proj.name, **stream))
    return _Connection(TappedDense(weights=w, weight_exp=exp, num_message_bits=bits, name=proj.name, **stream))


def _lava_conv(proj: Projection, w: np.ndarray, exp: int, bits: int) -> _Connection:
    """Lava's own Conv for one sample: its frames are (X, Y, C) = (W, H, C) and it convolves (it
    flips the kernel), ours are C-order (C, H, W) and correlate; so the flat ports are reshaped and
    transposed on the way in and out, and the kernel is flipped and laid out (C_out, kW, kH, C_in/g).
    A weight exponent >= 0 is folded into the kernel (lava_conv_problem)."""
    from lava.proc.conv.process import Conv

    w2, in_shape, stride, padding, dilation = _frame2d(proj, w)
    kernel = w2[0][:, :, ::-1, ::-1].transpose(0, 3, 2, 1)
    kernel = np.ascontiguousarray(kernel * 2.0 ** exp if kernel.dtype.kind == "f" else kernel << exp)
    c, h, wd = in_shape
    out = proj.out_shape if proj.conv.dims == 2 else (proj.out_shape[0], 1, proj.out_shape[1])
    conv = Conv(weight=kernel, weight_exp=0, input_shape=(wd, h, c), padding=padding[::-1], stride=stride[::-1],
                dilation=dilation[::-1], groups=proj.conv.groups, num_message_bits=bits, name=proj.name)
    n_out = int(np.prod(out))
    return _Connection(conv, into=(("reshape", (c, h, wd)), ("transpose", (2, 1, 0))),
                       out_of=(("transpose", (2, 1, 0)), ("reshape", (1, n_out))))


def _run_folder() -> Path:
    shm = Path("/dev/shm")
    where = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    # named after this process, so that a leftover can be traced to the run that left it
    return Path(tempfile.mkdtemp(prefix=f"lmu2neuro-lava-{os.getpid()}-", dir=where))


def _records(folder: Path, net: IntNetwork, sched: Schedule, tag: str) -> dict[str, dict[str, str]]:
    """Create every population's record files (zeros), return their paths by population."""
    from converters.lava.procs.gating import SAMPLE_COLUMNS

    trace_type = np.int64 if tag == "fixed_pt" else np.float64
    out = {}
    for i, pop in enumerate(net.populations):
        shapes = {"sample": ((sched.samples, len(SAMPLE_COLUMNS)), np.int64), "neuron": ((pop.size,), np.int64),
                  "step": ((sched.steps,), np.int64), "raster0": ((sched.steps, pop.size), np.int8)}
        if _record(net, pop):
            shapes["trace"] = ((sched.samples, sched.steps, pop.size), trace_type)
        paths = {}
        for kind, (shape, dtype) in shapes.items():
            path = folder / f"pop{i}.{kind}.npy"
            with atomic_path(path) as tmp:
                np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape).flush()
            paths[kind] = str(path)
        out[pop.name] = paths
    return out


def run_lava(net: IntNetwork, x_int: np.ndarray, tag: str = "fixed_pt", progress: bool = True,
             chunk_samples: int = 10, lanes: int | None = None, conv_process: str = "auto",
             reset_interval: int | None = None, reset_offset: int = 0) -> Measurement:
    """Stream quantized inputs (samples, T, input_size) through one compiled Lava network, ``lanes``
    samples side by side (None: plan_lanes chooses from the model's size and the memory).
    ``conv_process``: "auto" runs a convolution in Lava's own Conv where that is exact
    (lava_conv_problem), else in TappedConv; "custom" always in TappedConv. With
    ``net.bias_input`` the inputs are that population's bias mantissas, set in its GatedLIF every
    step; ``reset_interval`` / ``reset_offset`` as ``core.intnet.reset_steps``.

    The runtime is stopped on every path, errors and Ctrl-C included.
    """
    if tag not in TAGS:
        raise ValueError(f"tag {tag!r}: expected one of {TAGS}")
    if conv_process not in CONV_PROCESSES:
        raise ValueError(f"conv_process {conv_process!r}: expected one of {CONV_PROCESSES}")
    x = np.asarray(x_int)
    samples, steps, _ = x.shape
    if samples < 1 or steps < 1:
        raise ValueError(f"input shape {x.shape}: expected at least one sample of at least one step")
    for pop in net.populations:
        process_for(pop)  # a kind without a process here: refused before anything starts
    lanes = plan_lanes(net, samples, steps, lanes)
    sched = schedule(net, steps, samples, lanes)
    resets = dict(zip(("reset_interval", "reset_offset"), check_reset_interval(reset_interval, reset_offset)))

    folder = _run_folder()
    before = set(multiprocessing.active_children())
    source = None
    timing = {}
    kinds: dict[str, str] = {}
    started = time.perf_counter()
    try:
        source, records = _build(net, x, sched, tag, folder, conv_process, kinds, resets)
        result = _run(net, source, records, sched, tag, progress, chunk_samples, timing, started)
    finally:
        try:
            if source is not None:
                source.stop()
        finally:
            try:
                _reap(before)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
    timing["wall_s"] = time.perf_counter() - started
    timing["steps"] = sched.total_steps
    timing["steps_per_second"] = sched.total_steps / max(timing["run_s"], 1e-9)
    timing["samples_per_second"] = samples / max(timing["run_s"], 1e-9)
    timing["lanes"] = sched.lanes
    timing["rounds"] = sched.rounds
    timing["latency_steps"] = dict(sched.latency)
    timing["period_steps"] = sched.period
    timing["processes"] = kinds  # projection -> the Lava Process that ran it
    result.timing = timing
    return result


def _build(net: IntNetwork, x: np.ndarray, sched: Schedule, tag: str, folder: Path, conv_process: str,
           kinds: dict, resets: dict):
    """The process graph; returns (the process to run and stop: the source, or the population the
    input drives through its bias when nothing takes it as a current, records)."""
    from converters.lava.procs.batched_source.process import BatchedSource

    frames = folder / "input.npy"
    x_max = int(np.abs(x).max())
    driven = net.bias_input.target if net.bias_input is not None else None
    if driven is not None:  # the bias itself: floating_pt's LIF takes it with its exponent applied
        x = x * 2.0 ** net.population(driven).bias_exp if tag == "floating_pt" else x
    with atomic_path(frames) as tmp, open(tmp, "wb") as f:
        np.save(f, x.astype(np.float64 if tag == "floating_pt" else np.int16 if x_max < 1 << 15 else np.int64))
    source = None if driven is not None else BatchedSource(
        path=str(frames), lanes=sched.lanes, size=net.input_size, steps=sched.steps, samples=sched.samples)
    records = _records(folder, net, sched, tag)
    procs = {}
    for pop in net.populations:
        procs[pop.name] = process_for(pop)(pop, tag, lanes=sched.lanes, steps=sched.steps,
                                           offset=sched.latency[pop.name], samples=sched.samples,
                                           records=records[pop.name], record=_record(net, pop),
                                           bias_frames=str(frames) if pop.name == driven else None, **resets)
    for proj in net.projections:
        src_offset = 0 if proj.source == net.input_name else sched.latency[proj.source]
        # the largest |value| a source sends: the input's, or a graded kind's 24-bit payload bound
        source_max = x_max if proj.source == net.input_name else fx.STATE_MAX
        conn = _connection(proj, sched.extra_delay(proj, net.input_name), net.is_graded(proj), tag, sched,
                           src_offset, sched.latency[proj.target], source_max, conv_process)
        conn.attach((source if proj.source == net.input_name else procs[proj.source]).s_out, procs[proj.target].a_in)
        kinds[proj.name] = type(conn.proc).__name__
    return (procs[driven] if source is None else source), records


def _run(net, source, records, sched, tag, progress, chunk_samples, timing, started) -> Measurement:
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg

    cfg = Loihi2SimCfg(select_tag=tag)
    compile_config = {"pypy_channel_size": CHANNEL_SLOTS}
    # Lava forks its worker processes when the first run starts. They are started with
    # Ctrl-C deferred, so a SIGINT to the terminal's process group stops only this
    # process, which then stops the runtime in order (a worker killed by SIGINT would
    # leave the runtime waiting for it forever); one that arrives while they start is
    # raised here once they have.
    with _sigint_deferred(), _gc_frozen():
        source.run(condition=RunSteps(num_steps=1), run_cfg=cfg, compile_config=compile_config)
    timing["compile_s"] = time.perf_counter() - started
    done = 1
    fill = max(sched.latency.values())
    per_call = max(1, math.ceil(chunk_samples / sched.lanes))  # rounds between progress updates
    bar = _progress(sched.samples, progress)
    for rnd in range(per_call, sched.rounds + per_call, per_call):
        end = min(rnd * sched.period + fill, sched.total_steps)  # the output has finished round rnd
        if end > done:
            source.run(condition=RunSteps(num_steps=end - done), run_cfg=cfg)
            done = end
        bar.update(min(rnd * sched.lanes, sched.samples) - bar.n)
    bar.close()
    timing["run_s"] = time.perf_counter() - started - timing["compile_s"]
    return _read(net, records, tag)


def _record(net: IntNetwork, pop) -> str | None:
    if pop.name != net.output:
        return None
    return "voltage" if pop.readout else "count"


@contextlib.contextmanager
def _sigint_deferred():
    """SIGINT only noted while the block runs (forked workers inherit the handler, so in them
    it is never raised), then raised in this process as KeyboardInterrupt once the block ends."""
    caught = []
    previous = signal.signal(signal.SIGINT, lambda *_: caught.append(True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


@contextlib.contextmanager
def _gc_frozen():
    """This process's objects out of the garbage collector's sight while Lava forks its workers:
    a worker's collector would otherwise touch every object it inherited, copying the pages
    that hold them (the memory and the start-up time of dozens of workers)."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _reap(before: set, grace_s: float = 5.0) -> None:
    """Terminate any Lava worker this run started that stop() left behind."""
    for proc in set(multiprocessing.active_children()) - before:
        proc.join(grace_s)
        if proc.is_alive():
            proc.terminate()
            proc.join(grace_s)


def _progress(total, enabled):
    from tqdm import tqdm

    return tqdm(total=total, unit="sample", desc="lava", disable=not enabled, leave=False)


def _read(net, records, tag) -> Measurement:
    """The record files the processes wrote, as a Measurement (the runtime has paused: every
    process finished every step)."""
    from converters.lava.procs.gating import SAMPLE_COLUMNS

    def load(name, kind):
        return np.load(records[name][kind])

    names = [p.name for p in net.populations]
    col = {n: dict(zip(SAMPLE_COLUMNS, load(n, "sample").T.copy())) for n in names}
    trace = load(net.output, "trace")
    return Measurement(
        backend="lava" if tag == "fixed_pt" else f"lava-{tag}",
        spike_counts={n: load(n, "neuron") for n in names},
        sample_spikes={n: col[n]["spikes"] for n in names},
        step_spikes={n: load(n, "step") for n in names},
        fingerprints={n: col[n]["fingerprint"] for n in names},
        wrapped={n: int(col[n]["wrapped"].sum()) for n in names},
        peak_current={n: int(col[n]["peak_current"].max(initial=0)) for n in names},
        raster0={n: load(n, "raster0").astype(bool) for n in names},
        readout_trace=trace,
    )
