"""IntNetwork -> Lava process graph, run in fixed_pt (bit-accurate) or floating_pt.

Mapping (each population and projection of lmu2neuro.core.intnet):
- population -> GatedLIF (Lava's LIF, bit-accurate model subclassed: same arithmetic, plus a
  per-sample window and in-graph spike counting), du/dv/vth/bias as given;
- projection with one tap and no extra delay -> Lava's Dense (graded when fed by the input);
- projection with several taps (temporal convolution, LMU memory FIR), an alignment delay, or
  from a population to itself (recurrence) -> TappedDense, one weight matrix per delay, the sum
  shifted by weight_exp as Dense does;
- input -> Lava's RingBuffer sending the quantized frames as integer payloads.

Latency: every Lava connection delivers one step late. Population P lags the input by
L(P) = max over its inputs of L(source) + 1, and a projection whose source lags less gets
L(P) - L(source) - 1 extra zero taps, so all inputs of a neuron arrive in the same step as in
the latency-free IntNetwork semantics. Population P at Lava step t + L(P) is the reference at t.

Streaming: sample k occupies input steps [k * T, (k + 1) * T), back to back. Each population
starts its window from zero state, and a TappedDense delivers a delayed spike only into the
sample it came from, so nothing of one sample reaches the next; taps at delays >= T can never
act within a sample and are dropped. One compile serves all samples.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import signal
import time
from dataclasses import dataclass

import numpy as np

import converters.lava  # noqa: F401  (the compatibility layer before any Lava import)
from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core.intnet import IntNetwork, Projection
from lmu2neuro.core.measurement import Measurement

TAGS = ("fixed_pt", "floating_pt")


@dataclass
class Schedule:
    steps: int  # T: frames per sample
    samples: int
    latency: dict[str, int]  # population -> lag behind the input, in Lava steps
    period: int  # Lava steps per sample
    total_steps: int

    def extra_delay(self, proj: Projection, input_name: str) -> int:
        src = 0 if proj.source == input_name else self.latency[proj.source]
        return self.latency[proj.target] - src - 1


def schedule(net: IntNetwork, steps: int, samples: int) -> Schedule:
    latency: dict[str, int] = {}
    for pop in net.populations:  # topological order
        incoming = [s for s in net.projections_into(pop.name) if s.source != pop.name]
        lags = [0 if s.source == net.input_name else latency[s.source] for s in incoming]
        latency[pop.name] = max(lags, default=0) + 1
    total = samples * steps + max(latency.values())
    return Schedule(steps, samples, latency, steps, total)


def _float_params(pop):
    return dict(du=min(fx.current_removed(pop.du), 1.0), dv=fx.voltage_removed(pop.dv),
                vth=float(pop.vth << fx.ACT_SHIFT), bias_mant=pop.bias.astype(float), bias_exp=0)


def _connection(proj: Projection, extra: int, graded: bool, tag: str, sched: Schedule, source_offset: int,
                target_offset: int):
    from lava.proc.dense.process import Dense

    from converters.lava.procs.tapped_dense.process import TappedDense

    w = np.asarray(proj.weights, dtype=np.int64)[: sched.steps]
    stream = dict(source_offset=source_offset, target_offset=target_offset, period=sched.period)
    recurrent = extra < 0  # a population's own spikes: Lava's one-step latency is the first delay
    if recurrent:
        w = w[-extra:]
    if extra > 0:
        w = np.concatenate([np.zeros((extra,) + w.shape[1:], dtype=np.int64), w])
    bits = 8 if graded else 0
    if tag == "floating_pt":  # float LIF does not shift its input by 6 bits: fold it in
        wf = w.astype(float) * 2.0 ** (proj.weight_exp + fx.ACT_SHIFT)
        if wf.shape[0] == 1 and not recurrent:
            return Dense(weights=wf[0], num_message_bits=bits, name=proj.name)
        return TappedDense(weights=wf, weight_exp=0, num_message_bits=bits, name=proj.name, **stream)
    # Lava's Dense would carry a spike across a sample boundary in a loop; TappedDense masks it
    if w.shape[0] == 1 and not recurrent:
        return Dense(weights=w[0], weight_exp=proj.weight_exp, num_message_bits=bits, name=proj.name)
    return TappedDense(weights=w, weight_exp=proj.weight_exp, num_message_bits=bits, name=proj.name, **stream)


def run_lava(net: IntNetwork, x_int: np.ndarray, tag: str = "fixed_pt", progress: bool = True,
             chunk_samples: int = 10) -> Measurement:
    """Stream quantized inputs (samples, T, input_size) through one compiled Lava network.

    The runtime is stopped on every path, errors and Ctrl-C included.
    """
    if tag not in TAGS:
        raise ValueError(f"tag {tag!r}: expected one of {TAGS}")
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.source import RingBuffer

    from converters.lava.procs.gated_lif.process import GatedLIF

    x = np.asarray(x_int)
    samples, steps, _ = x.shape
    sched = schedule(net, steps, samples)
    data = np.zeros((net.input_size, sched.total_steps), dtype=np.int64 if tag == "fixed_pt" else float)
    for k in range(samples):
        data[:, k * sched.period : k * sched.period + steps] = x[k].T
    source = RingBuffer(data=data)
    procs = {}
    for pop in net.populations:
        params = (_float_params(pop) if tag == "floating_pt" else
                  dict(du=pop.du, dv=pop.dv, vth=pop.vth, bias_mant=pop.bias_mant.astype(np.int64),
                       bias_exp=pop.bias_exp))
        procs[pop.name] = GatedLIF(shape=(pop.size,), steps=steps, period=sched.period,
                                   offset=sched.latency[pop.name], samples=samples,
                                   record=_record(net, pop), name=pop.name, **params)
    for proj in net.projections:
        src_offset = 0 if proj.source == net.input_name else sched.latency[proj.source]
        conn = _connection(proj, sched.extra_delay(proj, net.input_name), net.is_graded(proj), tag, sched,
                           src_offset, sched.latency[proj.target])
        (source if proj.source == net.input_name else procs[proj.source]).s_out.connect(conn.s_in)
        conn.a_out.connect(procs[proj.target].a_in)

    timing = {}
    started = time.perf_counter()
    before = set(multiprocessing.active_children())
    try:
        cfg = Loihi2SimCfg(select_tag=tag)
        # Lava forks its worker processes when the first run starts. They are started with
        # Ctrl-C deferred, so a SIGINT to the terminal's process group stops only this
        # process, which then stops the runtime in order (a worker killed by SIGINT would
        # leave the runtime waiting for it forever); one that arrives while they start is
        # raised here once they have.
        with _sigint_deferred():
            source.run(condition=RunSteps(num_steps=1), run_cfg=cfg)
        timing["compile_s"] = time.perf_counter() - started
        done = 1
        bar = _progress(samples, progress)
        for first in range(0, samples, chunk_samples):
            last = min(first + chunk_samples, samples)
            n_steps = last * sched.period - done if last < samples else sched.total_steps - done
            if n_steps > 0:
                source.run(condition=RunSteps(num_steps=n_steps), run_cfg=cfg)
            done += max(n_steps, 0)
            bar.update(last - first)
        bar.close()
        timing["run_s"] = time.perf_counter() - started - timing["compile_s"]
        result = _read(net, procs, sched, tag)
    finally:
        try:
            source.stop()
        finally:
            _reap(before)
    timing["wall_s"] = time.perf_counter() - started
    timing["steps"] = sched.total_steps
    timing["steps_per_second"] = sched.total_steps / max(timing["run_s"], 1e-9)
    timing["latency_steps"] = dict(sched.latency)
    timing["period_steps"] = sched.period
    result.timing = timing
    return result


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


def _read(net, procs, sched, tag) -> Measurement:
    def get(proc, var):
        return np.asarray(getattr(proc, var).get())

    names = [p.name for p in net.populations]
    trace = get(procs[net.output], "voltage").reshape(sched.samples, sched.steps, -1)
    return Measurement(
        backend="lava" if tag == "fixed_pt" else f"lava-{tag}",
        spike_counts={n: get(procs[n], "spike_counts").astype(np.int64) for n in names},
        sample_spikes={n: get(procs[n], "sample_spikes").astype(np.int64) for n in names},
        step_spikes={n: get(procs[n], "step_spikes").astype(np.int64) for n in names},
        fingerprints={n: get(procs[n], "fingerprint").astype(np.int64) for n in names},
        wrapped={n: int(get(procs[n], "wrapped").sum()) for n in names},
        peak_current={n: int(get(procs[n], "peak_current").max(initial=0)) for n in names},
        raster0={n: get(procs[n], "raster0").astype(bool) for n in names},
        readout_trace=trace.astype(np.int64) if tag == "fixed_pt" else trace,
    )
