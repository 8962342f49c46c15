"""One profile's hardware plan: chip mapping, time, energy and power, each with its range and basis.

`plan_profile` ties the pieces together in the order they depend on each other: the chip mapping
(cores, tiles, chips), per-core loads, the time model (or a step time given by the user, or a
conventional device's throughput), then energy and power over that time.
"""

from __future__ import annotations

from lmu2neuro.analysis.chip_mapping import ChipMapping, map_to_chip
from lmu2neuro.analysis.counting import Counts
from lmu2neuro.analysis.energy import EnergyEstimate, estimate_energy, rng
from lmu2neuro.analysis.profiles import Profile
from lmu2neuro.analysis.timing import TimeEstimate, chip_time, conventional_time, core_loads, fixed_time, realtime_factor
from lmu2neuro.core.intnet import IntNetwork


def _power(e, t) -> tuple[float, float, float]:
    # the least power: the least energy over the longest time; the most: the reverse
    return (e[0] / t[0], e[1] / t[2], e[2] / t[1])


def plan_profile(counts: Counts, net: IntNetwork, traffic: dict, profile: Profile, step_time_s: float | None = None,
                 frame_period_s: float | None = None) -> dict:
    """Mapping, time, energy and power of the counted network on `profile`, as one plain dict.

    Returns {"mapping": ChipMapping | None, "time": TimeEstimate | None, "energy": EnergyEstimate,
    "power_w": {...} | None, "realtime": {...} | None, "loads": CoreLoads | None}.
    """
    mapping: ChipMapping | None = map_to_chip(net, profile) if profile.chip is not None else None
    loads = core_loads(net, traffic, mapping) if mapping is not None and mapping.cores else None
    steps = counts.timesteps
    time: TimeEstimate | None = None
    if step_time_s is not None:
        time = fixed_time(profile, steps, step_time_s, "given by the user (--step-time)")
    elif profile.time is not None and loads is not None:
        time = chip_time(loads, profile, mapping.tiles)
    elif profile.step_time is not None:
        time = fixed_time(profile, steps, profile.step_time.value, f"the profile's step_time ({profile.step_time.source})")
    elif profile.throughput is not None and profile.kind == "conventional":
        time = conventional_time(profile, counts.totals["dense"], steps)
    energy: EnergyEstimate = estimate_energy(counts, profile, time=time, loads=loads,
                                             chips=mapping.chips if mapping else None,
                                             cores=mapping.cores if mapping else None, frame_period_s=frame_period_s)
    power = None
    if time is not None and not profile.floor:
        power = {"dynamic": rng(_power(energy.dynamic_j, time.latency_s)), "basis": energy.label}
        if energy.total_j is not None:
            power["total"] = rng(_power(energy.total_j, time.latency_s))
    realtime = None
    if frame_period_s is not None and time is not None:
        # the worst case of the step time decides whether every frame is done before the next
        rtf = tuple(realtime_factor(s, frame_period_s) for s in time.step_time_s)
        realtime = {"frame_period_s": frame_period_s, "factor": rng(rtf), "keeps_up": rtf[2] <= 1.0,
                    "keeps_up_at_estimate": rtf[0] <= 1.0}
    return {"mapping": mapping, "time": time, "energy": energy, "power_w": power, "realtime": realtime, "loads": loads}
