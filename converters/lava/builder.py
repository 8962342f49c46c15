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
from lmu2neuro.core.intnet import IntNetwork, Projection, check_reset_interval
from lmu2neuro.core.measurement import Measurement
from converters.lava.neuron_processes import process_for
from converters.lava.plan import CHANNEL_SLOTS, Schedule, plan_lanes, schedule

TAGS = ("fixed_pt", "floating_pt")
CONV_PROCESSES = ("auto", "custom")
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
