"""Cores and chips for a network on a neuromorphic profile, and every per-core limit it breaks.

Each population is packed greedily onto cores, neuron by neuron in order, opening a new core when
the next neuron would exceed a per-core limit:
- neurons per core;
- fan-in axons: distinct source neurons (any nonzero weight, any tap) feeding the core's neurons;
  one axon per source neuron, since delays are per synapse;
- synaptic memory: nonzero synapses (each delay tap is its own synapse) x (weight bits + delay
  bits) / 8, where delay bits = ceil(log2(taps)) for a projection with taps > 1. Assumption:
  no per-synapse index overhead (Loihi's sparse formats add some), all memory holds synapses.
  A convolution is stored by the profile's rule (``chip.conv_weights``, with its source):
  "per_synapse" (Loihi 1, Davies et al. 2018: each connection its own synapse) or "shared"
  (Loihi 2, lava-dl's compiler printout for PilotNet: each output channel's nonzero kernel
  entries once per core holding neurons of that channel). Both figures are reported per layer.
Connectivity comes from each projection's sparse (target, source) pairs, never a dense matrix,
so a convolution is mapped at the size people deploy.
Then per core, fan-out axons = sum over its neurons of the distinct target cores each one
reaches. The input is injected by the host and takes no core. A single neuron that breaks a
limit on its own cannot be fixed by packing: it is reported as a violation with its layer.
Chips = the most of ceil(cores / cores per chip) and the per-chip neuron and synapse limits.
Cores are numbered in packing order and fill tiles (`cores_per_tile`) in that order.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

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
    synapses: int  # nonzero connections, all taps: what a chip without weight sharing stores
    synaptic_bytes: int  # under the profile's rule for convolutions (conv_weights)
    max_fan_in_axons: int  # per neuron
    max_core_fan_in_axons: int
    max_core_fan_out_axons: int
    max_core_synaptic_bytes: int
    limited_by: str  # the limit that closed most cores
    stored_weights: int = 0  # parameters the model stores (a convolution's kernel once)
    synaptic_bytes_per_synapse: int = 0  # every connection its own synapse
    synaptic_bytes_shared: int | None = None  # convolution kernels shared within a core; None: no convolution in
    conv_weights: str = "per_synapse"  # the rule the mapping packed with


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
    # projection -> its Projection.connections(), computed once for the packing, the fan-out and
    # the time model's per-core loads
    links: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict:
        # per neuron and per synapse: the per-core table in the time model says it shorter
        d = asdict(replace(self, core_of={}, links={}))
        del d["core_of"], d["links"]
        return d


def _limit(profile: Profile, key: str) -> float | None:
    q = getattr(profile.chip, key)
    return None if q is None else q.value


def _channel_bytes(proj, bits: int) -> np.ndarray:
    """(C_out,) bytes of one output channel's kernel, nonzero entries over all taps."""
    return proj.channel_synapses() * bits / 8


def map_to_chip(net: IntNetwork, profile: Profile, weight_bits: int = fx.WEIGHT_BITS) -> ChipMapping:
    """Map `net` onto `profile`'s cores; raises ValueError if the profile has no `chip` section."""
    if profile.chip is None:
        raise ValueError(f"profile '{profile.name}' has no 'chip' section")
    n_core = int(_limit(profile, "neurons_per_core"))
    mem_core = _limit(profile, "synaptic_memory_per_core")
    fin = _limit(profile, "fan_in_axons_per_core")
    fout = _limit(profile, "fan_out_axons_per_core")
    max_delay = _limit(profile, "max_delay")
    rule = profile.chip.conv_weights.storage if profile.chip.conv_weights is not None else "per_synapse"
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
    links: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # projection -> Projection.connections()
    for pop in pops:
        into = [p for p in projs if p.target == pop.name]
        bits_per = []
        for p in into:
            if p.taps > 1 and max_delay is not None and p.taps - 1 > max_delay:
                violations.append(Violation(pop.name, "chip.max_delay", p.taps - 1, max_delay,
                                            f"layer '{pop.name}': projection '{p.name}' needs delays up to "
                                            f"{p.taps - 1} steps, {profile.name} allows {max_delay:g}"))
            bits_per.append(weight_bits + (math.ceil(math.log2(p.taps)) if p.taps > 1 else 0))
        # Sources of each target neuron over all projections into it, in one index space
        # (projection k's sources offset by the sizes before it), as CSR rows.
        tgts, srcs, offset = [], [], 0
        per_syn_bytes = np.zeros(pop.size)  # every connection its own synapse
        own_bytes = np.zeros(pop.size)  # what each neuron adds alone under the profile's rule
        shared = []  # (channel of each neuron, bytes per channel) of the shared convolutions
        for p, b in zip(into, bits_per):
            tgt, src, _ = links[p.name] = p.connections()
            tgts.append(tgt)
            srcs.append(src + offset)
            offset += net.size_of(p.source)
            neuron_bytes = p.fan_in() * b / 8
            per_syn_bytes += neuron_bytes
            if p.conv is not None and rule == "shared":
                positions = pop.size // int(p.out_shape[0])
                shared.append((np.arange(pop.size) // positions, _channel_bytes(p, b)))
            else:
                own_bytes += neuron_bytes
        tgt = np.concatenate(tgts) if tgts else np.zeros(0, np.int64)
        src = np.concatenate(srcs) if srcs else np.zeros(0, np.int64)
        order = np.argsort(tgt, kind="stable")
        src_sorted = src[order]
        starts = np.concatenate([[0], np.cumsum(np.bincount(tgt, minlength=pop.size))]).astype(np.int64)
        fan_in = np.diff(starts)  # distinct sources per neuron (pairs are distinct per projection)

        cores = np.zeros(pop.size, dtype=np.int64)
        seen = np.zeros(max(offset, 1), bool)  # sources already on the current core
        seen_list: list[np.ndarray] = []
        seen_channels = [set() for _ in shared]
        count, axons, mem, core = 0, 0, 0.0, 0
        closed_by: dict[str, int] = {}
        core_fan_in, core_mem = [], []
        for i in range(pop.size):
            mine = src_sorted[starts[i]:starts[i + 1]]
            new = mine[~seen[mine]]
            add = own_bytes[i] + sum(cb[ch[i]] for (ch, cb), sc in zip(shared, seen_channels) if ch[i] not in sc)
            reason = None
            if count + 1 > n_core:
                reason = "neurons"
            elif fin is not None and axons + new.size > fin and count > 0:
                reason = "fan-in axons"
            elif mem_core is not None and mem + add > mem_core and count > 0:
                reason = "synaptic memory"
            if reason:
                closed_by[reason] = closed_by.get(reason, 0) + 1
                core_fan_in.append(axons)
                core_mem.append(mem)
                core += 1
                for arr in seen_list:
                    seen[arr] = False
                seen_list, count, axons, mem = [], 0, 0, 0.0
                seen_channels = [set() for _ in shared]
                new = mine
                add = own_bytes[i] + sum(cb[ch[i]] for ch, cb in shared)
            seen[new] = True
            seen_list.append(new)
            axons += new.size
            for (ch, _), sc in zip(shared, seen_channels):
                sc.add(int(ch[i]))
            count += 1
            mem += add
            cores[i] = core
        core_fan_in.append(axons)
        core_mem.append(mem)
        n_cores = core + 1 if pop.size else 0
        core_of[pop.name] = cores + next_core
        next_core += n_cores

        worst = int(fan_in.max()) if fan_in.size else 0
        if fin is not None and worst > fin:
            violations.append(Violation(pop.name, "chip.fan_in_axons_per_core", worst, fin,
                                        f"layer '{pop.name}': a single neuron has {worst} fan-in axons, "
                                        f"a {profile.name} core allows {fin:g}"))
        alone = own_bytes + sum(cb[ch] for ch, cb in shared) if pop.size else own_bytes
        if mem_core is not None and alone.size and alone.max() > mem_core:
            violations.append(Violation(pop.name, "chip.synaptic_memory_per_core", float(alone.max()), mem_core,
                                        f"layer '{pop.name}': a single neuron's synapses need {alone.max():.0f} B, "
                                        f"a {profile.name} core has {mem_core:g} B"))
        has_conv = any(p.conv is not None for p in into)
        shared_total = None
        if has_conv:  # with sharing: each core stores the kernels of the channels it holds
            shared_total = 0.0
            for p, b in zip(into, bits_per):
                if p.conv is None:
                    shared_total += float((p.fan_in() * b / 8).sum())
                    continue
                positions = pop.size // int(p.out_shape[0])
                ch = np.arange(pop.size) // positions
                pairs = np.unique(cores * int(p.out_shape[0]) + ch)
                shared_total += float(_channel_bytes(p, b)[pairs % int(p.out_shape[0])].sum())
        rows.append(LayerCores(
            layer=pop.name, neurons=pop.size, cores=n_cores,
            synapses=int(sum(p.synapses() for p in into)),
            synaptic_bytes=int(math.ceil(sum(core_mem))), max_fan_in_axons=worst,
            max_core_fan_in_axons=max(core_fan_in), max_core_fan_out_axons=0,
            max_core_synaptic_bytes=int(math.ceil(max(core_mem))),
            limited_by=max(closed_by, key=closed_by.get) if closed_by else "fits one core",
            stored_weights=int(sum(p.stored_weights() for p in into)),
            synaptic_bytes_per_synapse=int(math.ceil(per_syn_bytes.sum())),
            synaptic_bytes_shared=None if shared_total is None else int(math.ceil(shared_total)),
            conv_weights=rule,
        ))

    # Fan-out axons: per source neuron, the distinct target cores it reaches.
    row_of = {r.layer: r for r in rows}
    n_total = max(next_core, 1)
    for pop in pops:
        keys = []
        for p in projs:
            if p.source != pop.name:
                continue
            tgt, src, _ = links[p.name]
            keys.append(src * n_total + core_of[p.target][tgt])
        if keys:
            reached = np.unique(np.concatenate(keys))
            out_axons = np.bincount(reached // n_total, minlength=pop.size)
        else:
            out_axons = np.zeros(pop.size, dtype=np.int64)
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
        (f"convolutions: {rule.replace('_', ' ')} weights ({profile.chip.conv_weights.source})"
         if profile.chip.conv_weights is not None else
         "convolutions: every connection its own synapse (the profile states no weight sharing)"),
        "the input is injected by the host and occupies no core",
    ] + profile.assumptions()
    per_tile = _limit(profile, "cores_per_tile") or 1
    return ChipMapping(profile=profile.name, layers=rows, cores=total_cores, chips=max(chips, 1 if rows else 0),
                       violations=violations, assumptions=assumptions, unchecked=unchecked,
                       tiles=math.ceil(total_cores / per_tile),
                       core_of={k: v.astype(int).tolist() for k, v in core_of.items()}, links=links)
