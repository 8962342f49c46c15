"""Cores and chips for a network on a neuromorphic profile, and every per-core limit it breaks.

Where the profile's ``chip.partition`` says "slabs", a population whose neurons form a (C, H, W)
frame fed only by convolutions (or by nothing: an input layer driven through its bias) is cut as
Loihi 2's compiler cuts it (lava-dl's PilotNet printout): blocks of full height and all channels,
as wide as every per-core limit allows (widths any, or powers of two), then, where one column does
not fit, fewer rows, then fewer channels; cores are numbered along the width, so a core's fan-out
reaches few target cores. Every other population is packed greedily onto cores, neuron by neuron
in order, opening a new core when the next neuron would exceed a per-core limit:
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
reaches; a layer whose cores send more than the profile allows is placed again with fewer neurons
per core (in proportion to the excess, up to FAN_OUT_RETRIES times) before it is reported. The input is injected by the host and takes no core. A single neuron that breaks a
limit on its own cannot be fixed by packing: it is reported as a violation with its layer.
A dense projection can be stored in the dense format (``partition.dense_synapse_bits``: every
(target, source) pair, zeros included). Each layer's lower bound (its neurons over the per-core
count, its synaptic bytes, each shared kernel once, over the per-core memory) is reported beside
its cores. Chips = the most of ceil(cores / cores per chip) and the per-chip neuron and synapse limits.
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
    lower_bound_cores: int = 0  # no partition under these limits uses fewer (_lower_bound)
    partition: str = "in order"  # "slabs" (blocks of a frame, as Loihi 2's compiler) or "in order"


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
    lower_bound_cores: int = 0  # the sum of the layers' lower bounds
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


def _shared_total(pop, into, bits_per, cores) -> float:
    """Synaptic bytes with convolution kernels shared within a core: each core stores the kernels of
    the channels it holds (dense projections as their nonzero synapses)."""
    total = 0.0
    for p, b in zip(into, bits_per):
        if p.conv is None:
            total += float((p.fan_in() * b / 8).sum())
            continue
        positions = pop.size // int(p.out_shape[0])
        ch = np.arange(pop.size) // positions
        pairs = np.unique(cores * int(p.out_shape[0]) + ch)
        total += float(_channel_bytes(p, b)[pairs % int(p.out_shape[0])].sum())
    return total


def _channel_bytes(proj, bits: int) -> np.ndarray:
    """(C_out,) bytes of one output channel's kernel, nonzero entries over all taps."""
    return proj.channel_synapses() * bits / 8


@dataclass
class _Layer:
    """What packing one population needs: its sources as CSR rows over all projections into it (one
    index space, projection k's sources offset by the sizes before it), each neuron's own synaptic
    bytes, and the convolutions whose kernels a core stores once per channel it holds."""

    size: int
    shape: tuple[int, ...] | None
    tgt: np.ndarray
    src: np.ndarray
    n_src: int
    own_bytes: np.ndarray
    shared: list  # (channel of each neuron, bytes of each channel's kernel)
    per_syn_bytes: np.ndarray
    frame_of_convs: bool  # a (C, H, W) frame fed by convolutions only (or by nothing)


def _layer(net, pop, into, bits_per, rule, dense_bits, links) -> _Layer:
    tgts, srcs, offset = [], [], 0
    per_syn_bytes = np.zeros(pop.size)  # every connection its own synapse
    own_bytes = np.zeros(pop.size)  # what each neuron adds alone under the profile's rules
    shared = []
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
        elif p.conv is None and dense_bits:  # the dense format: every pair, zeros included
            own_bytes += p.taps * net.size_of(p.source) * dense_bits / 8
        else:
            own_bytes += neuron_bytes
    shape = tuple(pop.shape) if pop.shape is not None else None
    return _Layer(pop.size, shape, np.concatenate(tgts) if tgts else np.zeros(0, np.int64),
                  np.concatenate(srcs) if srcs else np.zeros(0, np.int64), max(offset, 1), own_bytes, shared,
                  per_syn_bytes, shape is not None and len(shape) == 3 and all(p.conv is not None for p in into))


def _usage(lay: _Layer, cores: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(neurons, fan-in axons, synaptic bytes) of each of the n cores the assignment uses."""
    neurons = np.bincount(cores, minlength=n)
    pairs = np.unique(cores[lay.tgt] * lay.n_src + lay.src)
    axons = np.bincount(pairs // lay.n_src, minlength=n)
    mem = np.bincount(cores, weights=lay.own_bytes, minlength=n)
    for ch, cb in lay.shared:
        held = np.unique(cores * cb.size + ch)  # (core, channel) pairs: each kernel once per core
        mem += np.bincount(held // cb.size, weights=cb[held % cb.size], minlength=n)
    return neurons, axons, mem


def _over(lay, cores, n, limits) -> str | None:
    """The first per-core limit the assignment breaks (None: it fits), skipping a core of one neuron
    (a neuron that breaks a limit alone is a violation, not a packing problem)."""
    neurons, axons, mem = _usage(lay, cores, n)
    n_core, mem_core, fin = limits
    several = neurons > 1
    if neurons.max(initial=0) > n_core:
        return "neurons"
    if fin is not None and np.any(several & (axons > fin)):
        return "fan-in axons"
    if mem_core is not None and np.any(several & (mem > mem_core)):
        return "synaptic memory"
    return None


def _blocks(lay: _Layer, limits, widths: str) -> tuple[np.ndarray, str] | None:
    """A frame cut into blocks as the Loihi 2 compiler cuts convolutions: full height and all
    channels, as wide as fits (``widths`` "powers_of_two": 1, 2, 4, ...); where one column does not
    fit, fewer rows, then fewer channels. Cores are numbered along the width. Returns (core of
    each neuron, the limit that bound the block) or None where nothing fits (packing decides)."""
    c, h, w = lay.shape
    idx = np.arange(lay.size)
    ci, hi, wi = idx // (h * w), (idx // w) % h, idx % w
    cands = [(c, h, wb) for wb in range(w, 0, -1) if widths == "any" or wb & (wb - 1) == 0]
    cands += [(c, hb, 1) for hb in range(h - 1, 0, -1)] + [(cb, 1, 1) for cb in range(c - 1, 0, -1)]
    reason = "fits one core"
    for cb, hb, wb in cands:
        if cb * hb * wb > limits[0]:
            reason = "neurons"
            continue
        key = (wi // wb) * (c * h) + (hi // hb) * c + ci // cb  # along the width first
        _, cores = np.unique(key, return_inverse=True)
        cores = cores.reshape(-1)
        n = int(cores.max()) + 1
        bad = _over(lay, cores, n, limits)
        if bad is None:
            if n == 1:
                return cores, "fits one core"
            return cores, "slab widths" if reason == "fits one core" else reason
        reason = bad
    return None


def _in_order(lay: _Layer, limits) -> tuple[np.ndarray, str]:
    """Greedy in-order packing, neuron by neuron, opening a core when the next would break a limit."""
    n_core, mem_core, fin = limits
    order = np.argsort(lay.tgt, kind="stable")
    src_sorted = lay.src[order]
    starts = np.concatenate([[0], np.cumsum(np.bincount(lay.tgt, minlength=lay.size))]).astype(np.int64)
    cores = np.zeros(lay.size, dtype=np.int64)
    seen = np.zeros(lay.n_src, bool)  # sources already on the current core
    seen_list: list[np.ndarray] = []
    seen_channels = [set() for _ in lay.shared]
    count, axons, mem, core = 0, 0, 0.0, 0
    closed_by: dict[str, int] = {}
    for i in range(lay.size):
        mine = src_sorted[starts[i]:starts[i + 1]]
        new = mine[~seen[mine]]
        add = lay.own_bytes[i] + sum(cb[ch[i]] for (ch, cb), sc in zip(lay.shared, seen_channels) if ch[i] not in sc)
        reason = None
        if count + 1 > n_core:
            reason = "neurons"
        elif fin is not None and axons + new.size > fin and count > 0:
            reason = "fan-in axons"
        elif mem_core is not None and mem + add > mem_core and count > 0:
            reason = "synaptic memory"
        if reason:
            closed_by[reason] = closed_by.get(reason, 0) + 1
            core += 1
            for arr in seen_list:
                seen[arr] = False
            seen_list, count, axons, mem = [], 0, 0, 0.0
            seen_channels = [set() for _ in lay.shared]
            new = mine
            add = lay.own_bytes[i] + sum(cb[ch[i]] for ch, cb in lay.shared)
        seen[new] = True
        seen_list.append(new)
        axons += new.size
        for (ch, _), sc in zip(lay.shared, seen_channels):
            sc.add(int(ch[i]))
        count += 1
        mem += add
        cores[i] = core
    return cores, (max(closed_by, key=closed_by.get) if closed_by else "fits one core")


def _lower_bound(lay: _Layer, limits) -> int:
    """Cores no partition can go below: the neurons over the per-core count, and the synaptic
    bytes (each shared kernel stored at least once) over the per-core memory."""
    n_core, mem_core, _ = limits
    need = lay.own_bytes.sum() + sum(float(cb.sum()) for _, cb in lay.shared)
    return max(math.ceil(lay.size / n_core), math.ceil(need / mem_core) if mem_core else 0, 1 if lay.size else 0)


def _alone(layer: str, lay: _Layer, worst: int, limits, name: str) -> list[Violation]:
    """A single neuron that breaks a per-core limit on its own: no packing can fix it."""
    _, mem_core, fin = limits
    out = []
    if fin is not None and worst > fin:
        out.append(Violation(layer, "chip.fan_in_axons_per_core", worst, fin,
                             f"layer '{layer}': a single neuron has {worst} fan-in axons, a {name} core allows {fin:g}"))
    alone = lay.own_bytes + sum(cb[ch] for ch, cb in lay.shared) if lay.size else lay.own_bytes
    if mem_core is not None and alone.size and alone.max() > mem_core:
        out.append(Violation(layer, "chip.synaptic_memory_per_core", float(alone.max()), mem_core,
                             f"layer '{layer}': a single neuron's synapses need {alone.max():.0f} B, "
                             f"a {name} core has {mem_core:g} B"))
    return out


def _fan_out(pops, projs, links, core_of, n_total, row_of, fout, name) -> list[Violation]:
    """Fan-out axons: per source neuron, the distinct target cores it reaches, summed per core
    (written into each layer's row); the cores that send more than ``fout``."""
    violations: list[Violation] = []
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
                                        f"a {name} core allows {fout:g}"))

    return violations


def _assumptions(profile: Profile, rule: str) -> list[str]:
    part = profile.chip.partition
    slabs = part is not None and part.frames == "slabs"
    return [
        ("a frame fed by convolutions is cut into blocks of full height and all channels, as wide as the per-core "
         f"limits allow ({part.slab_widths.replace('_', ' ')} widths; {part.source}); other layers packed neuron by "
         "neuron in order" if slabs else
         "greedy in-order packing of each layer's neurons (an optimising compiler may use fewer cores)"),
        ("synaptic memory = nonzero synapses x (weight bits + delay bits), no index overhead"
         + (f"; a dense projection stores every (target, source) pair at {part.dense_synapse_bits} bits"
            if part is not None and part.dense_synapse_bits else "")),
        (f"convolutions: {rule.replace('_', ' ')} weights ({profile.chip.conv_weights.source})"
         if profile.chip.conv_weights is not None else
         "convolutions: every connection its own synapse (the profile states no weight sharing)"),
        "the input is injected by the host and occupies no core (a layer of neurons it drives through their "
        "bias is mapped like any other)",
    ] + profile.assumptions()


# Fan-out is known only once every layer is placed (it counts the target cores a source neuron
# reaches): a layer whose cores send too many axons is placed again with fewer neurons per core,
# at most this many times
FAN_OUT_RETRIES = 4


def _map_layers(net: IntNetwork, profile: Profile, weight_bits: int, caps: dict[str, int]):
    """Every on-chip population placed: (rows, core of each neuron, links, violations, cores).
    ``caps``: a smaller neurons-per-core limit for the layers named."""
    n_core = int(_limit(profile, "neurons_per_core"))
    base = (n_core, _limit(profile, "synaptic_memory_per_core"), _limit(profile, "fan_in_axons_per_core"))
    max_delay = _limit(profile, "max_delay")
    rule = profile.chip.conv_weights.storage if profile.chip.conv_weights is not None else "per_synapse"
    part = profile.chip.partition
    violations: list[Violation] = []
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
        lay = _layer(net, pop, into, bits_per, rule, part.dense_synapse_bits if part else None, links)
        limits = (min(n_core, caps.get(pop.name, n_core)),) + base[1:]
        placed = (_blocks(lay, limits, part.slab_widths) if part is not None and part.frames == "slabs"
                  and lay.frame_of_convs and pop.size else None)
        cores, limited_by = placed if placed is not None else _in_order(lay, limits)
        n_cores = int(cores.max()) + 1 if pop.size else 0
        _, core_fan_in, core_mem = _usage(lay, cores, max(n_cores, 1))
        core_of[pop.name] = cores + next_core
        next_core += n_cores

        fan_in = np.bincount(lay.tgt, minlength=pop.size)  # distinct sources per neuron
        worst = int(fan_in.max()) if fan_in.size else 0
        violations += _alone(pop.name, lay, worst, base, profile.name)
        shared_total = _shared_total(pop, into, bits_per, cores) if any(p.conv is not None for p in into) else None
        rows.append(LayerCores(
            layer=pop.name, neurons=pop.size, cores=n_cores,
            synapses=int(sum(p.synapses() for p in into)),
            synaptic_bytes=int(math.ceil(core_mem.sum())), max_fan_in_axons=worst,
            max_core_fan_in_axons=int(core_fan_in.max(initial=0)), max_core_fan_out_axons=0,
            max_core_synaptic_bytes=int(math.ceil(core_mem.max(initial=0))),
            limited_by="fan-out axons" if pop.name in caps else limited_by,
            stored_weights=int(sum(p.stored_weights() for p in into)),
            synaptic_bytes_per_synapse=int(math.ceil(lay.per_syn_bytes.sum())),
            synaptic_bytes_shared=None if shared_total is None else int(math.ceil(shared_total)),
            conv_weights=rule, lower_bound_cores=_lower_bound(lay, base),
            partition="slabs" if placed is not None else "in order",
        ))
    return rows, core_of, links, violations, next_core


def map_to_chip(net: IntNetwork, profile: Profile, weight_bits: int = fx.WEIGHT_BITS) -> ChipMapping:
    """Map `net` onto `profile`'s cores; raises ValueError if the profile has no `chip` section."""
    if profile.chip is None:
        raise ValueError(f"profile '{profile.name}' has no 'chip' section")
    fout = _limit(profile, "fan_out_axons_per_core")
    unchecked = [f"chip.{k} (not in the profile)" for k in ("fan_in_axons_per_core", "fan_out_axons_per_core", "max_delay")
                 if _limit(profile, k) is None]
    violations: list[Violation] = []
    wmin, wmax = _limit(profile, "weight_bits_min"), _limit(profile, "weight_bits_max")
    if (wmin is not None and weight_bits < wmin) or (wmax is not None and weight_bits > wmax):
        violations.append(Violation("(all)", "chip.weight_bits_max", weight_bits, wmax or 0,
                                    f"weights stored at {weight_bits} bits, {profile.name} supports {wmin:g}-{wmax:g}"))
    pops, projs = net.on_chip()
    caps: dict[str, int] = {}
    for attempt in range(FAN_OUT_RETRIES + 1):
        rows, core_of, links, placed, n_total = _map_layers(net, profile, weight_bits, caps)
        fan_out = _fan_out(pops, projs, links, core_of, max(n_total, 1), {r.layer: r for r in rows}, fout,
                           profile.name)
        smaller = {}
        for v in fan_out:  # the same layer again with its neurons per core cut by the excess
            most = int(np.bincount(core_of[v.layer]).max())
            if most > 1:
                smaller[v.layer] = max(1, int(most * v.allowed / v.value))
        if not smaller or attempt == FAN_OUT_RETRIES:
            break
        caps.update(smaller)
    violations += placed + fan_out
    total_cores = sum(r.cores for r in rows)
    chips = math.ceil(total_cores / _limit(profile, "cores_per_chip"))
    npc, spc = _limit(profile, "neurons_per_chip"), _limit(profile, "synapses_per_chip")
    if npc:
        chips = max(chips, math.ceil(sum(r.neurons for r in rows) / npc))
    if spc:
        chips = max(chips, math.ceil(sum(r.synapses for r in rows) / spc))
    rule = profile.chip.conv_weights.storage if profile.chip.conv_weights is not None else "per_synapse"
    per_tile = _limit(profile, "cores_per_tile") or 1
    return ChipMapping(profile=profile.name, layers=rows, cores=total_cores, chips=max(chips, 1 if rows else 0),
                       violations=violations, assumptions=_assumptions(profile, rule), unchecked=unchecked,
                       tiles=math.ceil(total_cores / per_tile), lower_bound_cores=sum(r.lower_bound_cores for r in rows),
                       core_of={k: v.astype(int).tolist() for k, v in core_of.items()}, links=links)
