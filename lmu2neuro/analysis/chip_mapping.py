"""Cores and chips for a network on a neuromorphic profile, and every per-core limit it breaks.

Each population is packed greedily onto cores, neuron by neuron in order, opening a new core when
the next neuron would exceed a per-core limit:
- neurons per core;
- fan-in axons: distinct source neurons (any nonzero weight, any tap) feeding the core's neurons;
  one axon per source neuron, since delays are per synapse;
- synaptic memory: nonzero synapses (each delay tap is its own synapse) x (weight bits + delay
  bits) / 8, where delay bits = ceil(log2(taps)) for a projection with taps > 1. Assumption:
  no per-synapse index overhead (Loihi's sparse formats add some), all memory holds synapses.
Then per core, fan-out axons = sum over its neurons of the distinct target cores each one
reaches. The input is injected by the host and takes no core. A single neuron that breaks a
limit on its own cannot be fixed by packing: it is reported as a violation with its layer.
Chips = the most of ceil(cores / cores per chip) and the per-chip neuron and synapse limits.
Cores are numbered in packing order and fill tiles (`cores_per_tile`) in that order.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core.intnet import IntNetwork
from lmu2neuro.analysis.profiles import Profile


@dataclass
class Violation:
    layer: str
    limit: str  # profile field, e.g. "chip.fan_in_axons_per_core"
    value: float
    allowed: float
    message: str


@dataclass
class LayerCores:
    layer: str
    neurons: int
    cores: int
    synapses: int  # nonzero, all taps
    synaptic_bytes: int
    max_fan_in_axons: int  # per neuron
    max_core_fan_in_axons: int
    max_core_fan_out_axons: int
    max_core_synaptic_bytes: int
    limited_by: str  # the limit that closed most cores


@dataclass
class ChipMapping:
    profile: str
    layers: list[LayerCores]
    cores: int
    chips: int
    violations: list[Violation] = field(default_factory=list)
    assumptions: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)
    tiles: int = 0  # tiles holding at least one core (cores are filled tile by tile)
    # population -> the global core index of each of its neurons (for per-core loads and times)
    core_of: dict[str, list[int]] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("core_of")  # one entry per neuron: the per-core table in the time model says it shorter
        return d


def _limit(profile: Profile, key: str) -> float | None:
    q = getattr(profile.chip, key)
    return None if q is None else q.value


def map_to_chip(net: IntNetwork, profile: Profile, weight_bits: int = fx.WEIGHT_BITS) -> ChipMapping:
    """Map `net` onto `profile`'s cores; raises ValueError if the profile has no `chip` section."""
    if profile.chip is None:
        raise ValueError(f"profile '{profile.name}' has no 'chip' section")
    n_core = int(_limit(profile, "neurons_per_core"))
    mem_core = _limit(profile, "synaptic_memory_per_core")
    fin = _limit(profile, "fan_in_axons_per_core")
    fout = _limit(profile, "fan_out_axons_per_core")
    max_delay = _limit(profile, "max_delay")
    unchecked = [f"chip.{k} (not in the profile)" for k in ("fan_in_axons_per_core", "fan_out_axons_per_core", "max_delay")
                 if _limit(profile, k) is None]
    violations: list[Violation] = []
    wmin, wmax = _limit(profile, "weight_bits_min"), _limit(profile, "weight_bits_max")
    if (wmin is not None and weight_bits < wmin) or (wmax is not None and weight_bits > wmax):
        violations.append(Violation("(all)", "chip.weight_bits_max", weight_bits, wmax or 0,
                                    f"weights stored at {weight_bits} bits, {profile.name} supports {wmin:g}-{wmax:g}"))

    core_of: dict[str, np.ndarray] = {}  # population -> core index (global) per neuron
    rows: list[LayerCores] = []
    next_core = 0
    pops, projs = net.on_chip()
    for pop in pops:
        into = [p for p in projs if p.target == pop.name]
        # Connectivity of each target neuron to every source neuron (over taps), all projections.
        conn = [np.any(np.asarray(p.weights) != 0, axis=0) for p in into]
        conn_all = np.concatenate(conn, axis=1) if conn else np.zeros((pop.size, 0), bool)
        bits_per = []
        for p in into:
            if p.taps > 1 and max_delay is not None and p.taps - 1 > max_delay:
                violations.append(Violation(pop.name, "chip.max_delay", p.taps - 1, max_delay,
                                            f"layer '{pop.name}': projection '{p.name}' needs delays up to "
                                            f"{p.taps - 1} steps, {profile.name} allows {max_delay:g}"))
            bits_per.append(weight_bits + (math.ceil(math.log2(p.taps)) if p.taps > 1 else 0))
        syn_bits = np.zeros(pop.size)
        for p, b in zip(into, bits_per):
            syn_bits += np.count_nonzero(np.asarray(p.weights), axis=(0, 2)) * b
        syn_bytes = syn_bits / 8
        fan_in = conn_all.sum(axis=1)

        cores = np.zeros(pop.size, dtype=np.int64)
        union = np.zeros(conn_all.shape[1], bool)
        count, mem, core = 0, 0.0, 0
        closed_by: dict[str, int] = {}
        core_fan_in, core_mem = [], []
        for i in range(pop.size):
            new_union = union | conn_all[i]
            reason = None
            if count + 1 > n_core:
                reason = "neurons"
            elif fin is not None and new_union.sum() > fin and count > 0:
                reason = "fan-in axons"
            elif mem_core is not None and mem + syn_bytes[i] > mem_core and count > 0:
                reason = "synaptic memory"
            if reason:
                closed_by[reason] = closed_by.get(reason, 0) + 1
                core_fan_in.append(int(union.sum()))
                core_mem.append(mem)
                core += 1
                union, count, mem = conn_all[i].copy(), 0, 0.0
            else:
                union = new_union
            count += 1
            mem += syn_bytes[i]
            cores[i] = core
        core_fan_in.append(int(union.sum()))
        core_mem.append(mem)
        n_cores = core + 1 if pop.size else 0
        core_of[pop.name] = cores + next_core
        next_core += n_cores

        worst = int(fan_in.max()) if fan_in.size else 0
        if fin is not None and worst > fin:
            violations.append(Violation(pop.name, "chip.fan_in_axons_per_core", worst, fin,
                                        f"layer '{pop.name}': a single neuron has {worst} fan-in axons, "
                                        f"a {profile.name} core allows {fin:g}"))
        if mem_core is not None and syn_bytes.size and syn_bytes.max() > mem_core:
            violations.append(Violation(pop.name, "chip.synaptic_memory_per_core", float(syn_bytes.max()), mem_core,
                                        f"layer '{pop.name}': a single neuron's synapses need {syn_bytes.max():.0f} B, "
                                        f"a {profile.name} core has {mem_core:g} B"))
        rows.append(LayerCores(
            layer=pop.name, neurons=pop.size, cores=n_cores,
            synapses=int(sum(np.count_nonzero(p.weights) for p in into)),
            synaptic_bytes=int(math.ceil(syn_bytes.sum())), max_fan_in_axons=worst,
            max_core_fan_in_axons=max(core_fan_in), max_core_fan_out_axons=0,
            max_core_synaptic_bytes=int(math.ceil(max(core_mem))),
            limited_by=max(closed_by, key=closed_by.get) if closed_by else "fits one core",
        ))

    # Fan-out axons: per source neuron, the distinct target cores it reaches.
    row_of = {r.layer: r for r in rows}
    for pop in pops:
        out_axons = np.zeros(pop.size, dtype=np.int64)
        targets_cores: list[set] = [set() for _ in range(pop.size)]
        for p in projs:
            if p.source != pop.name:
                continue
            reach = np.any(np.asarray(p.weights) != 0, axis=0)  # (target, source)
            tc = core_of[p.target]
            for j in range(pop.size):
                targets_cores[j].update(np.unique(tc[reach[:, j]]).tolist())
        out_axons[:] = [len(s) for s in targets_cores]
        per_core = np.bincount(core_of[pop.name] - core_of[pop.name].min(), weights=out_axons) if pop.size else np.zeros(1)
        row_of[pop.name].max_core_fan_out_axons = int(per_core.max()) if per_core.size else 0
        if fout is not None and per_core.size and per_core.max() > fout:
            violations.append(Violation(pop.name, "chip.fan_out_axons_per_core", float(per_core.max()), fout,
                                        f"layer '{pop.name}': a core sends {per_core.max():.0f} fan-out axons, "
                                        f"a {profile.name} core allows {fout:g}"))

    total_cores = sum(r.cores for r in rows)
    chips = math.ceil(total_cores / _limit(profile, "cores_per_chip"))
    npc, spc = _limit(profile, "neurons_per_chip"), _limit(profile, "synapses_per_chip")
    if npc:
        chips = max(chips, math.ceil(sum(r.neurons for r in rows) / npc))
    if spc:
        chips = max(chips, math.ceil(sum(r.synapses for r in rows) / spc))
    assumptions = [
        "greedy in-order packing of each layer's neurons (an optimising compiler may use fewer cores)",
        "synaptic memory = nonzero synapses x (weight bits + delay bits), no index overhead",
        "the input is injected by the host and occupies no core",
    ] + profile.assumptions()
    per_tile = _limit(profile, "cores_per_tile") or 1
    return ChipMapping(profile=profile.name, layers=rows, cores=total_cores, chips=max(chips, 1 if rows else 0),
                       violations=violations, assumptions=assumptions, unchecked=unchecked,
                       tiles=math.ceil(total_cores / per_tile),
                       core_of={k: v.astype(int).tolist() for k, v in core_of.items()})
