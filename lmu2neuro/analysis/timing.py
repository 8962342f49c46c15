"""Time per step on a neuromorphic chip, and latency, throughput, power and real-time factor from it.

The time model (the one SANA-FE's simple timing model also uses, Boyle et al. IEEE TCAD 2025):
each core works through its events of the step, then all cores meet at a barrier.

    generate_c = neurons_c x t_neuron + spikes_c x t_spike + messages out_c x t_message_out
    receive_c  = messages in_c x t_message_in + ACs_c x t_ac + MACs_c x t_mac
    busy_c     = max(generate_c, receive_c)   (estimate, low end: the two pipelines overlap)
               = generate_c + receive_c       (high end: they do not)
    step       = max over cores of busy_c + barrier(tiles used)

A message is one spike (or one nonzero graded input) sent to one destination core, whatever the
number of synapses it reaches there; the input is injected by the host, so its messages arrive
at the cores that use it but cost no core's generate time. Loads per core come from the chip
mapping (which neuron sits on which core) and the traffic: per-neuron spike totals, spread over
the steps like their layer's spikes per step. The input's nonzero values per channel are not in
the traffic: every channel is assumed equally active. Synaptic delays are taken as arriving in
the step they were sent (they move work between steps, not in total).

Everything is per inference (one sample of T steps), averaged over the traffic's samples.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from scipy import sparse

from lmu2neuro.analysis.chip_mapping import ChipMapping
from lmu2neuro.analysis.profiles import Profile
from lmu2neuro.core.intnet import IntNetwork

TIME_LEAVES_OUT = [
    "host input/output time (the host sends inputs and reads outputs between steps)",
    "mesh contention and hop latency (messages are assumed to arrive within the step's busy time)",
]


@dataclass
class CoreLoads:
    """Events per core per step of one inference: arrays of shape (cores, T), neurons (cores,)."""

    neurons: np.ndarray
    spikes: np.ndarray
    messages_out: np.ndarray
    messages_in: np.ndarray
    acs: np.ndarray
    macs: np.ndarray
    layer_of_core: list[str]
    input_messages: float = 0.0  # per inference, host -> chip

    @property
    def messages(self) -> float:
        """Messages per inference, every source included (the host's input too)."""
        return float(self.messages_out.sum()) + self.input_messages


def core_loads(net: IntNetwork, traffic: dict, mapping: ChipMapping) -> CoreLoads:
    """Per-core, per-step events of one inference from the traffic and the chip mapping."""
    samples, steps = int(traffic["samples"]), int(traffic["timesteps"])
    tl = {lay["name"]: lay for lay in traffic["layers"]}
    pops, projs = net.on_chip()
    n_cores = mapping.cores
    core_of = {k: np.asarray(v, dtype=np.int64) for k, v in mapping.core_of.items()}
    layer_of_core = [""] * n_cores
    for name, cores in core_of.items():
        for c in np.unique(cores):
            layer_of_core[c] = name

    def per_step_profile(lay: dict, key: str) -> np.ndarray:
        v = np.asarray(lay.get(key) or np.zeros(steps), dtype=np.float64)
        total = v.sum()
        return v / total if total > 0 else np.full(steps, 1.0 / steps)

    # Events of each source neuron per inference, and how they spread over the steps.
    src_events: dict[str, np.ndarray] = {}
    src_shape: dict[str, np.ndarray] = {}
    inp = tl.get(net.input_name, {})
    src_events[net.input_name] = np.full(net.input_size, float(inp.get("nonzero_inputs", 0)) / samples / net.input_size)
    src_shape[net.input_name] = per_step_profile(inp, "nonzero_inputs_per_step")
    for pop in pops:
        lay = tl[pop.name]
        if pop.readout:
            src_events[pop.name] = np.zeros(pop.size)
        else:
            src_events[pop.name] = np.asarray(lay["spike_counts"], dtype=np.float64) / samples
        src_shape[pop.name] = per_step_profile(lay, "spikes_per_step")

    neurons = np.zeros(n_cores)
    spikes = np.zeros((n_cores, steps))
    for pop in pops:
        c = core_of[pop.name]
        neurons += np.bincount(c, minlength=n_cores)
        spikes += np.outer(np.bincount(c, weights=src_events[pop.name], minlength=n_cores), src_shape[pop.name])

    messages_out = np.zeros((n_cores, steps))
    messages_in = np.zeros((n_cores, steps))
    acs = np.zeros((n_cores, steps))
    macs = np.zeros((n_cores, steps))
    input_messages = 0.0
    graded_input = not bool(inp.get("binary"))
    # reach[source] = (cores, source neurons) synapses of each source neuron on each core, sparse:
    # built from each projection's connected pairs (the mapping's, else asked once here), never its
    # dense matrix
    reach: dict[str, sparse.csr_matrix] = {}
    for proj in projs:
        tgt, src, nsyn = mapping.links[proj.name] if proj.name in mapping.links else proj.connections()
        n_src = net.size_of(proj.source)
        per_core = sparse.csr_matrix((nsyn.astype(np.float64), (core_of[proj.target][tgt], src)),
                                     shape=(n_cores, n_src))
        ev = src_events[proj.source]
        load = np.outer(per_core @ ev, src_shape[proj.source])  # synaptic ops per core per step
        if proj.source == net.input_name and graded_input:
            macs += load
        else:
            acs += load
        reach[proj.source] = reach[proj.source] + per_core if proj.source in reach else per_core
    for src, per_core in reach.items():
        reached = (per_core > 0).astype(np.float64)  # (cores, source neurons)
        ev = src_events[src]
        into = np.outer(reached @ ev, src_shape[src])
        messages_in += into
        per_neuron = np.asarray(reached.sum(axis=0)).ravel() * ev  # messages sent by each source neuron
        if src == net.input_name:
            input_messages = float(per_neuron.sum())
        else:
            c = core_of[src]
            messages_out += np.outer(np.bincount(c, weights=per_neuron, minlength=n_cores), src_shape[src])
    return CoreLoads(neurons=neurons, spikes=spikes, messages_out=messages_out, messages_in=messages_in,
                     acs=acs, macs=macs, layer_of_core=layer_of_core, input_messages=input_messages)


@dataclass
class TimeEstimate:
    """Latency and what follows from it, each as (estimate, low, high)."""

    profile: str
    basis: str  # how the step time was obtained
    steps: int
    step_time_s: tuple[float, float, float]  # mean per step
    latency_s: tuple[float, float, float]  # per inference
    throughput_per_s: tuple[float, float, float]  # inferences per second, one at a time
    barrier_s: tuple[float, float, float] | None
    tiles: int | None
    slowest_core: dict | None  # the core that sets the step time most often: layer, busy share
    per_core: list[dict] = field(default_factory=list)  # mean busy time per core
    sources: dict[str, str] = field(default_factory=dict)
    leaves_out: list[str] = field(default_factory=list)
    is_estimate: bool = True

    def to_dict(self) -> dict:
        return asdict(self)


def _t(q, end: str) -> float:
    if q is None:
        return 0.0
    return {"value": q.value, "low": q.lo, "high": q.hi}[end]


def _busy(loads: CoreLoads, profile: Profile, end: str) -> tuple[np.ndarray, np.ndarray]:
    tm = profile.time
    t_mac = tm.mac if tm.mac is not None else tm.ac
    gen = (loads.neurons[:, None] * _t(tm.neuron_update, end) + loads.spikes * _t(tm.spike_out, end)
           + loads.messages_out * _t(tm.message_out, end))
    rec = (loads.messages_in * _t(tm.message_in, end) + loads.acs * _t(tm.ac, end) + loads.macs * _t(t_mac, end))
    return gen, rec


def chip_time(loads: CoreLoads, profile: Profile, tiles: int) -> TimeEstimate:
    """Step time and latency per inference of a mapped network from its per-core loads."""
    if profile.time is None:
        raise ValueError(f"profile '{profile.name}' has no time model ('time' section)")
    steps = loads.spikes.shape[1]
    out = {}
    for end in ("value", "low", "high"):
        gen, rec = _busy(loads, profile, end)
        busy = (gen + rec) if end == "high" else np.maximum(gen, rec)  # high end: pipelines in series
        out[end] = busy
    barrier = profile.barrier_sync.at(tiles) if profile.barrier_sync is not None else (0.0, 0.0, 0.0)
    per_step = {end: out[end].max(axis=0) for end in out} if loads.neurons.size else {e: np.zeros(steps) for e in out}
    lat = tuple(float(per_step[e].sum() + steps * b) for e, b in zip(("value", "low", "high"), barrier))
    step = tuple(x / steps for x in lat)
    busy = out["value"]
    slow = None
    per_core = []
    if busy.size:
        winners = np.bincount(busy.argmax(axis=0), minlength=busy.shape[0])
        c = int(winners.argmax())
        slow = {"core": c, "layer": loads.layer_of_core[c], "steps_slowest": int(winners[c]),
                "mean_busy_s": float(busy[c].mean())}
        per_core = [{"core": i, "layer": loads.layer_of_core[i], "neurons": int(loads.neurons[i]),
                     "mean_busy_s": float(busy[i].mean())} for i in range(busy.shape[0])]
    sources = {f"time.{k}": q.source + (" (assumed)" if q.assumed else "")
               for k in type(profile.time).model_fields if (q := getattr(profile.time, k)) is not None}
    left = list(TIME_LEAVES_OUT)
    if profile.barrier_sync is not None:
        sources["barrier_sync"] = profile.barrier_sync.source
    else:
        left.append("barrier synchronisation: the profile gives no 'barrier_sync'")
    for k in ("spike_out", "message_out", "message_in"):
        if getattr(profile.time, k) is None:
            left.append(f"time per {k.replace('_', ' ')}: the profile gives no 'time.{k}'")
    return TimeEstimate(
        profile=profile.name, steps=steps,
        basis=f"time model: slowest core per step + barrier for {tiles} tile(s); low end with the two core "
              "pipelines overlapped and the low per-event times, high end in series with the high ones",
        step_time_s=step, latency_s=lat, throughput_per_s=tuple(1.0 / x if x > 0 else float("inf") for x in lat),
        barrier_s=barrier, tiles=tiles, slowest_core=slow, per_core=per_core, sources=sources, leaves_out=left)


def fixed_time(profile: Profile, steps: int, step_time_s: float, basis: str) -> TimeEstimate:
    """Latency when the step time is given (by the user, or by the profile's `step_time`)."""
    lat = step_time_s * steps
    return TimeEstimate(profile=profile.name, basis=basis, steps=steps, step_time_s=(step_time_s,) * 3,
                        latency_s=(lat,) * 3, throughput_per_s=(1.0 / lat,) * 3, barrier_s=None, tiles=None,
                        slowest_core=None, sources={"step_time": basis}, leaves_out=[], is_estimate=False)


def conventional_time(profile: Profile, dense_ops: float, steps: int) -> TimeEstimate:
    """Latency of a conventional processor: dense-equivalent ops / its stated throughput."""
    q = profile.throughput
    lat = (dense_ops / q.value, dense_ops / q.hi, dense_ops / q.lo if q.lo > 0 else float("inf"))
    return TimeEstimate(
        profile=profile.name, steps=steps,
        basis="estimate: dense-equivalent MACs per inference / the device's throughput (op/s); "
              "no overlap of inferences (batch 1)",
        step_time_s=tuple(x / steps for x in lat), latency_s=lat,
        throughput_per_s=tuple(1.0 / x if x > 0 else float("inf") for x in lat),
        barrier_s=None, tiles=None, slowest_core=None, sources={"throughput": q.source + (" (assumed)" if q.assumed else "")},
        leaves_out=["framework and kernel-launch overheads beyond those in the throughput figure",
                    "neuron/activation updates (only MACs are timed)"])


def realtime_factor(step_time_s: float, frame_period_s: float) -> float:
    """Step time / frame period: below 1 the chip keeps up with one frame per step."""
    return step_time_s / frame_period_s
