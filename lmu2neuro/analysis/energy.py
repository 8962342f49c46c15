"""Energy per inference from operation counts and a hardware profile.

Dynamic energy of a layer = ACs x E_ac + MACs x E_mac + neuron updates x E_neuron
+ spikes sent x E_spike. On an event-driven target (neuromorphic, or the 45 nm arithmetic
reference) the ops are the effective ones (nonzero input, nonzero weight); a conventional
processor runs every connection every step, so there the ops are the dense-equivalent MACs.
Static energy = static power x chips x steps x step time, counted only when a step time is set
(in the profile or by the caller). Every estimate names its profile, the source of each number
used and what it leaves out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from lmu2neuro.analysis.counting import Counts
from lmu2neuro.analysis.profiles import Profile

ALWAYS_LEFT_OUT = [
    "memory traffic beyond what the per-op energy includes (DRAM, off-chip weight loads)",
    "input/output between host and device",
]


@dataclass
class LayerEnergy:
    layer: str
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
    layers: list[LayerEnergy]
    dynamic_j: float
    static_j: float | None
    step_time_s: float | None
    chips: int
    sources: dict[str, str]
    leaves_out: list[str]
    assumptions: list[str]
    dynamic_by_frame_j: list[float] = field(default_factory=list)  # cumulative after each frame

    @property
    def total_j(self) -> float:
        return self.dynamic_j + (self.static_j or 0.0)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["layers"] = [dict(asdict(x), dynamic_j=x.dynamic_j) for x in self.layers]
        d["total_j"] = self.total_j
        return d


def _value(profile: Profile, key: str, used: dict[str, str]) -> float | None:
    q = getattr(profile.energy, key)
    if q is None:
        return None
    used[f"energy.{key}"] = q.source + (" (assumed)" if q.assumed else "")
    return q.value


def estimate_energy(counts: Counts, profile: Profile, step_time_s: float | None = None,
                    chips: int = 1) -> EnergyEstimate:
    """Energy per inference of the counted network on `profile`.

    `step_time_s` (seconds per time step) overrides the profile's `step_time`; with neither, static
    energy is left out and says so. `chips` multiplies static power (from chip_mapping for
    neuromorphic targets; 1 device otherwise).
    """
    used: dict[str, str] = {}
    left = list(ALWAYS_LEFT_OUT)
    e_ac, e_mac = _value(profile, "ac", used), _value(profile, "mac", used)
    e_nu, e_sp = _value(profile, "neuron_update", used), _value(profile, "spike_out", used)
    dense = not profile.skips_zeros
    if e_ac is None and not dense:
        left.append("binary synaptic operations (ACs): the profile gives no 'energy.ac'")
    if e_mac is None:
        left.append("graded synaptic operations (MACs): the profile gives no 'energy.mac'")
    if e_nu is None:
        left.append("neuron updates: the profile gives no 'energy.neuron_update'")
    if e_sp is None:
        left.append("spike transmission: the profile gives no 'energy.spike_out'")
    elif profile.kind == "neuromorphic":
        left.append("spike routing between tiles (hops) beyond the within-tile spike energy")
    if dense:
        left.append("nothing is skipped: a conventional processor is assumed to compute every connection every step")

    rows = []
    for lay in counts.layers:
        if dense:
            ac, mac = 0.0, lay.dense_macs * (e_mac or 0.0)
        else:
            ac, mac = lay.acs * (e_ac or 0.0), lay.macs * (e_mac or 0.0)
        rows.append(LayerEnergy(lay.name, ac, mac, lay.neuron_updates * (e_nu or 0.0), lay.spikes * (e_sp or 0.0)))

    # Cumulative dynamic energy after each frame (streaming early exit).
    per_frame = [0.0] * counts.timesteps
    for p in counts.projections:
        for t in range(counts.timesteps):
            if dense:
                per_frame[t] += p.dense_macs / counts.timesteps * (e_mac or 0.0)
            else:
                per_frame[t] += p.ops_per_step[t] * ((e_mac if p.graded else e_ac) or 0.0)
    for lay in counts.layers:
        for t in range(counts.timesteps):
            per_frame[t] += lay.neurons * (e_nu or 0.0) + lay.spikes_per_step[t] * (e_sp or 0.0)
    cumulative, run = [], 0.0
    for v in per_frame:
        run += v
        cumulative.append(run)

    step = step_time_s if step_time_s is not None else (profile.step_time.value if profile.step_time else None)
    if step_time_s is None and profile.step_time is not None:
        used["step_time"] = profile.step_time.source
    elif step_time_s is not None:
        used["step_time"] = "given by the user"
    static = None
    if profile.static_power is None:
        left.append("static power: the profile gives no 'static_power'")
    elif step is None:
        left.append("static power: no step time given (--step-time or the profile's 'step_time')")
    else:
        used["static_power"] = profile.static_power.source + (" (assumed)" if profile.static_power.assumed else "")
        static = profile.static_power.value * chips * step * counts.timesteps
    return EnergyEstimate(
        profile=profile.name, profile_path=profile.path, event_driven=not dense, layers=rows,
        dynamic_j=sum(r.dynamic_j for r in rows), static_j=static, step_time_s=step, chips=chips,
        sources=used, leaves_out=left, assumptions=profile.assumptions(), dynamic_by_frame_j=cumulative,
    )


def dense_baseline(counts: Counts, profile: Profile) -> dict:
    """The same network run without spikes: dense-equivalent MACs x the profile's MAC energy.

    Neuron updates become one activation per neuron per step at the profile's neuron-update
    energy when it has one. Returns a plain dict naming profile, sources and what is left out.
    """
    if profile.energy.mac is None:
        raise ValueError(f"profile '{profile.name}' has no 'energy.mac'")
    dense = counts.totals["dense"]
    mac_j = dense * profile.energy.mac.value
    act_j = counts.totals["neuron_updates"] * profile.energy.neuron_update.value if profile.energy.neuron_update else 0.0
    left = list(ALWAYS_LEFT_OUT) + ["static power"]
    if profile.energy.neuron_update is None:
        left.append("activation functions (no 'energy.neuron_update' in the profile)")
    sources = {"energy.mac": profile.energy.mac.source}
    if profile.energy.neuron_update is not None:
        sources["energy.neuron_update"] = profile.energy.neuron_update.source
    return {"profile": profile.name, "dense_macs": dense, "mac_j": mac_j, "activation_j": act_j,
            "dynamic_j": mac_j + act_j, "sources": sources, "leaves_out": left}
