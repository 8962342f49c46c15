"""Energy and power per inference from operation counts, the time model and a hardware profile.

Dynamic energy of a layer = ACs x E_ac + MACs x E_mac + neuron updates x E_neuron + spikes sent x
E_spike; plus, on a mapped chip, messages (one per spike per destination core) x E_message. On an
event-driven target (neuromorphic, or the 45 nm arithmetic floor) the ops are the effective ones
(nonzero input, nonzero weight); a conventional processor runs every connection every step, so
there the ops are the dense-equivalent MACs (and the per-layer table shows those).

Every figure is (estimate, low, high): the ends use the ends of each per-event range. Static
energy = static power x latency (the modelled step time x steps, or a step time the user gives),
on two bases for a chip: the chips occupied (what a deployment pays) and pro rata for the cores
used (what the network's share of a chip costs). With a frame period, the chip stays on for the
whole T x frame period: that static energy is reported too. Total = dynamic + static (chips
occupied, or the device); without a static power or a time the total is not given and the
energy is labelled dynamic only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from lmu2neuro.analysis.counting import Counts
from lmu2neuro.analysis.profiles import Profile, Quantity
from lmu2neuro.analysis.timing import CoreLoads, TimeEstimate

ALWAYS_LEFT_OUT = [
    "memory traffic beyond what the per-op energy includes (DRAM, off-chip weight loads)",
    "input/output between host and device",
]
ENDS = ("value", "low", "high")


def _e(q: Quantity | None, end: str) -> float:
    if q is None:
        return 0.0
    return {"value": q.value, "low": q.lo, "high": q.hi}[end]


def rng(t) -> dict:
    """(estimate, low, high) as a dict for JSON."""
    return {"estimate": t[0], "low": t[1], "high": t[2]}


@dataclass
class LayerEnergy:
    layer: str
    op_kind: str  # what `ops` counts: "effective ACs + MACs" or "dense MACs"
    ops: float
    ac_j: float
    mac_j: float
    neuron_j: float
    spike_j: float

    @property
    def dynamic_j(self) -> float:
        return self.ac_j + self.mac_j + self.neuron_j + self.spike_j


@dataclass
class EnergyEstimate:
    profile: str
    profile_path: str | None
    event_driven: bool
    floor: bool
    layers: list[LayerEnergy]  # at the estimate
    dynamic_j: tuple[float, float, float]
    message_j: tuple[float, float, float] | None  # part of dynamic_j, not in any layer row
    static_chips_j: tuple[float, float, float] | None  # chips occupied (or the device)
    static_pro_rata_j: tuple[float, float, float] | None  # share of the cores used
    static_realtime_j: tuple[float, float, float] | None  # chips occupied over T x frame period
    static_basis: str | None
    chips: int | None
    cores: int | None
    sources: dict[str, dict]
    leaves_out: list[str]
    assumptions: list[str]
    dynamic_by_frame_j: list[float] = field(default_factory=list)  # cumulative after each frame

    @property
    def total_j(self) -> tuple[float, float, float] | None:
        if self.static_chips_j is None:
            return None
        return tuple(d + s for d, s in zip(self.dynamic_j, self.static_chips_j))

    @property
    def label(self) -> str:
        if self.floor:
            return "compute-only floor (arithmetic only; not a device)"
        if self.total_j is None:
            return "dynamic only"
        return f"dynamic + static ({self.static_basis})"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["layers"] = [dict(asdict(x), dynamic_j=x.dynamic_j) for x in self.layers]
        for k in ("dynamic_j", "message_j", "static_chips_j", "static_pro_rata_j", "static_realtime_j"):
            d[k] = rng(d[k]) if d[k] is not None else None
        d["total_j"] = rng(self.total_j) if self.total_j is not None else None
        d["label"] = self.label
        return d


def estimate_energy(counts: Counts, profile: Profile, time: TimeEstimate | None = None,
                    loads: CoreLoads | None = None, chips: int | None = None, cores: int | None = None,
                    frame_period_s: float | None = None) -> EnergyEstimate:
    """Energy per inference of the counted network on `profile` (see the module docstring).

    `time` gives the latency static power is charged over; `loads` (from the chip mapping) the
    messages; `chips` and `cores` the static bases of a neuromorphic target.
    """
    used: dict[str, dict] = {}
    left = list(ALWAYS_LEFT_OUT)
    en = profile.energy
    for k in type(en).model_fields:
        q = getattr(en, k)
        if q is not None:
            used[f"energy.{k}"] = q.range_sources()
    dense = not profile.skips_zeros
    if en.ac is None and not dense:
        left.append("binary synaptic operations (ACs): the profile gives no 'energy.ac'")
    if en.mac is None:
        left.append("graded synaptic operations (MACs): the profile gives no 'energy.mac'")
    if en.neuron_update is None:
        left.append("neuron updates: the profile gives no 'energy.neuron_update'")
    if en.spike_out is None:
        left.append("spike generation: the profile gives no 'energy.spike_out'")
    if profile.kind == "neuromorphic":
        if en.message is None:
            left.append("spike messages between cores: the profile gives no 'energy.message'")
        elif loads is None:
            left.append("spike messages between cores: no chip mapping (the profile has no 'chip' section)")
    if dense:
        left.append("nothing is skipped: a conventional processor is assumed to compute every connection every step")

    def layer_rows(end: str) -> list[LayerEnergy]:
        rows = []
        for lay in counts.layers:
            if dense:
                rows.append(LayerEnergy(lay.name, "dense MACs", lay.dense_macs, 0.0, lay.dense_macs * _e(en.mac, end),
                                        lay.neuron_updates * _e(en.neuron_update, end), lay.spikes * _e(en.spike_out, end)))
            else:
                rows.append(LayerEnergy(lay.name, "effective ACs + MACs", lay.acs + lay.macs, lay.acs * _e(en.ac, end),
                                        lay.macs * _e(en.mac, end), lay.neuron_updates * _e(en.neuron_update, end),
                                        lay.spikes * _e(en.spike_out, end)))
        return rows

    msg = None
    if loads is not None and en.message is not None:
        msg = tuple(loads.messages * _e(en.message, end) for end in ENDS)
    dyn = tuple(sum(r.dynamic_j for r in layer_rows(end)) + (msg[i] if msg else 0.0) for i, end in enumerate(ENDS))
    rows = layer_rows("value")

    # Cumulative dynamic energy after each frame (streaming early exit), at the estimate.
    steps = counts.timesteps
    per_frame = [0.0] * steps
    for p in counts.projections:
        for t in range(steps):
            if dense:
                per_frame[t] += p.dense_macs / steps * _e(en.mac, "value")
            else:
                per_frame[t] += p.ops_per_step[t] * _e(en.mac if p.graded else en.ac, "value")
    for lay in counts.layers:
        for t in range(steps):
            per_frame[t] += lay.neurons * _e(en.neuron_update, "value") + lay.spikes_per_step[t] * _e(en.spike_out, "value")
    if msg and steps:
        per_frame = [v + msg[0] / steps for v in per_frame]
    cumulative, run = [], 0.0
    for v in per_frame:
        run += v
        cumulative.append(run)

    static_chips = static_pro = static_rt = None
    basis = None
    ps = profile.static_power
    if ps is None:
        left.append("static power: the profile gives no 'static_power'")
    elif time is None:
        left.append("static power: no latency (the profile has no time model and no step time was given)")
    else:
        used["static_power"] = ps.range_sources()
        lat = time.latency_s
        p_ends = (ps.value, ps.lo, ps.hi)
        if profile.static_power_basis == "chip":
            n = chips or 1
            static_chips = tuple(p * n * t for p, t in zip(p_ends, lat))
            basis = f"{n} chip(s) occupied x static power per chip x latency"
            per_chip = profile.chip.cores_per_chip.value if profile.chip else None
            if cores is not None and per_chip:
                share = cores / per_chip
                static_pro = tuple(p * share * t for p, t in zip(p_ends, lat))
            if frame_period_s is not None:
                wall = frame_period_s * time.steps
                static_rt = tuple(p * n * wall for p in p_ends)
        else:
            static_chips = tuple(p * t for p, t in zip(p_ends, lat))
            basis = "the device's idle power x latency"
            if frame_period_s is not None:
                static_rt = tuple(p * frame_period_s * time.steps for p in p_ends)
    return EnergyEstimate(
        profile=profile.name, profile_path=profile.path, event_driven=not dense, floor=profile.floor, layers=rows,
        dynamic_j=dyn, message_j=msg, static_chips_j=static_chips, static_pro_rata_j=static_pro,
        static_realtime_j=static_rt, static_basis=basis, chips=chips, cores=cores, sources=used,
        leaves_out=left, assumptions=profile.assumptions(), dynamic_by_frame_j=cumulative,
    )


def dense_baseline(counts: Counts, profile: Profile) -> dict:
    """The same network as an ANN (no spikes): its MACs x the profile's MAC energy, one pass per
    distinct input frame: ONE pass for a static input presented for T steps to a network without
    recurrence, T otherwise (``counts.totals["ann_passes"]``).

    Activations become one per neuron per pass at the profile's neuron-update energy when it has
    one. Returns a plain dict naming profile, passes, sources and what is left out.
    """
    if profile.energy.mac is None:
        raise ValueError(f"profile '{profile.name}' has no 'energy.mac'")
    totals = counts.totals
    dense = totals["ann_baseline_macs"]
    passes = totals["ann_passes"]
    neurons = sum(lay.neurons for lay in counts.layers if not lay.helper)  # an ANN has no helper neurons
    mac_j = dense * profile.energy.mac.value
    act_j = neurons * passes * profile.energy.neuron_update.value if profile.energy.neuron_update else 0.0
    left = list(ALWAYS_LEFT_OUT) + ["static power"]
    if profile.energy.neuron_update is None:
        left.append("activation functions (no 'energy.neuron_update' in the profile)")
    sources = {"energy.mac": profile.energy.mac.source}
    if profile.energy.neuron_update is not None:
        sources["energy.neuron_update"] = profile.energy.neuron_update.source
    if passes == 1 and counts.timesteps > 1:
        basis = (f"one ANN pass: the input is static (the same frame at all {counts.timesteps} steps) and no "
                 "projection is recurrent")
    elif counts.static_input and counts.recurrent:
        basis = f"{passes} ANN passes: the input is static but a recurrent projection steps the state every step"
    else:
        basis = f"{passes} ANN pass(es), one per input frame"
    return {"profile": profile.name, "floor": profile.floor, "dense_macs": dense, "passes": passes, "basis": basis,
            "mac_j": mac_j, "activation_j": act_j,
            "dynamic_j": mac_j + act_j, "sources": sources, "leaves_out": left}
