"""Hardware profiles: per-operation energies and times, chip limits and calibration, validated on load.

A profile is a YAML file (the shipped ones live in the `hardware_profiles` package). Every number
is a quantity with its unit and `source`; an assumed number also says `assumed: true` and `why`;
where sources differ it carries a range, each end with its own source::

    energy:
      ac:
        value: 23.6            # the estimate
        unit: pJ per synaptic operation   # a unit symbol first, then any description
        source: "Davies et al. 2018, Table 2"
        low:  {value: 23.6, source: "Davies et al. 2018, Table 2 (pre-silicon minimum)"}
        high: {value: 35.5, source: "SANA-FE loihi.yaml, fitted to Loihi silicon"}

Units are checked against what each field measures and converted to SI on load (pJ -> J, ns -> s,
mW -> W, KiB -> bytes); a unit of the wrong kind, or one not known, is refused by field name, never
misread. Fields:

    name, description, kind: neuromorphic | conventional
    event_driven: bool          # zero inputs cost nothing (default: neuromorphic only)
    floor: bool                 # a compute-only floor (arithmetic, no memory): labelled as such
    energy: {ac, mac, neuron_update, spike_out, message}       # J per event, each optional
    time:   {ac, mac, neuron_update, spike_out, message_out, message_in}   # s per event
    barrier_sync: {unit, source, by_tiles: {tiles: time}, low: {...}, high: {...}}
    static_power: Q             # W, for the basis `static_power_basis` (chip or device)
    throughput: Q               # op/s, conventional targets: latency = ops / throughput
    step_time: Q                # s per step, when the user or the profile fixes it
    chip: {cores_per_chip, cores_per_tile, neurons_per_core, ...}   # see ChipLimits
    calibration: [{measurement, quantity, reference: Q, estimate: Q, ratio, benchmark, reasons}]
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

import hardware_profiles
from lmu2neuro.core.documents import excerpt, load_yaml
from lmu2neuro.core.errors import UserError

# unit symbol -> factor to SI, per kind of quantity
UNITS: dict[str, dict[str, float]] = {
    "energy": {"J": 1.0, "mJ": 1e-3, "uJ": 1e-6, "µJ": 1e-6, "nJ": 1e-9, "pJ": 1e-12, "fJ": 1e-15},
    "time": {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9, "ps": 1e-12},
    "power": {"W": 1.0, "mW": 1e-3, "uW": 1e-6, "µW": 1e-6},
    "rate": {"op/s": 1.0, "kop/s": 1e3, "Mop/s": 1e6, "Gop/s": 1e9, "Top/s": 1e12},
    "bytes": {"bytes": 1.0, "B": 1.0, "KiB": 1024.0, "MiB": 1024.0 ** 2},
    "cores": {"cores": 1.0}, "neurons": {"neurons": 1.0}, "axons": {"axons": 1.0}, "bits": {"bits": 1.0},
    "steps": {"steps": 1.0, "time": 1.0}, "synapses": {"synapses": 1.0},
}
SI = {"energy": "J", "time": "s", "power": "W", "rate": "op/s", "bytes": "bytes"}
# the largest number a profile may state, in its SI unit: above a GPU's 1e15 op/s and any chip's
# capacity, and small enough that counts (<= 1e20 events) times it stay far inside float64
MAX_SI_VALUE = 1e18


class End(BaseModel):
    """One end of a range, with its own source."""

    model_config = ConfigDict(extra="forbid")
    value: float = Field(ge=0, allow_inf_nan=False)
    source: str = Field(min_length=1)


class Quantity(BaseModel):
    """One number with its unit, where it comes from, and a low-high range where sources differ."""

    model_config = ConfigDict(extra="forbid")
    value: float = Field(ge=0, allow_inf_nan=False)
    unit: str = Field(min_length=1)
    source: str = Field(min_length=1)
    assumed: bool = False
    why: str | None = None
    low: End | None = None
    high: End | None = None
    given: str | None = None  # filled in on load: the value as written, e.g. "23.6 pJ"

    @model_validator(mode="after")
    def _consistent(self):
        if self.assumed and not self.why:
            raise ValueError("an assumed number must say why (field 'why')")
        lo = self.low.value if self.low else self.value
        hi = self.high.value if self.high else self.value
        if lo > hi:
            raise ValueError(f"a range whose low end ({lo:g}) is not above its high end ({hi:g})")
        if not lo <= self.value <= hi:
            raise ValueError(f"a value ({self.value:g}) inside its range [{lo:g}, {hi:g}]")
        return self

    @property
    def lo(self) -> float:
        return self.low.value if self.low else self.value

    @property
    def hi(self) -> float:
        return self.high.value if self.high else self.value

    @property
    def has_range(self) -> bool:
        return self.lo != self.hi

    def range_sources(self) -> dict[str, str]:
        out = {"value": self.source + (" (assumed)" if self.assumed else "")}
        if self.low:
            out["low"] = self.low.source
        if self.high:
            out["high"] = self.high.source
        return out


class TableEnd(BaseModel):
    model_config = ConfigDict(extra="forbid")
    by_tiles: dict[int, float]
    source: str = Field(min_length=1)


MAX_TABLE_ENTRIES = 1024  # tile counts in one barrier table (a chip has at most a few hundred tiles)


class BarrierTable(BaseModel):
    """Barrier synchronisation time per step as a function of tiles used (SANA-FE's convention: the
    entry for the largest tile count not above the tiles used; below the first entry, the first)."""

    model_config = ConfigDict(extra="forbid")
    unit: str
    source: str = Field(min_length=1)
    by_tiles: dict[int, float]
    low: TableEnd | None = None
    high: TableEnd | None = None
    assumed: bool = False
    why: str | None = None

    @model_validator(mode="after")
    def _consistent(self):
        for name, table in (("by_tiles", self.by_tiles), ("low.by_tiles", self.low and self.low.by_tiles),
                            ("high.by_tiles", self.high and self.high.by_tiles)):
            if table is None:
                continue
            if not table:
                raise ValueError(f"at least one entry in '{name}'")
            if len(table) > MAX_TABLE_ENTRIES:  # the range check below looks every tile count up
                raise ValueError(f"at most {MAX_TABLE_ENTRIES} entries in '{name}', got {len(table):,}")
            for k, v in table.items():
                if k < 1 or not (math.isfinite(v) and v >= 0):
                    raise ValueError(f"'{name}' entries of tiles >= 1 and a finite time >= 0, got {k}: {v:.4g}")
        # the low table may not exceed the estimate, nor the estimate the high table, at any tile
        # count one of them names (as a Quantity's range is refused when inverted)
        tiles = sorted(set(self.by_tiles) | set(self.low.by_tiles if self.low else ())
                       | set(self.high.by_tiles if self.high else ()))
        for n in tiles:
            est = self.lookup(self.by_tiles, n)
            if self.low and self.lookup(self.low.by_tiles, n) > est:
                raise ValueError(f"'low.by_tiles' at {n} tiles ({self.lookup(self.low.by_tiles, n):.4g}) not above "
                                 f"the estimate ({est:.4g})")
            if self.high and self.lookup(self.high.by_tiles, n) < est:
                raise ValueError(f"'high.by_tiles' at {n} tiles ({self.lookup(self.high.by_tiles, n):.4g}) not below "
                                 f"the estimate ({est:.4g})")
        if self.assumed and not self.why:
            raise ValueError("an assumed number must say why (field 'why')")
        return self

    @staticmethod
    def lookup(table: dict[int, float], tiles: int) -> float:
        keys = sorted(table)
        below = [k for k in keys if k <= tiles]
        return table[below[-1] if below else keys[0]]

    def at(self, tiles: int) -> tuple[float, float, float]:
        """(estimate, low, high) in seconds for `tiles` tiles."""
        v = self.lookup(self.by_tiles, tiles)
        lo = self.lookup(self.low.by_tiles, tiles) if self.low else v
        hi = self.lookup(self.high.by_tiles, tiles) if self.high else v
        return v, min(lo, v), max(hi, v)


class Energy(BaseModel):
    """Dynamic energy per event; a missing entry is reported as left out, never as zero."""

    model_config = ConfigDict(extra="forbid")
    ac: Quantity | None = None  # synaptic op driven by a binary spike
    mac: Quantity | None = None  # synaptic op driven by a graded value
    neuron_update: Quantity | None = None  # one neuron, one time step
    spike_out: Quantity | None = None  # one spike generated
    message: Quantity | None = None  # one spike message sent to one destination core

    @model_validator(mode="after")
    def _not_empty(self):
        if not any(getattr(self, k) is not None for k in type(self).model_fields):
            raise ValueError(f"at least one of {', '.join(type(self).model_fields)} (an empty energy table "
                             "would cost everything at zero)")
        return self


class Time(BaseModel):
    """Busy time of one core per event (the time model of a neuromorphic profile)."""

    model_config = ConfigDict(extra="forbid")
    ac: Quantity
    mac: Quantity | None = None  # default: the binary op's time
    neuron_update: Quantity
    spike_out: Quantity | None = None
    message_out: Quantity | None = None
    message_in: Quantity | None = None


class _Rule(BaseModel):
    """A mapping rule with where it comes from; an assumed one says why."""

    model_config = ConfigDict(extra="forbid")
    source: str = Field(min_length=1)
    assumed: bool = False
    why: str | None = None

    @model_validator(mode="after")
    def _why(self):
        if self.assumed and not self.why:
            raise ValueError("an assumed rule must say why (field 'why')")
        return self


class ConvWeights(_Rule):
    """How a core stores a convolution's synapses: "shared" (the kernel once per output channel on
    the core, every neuron of the channel uses it) or "per_synapse" (every connection its own
    synapse), with where that rule comes from."""

    storage: Literal["shared", "per_synapse"]


class Partition(_Rule):
    """How layers are cut into cores (analysis/chip_mapping.py), with where the rule comes from.

    ``frames``: "slabs" cuts a layer with a (C, H, W) frame whose inputs are all convolutions into
    blocks of full height and all channels, as wide as every per-core limit allows (then shorter,
    then fewer channels); "in_order" packs every layer neuron by neuron. ``slab_widths``: "any" or
    "powers_of_two" (the widths Loihi 2's compiler printed). ``dense_synapse_bits``: a dense
    projection stored with every (target, source) pair, zeros included, at this many bits; None:
    its nonzero synapses at weight (+ delay) bits."""

    frames: Literal["slabs", "in_order"] = "in_order"
    slab_widths: Literal["any", "powers_of_two"] = "any"
    dense_synapse_bits: int | None = Field(default=None, ge=1)


class ChipLimits(BaseModel):
    """Per-core and per-chip limits of a neuromorphic chip; a missing limit is not checked."""

    model_config = ConfigDict(extra="forbid")
    cores_per_chip: Quantity
    neurons_per_core: Quantity
    synaptic_memory_per_core: Quantity  # bytes
    cores_per_tile: Quantity | None = None
    fan_in_axons_per_core: Quantity | None = None
    fan_out_axons_per_core: Quantity | None = None
    weight_bits_min: Quantity | None = None
    weight_bits_max: Quantity | None = None
    max_delay: Quantity | None = None  # steps
    neurons_per_chip: Quantity | None = None
    synapses_per_chip: Quantity | None = None
    conv_weights: ConvWeights | None = None  # None: per synapse (the conservative rule)
    partition: Partition | None = None  # None: every layer packed neuron by neuron, in order

    @model_validator(mode="after")
    def _limits_make_sense(self):
        # a capacity of zero would divide by zero or map a layer onto nothing
        for k in ("cores_per_chip", "neurons_per_core", "synaptic_memory_per_core", "fan_in_axons_per_core",
                  "fan_out_axons_per_core", "neurons_per_chip", "synapses_per_chip", "cores_per_tile"):
            q = getattr(self, k)
            if q is not None and q.value < 1:
                raise ValueError(f"'{k}' of at least 1 (a capacity), got {q.value:g}")
        lo, hi = self.weight_bits_min, self.weight_bits_max
        if (lo is None) != (hi is None):
            raise ValueError("both 'weight_bits_min' and 'weight_bits_max', or neither")
        if lo is not None and not 1 <= lo.value <= hi.value:
            raise ValueError(f"1 <= weight_bits_min ({lo.value:g}) <= weight_bits_max ({hi.value:g})")
        return self


class Calibration(BaseModel):
    """One check of the profile against a measured chip or an independent simulator."""

    model_config = ConfigDict(extra="forbid")
    measurement: str = Field(min_length=1)
    quantity: str = Field(min_length=1)  # e.g. "dynamic energy per inference"
    reference: Quantity
    estimate: Quantity | None = None  # None: could not be rebuilt, and `reasons` say why
    ratio: float | None = Field(default=None, gt=0, allow_inf_nan=False)  # estimate / reference, as the benchmark printed it
    benchmark: str = Field(min_length=1)  # the script that reproduces the estimate
    reasons: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ratio_with_estimate(self):
        if (self.estimate is None) != (self.ratio is None):
            raise ValueError("'estimate' and 'ratio' together, or neither (a check that could not be rebuilt)")
        if self.estimate is None and not self.reasons:
            raise ValueError("'reasons' saying why a check without an estimate could not be rebuilt")
        return self


# field -> the kind of unit it takes
_KIND = {"energy": "energy", "time": "time", "static_power": "power", "step_time": "time", "throughput": "rate"}
_CHIP_KIND = {"cores_per_chip": "cores", "cores_per_tile": "cores", "neurons_per_core": "neurons",
              "synaptic_memory_per_core": "bytes", "fan_in_axons_per_core": "axons",
              "fan_out_axons_per_core": "axons", "weight_bits_min": "bits", "weight_bits_max": "bits",
              "max_delay": "steps", "neurons_per_chip": "neurons", "synapses_per_chip": "synapses"}
_CAL_KIND = {"dynamic energy per inference": "energy", "total energy per inference": "energy",
             "activity-dependent energy per inference": "energy",
             "energy per step": "energy", "time per step": "time", "latency per inference": "time"}


class Profile(BaseModel):
    """A validated hardware profile; every value in SI units (J, s, W, op/s, bytes)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    description: str = ""
    kind: Literal["neuromorphic", "conventional"]
    # Whether a zero input costs nothing (event-driven). Default: true for neuromorphic
    # targets, false for conventional ones, which run every connection every step.
    event_driven: bool | None = None
    floor: bool = False  # counts arithmetic only: a lower bound, not a device
    energy: Energy
    time: Time | None = None
    barrier_sync: BarrierTable | None = None
    static_power: Quantity | None = None
    static_power_basis: Literal["chip", "device"] | None = None
    throughput: Quantity | None = None
    step_time: Quantity | None = None
    chip: ChipLimits | None = None
    calibration: list[Calibration] = Field(default_factory=list)
    path: str | None = None  # filled in by the loader

    @model_validator(mode="after")
    def _sections_fit(self):
        if self.static_power is not None and self.static_power_basis is None:
            raise ValueError("'static_power_basis' (chip or device) when 'static_power' is given")
        if self.time is not None and self.chip is None:
            raise ValueError("a 'chip' section for the time model ('time' needs the cores a network uses)")
        return self

    @property
    def skips_zeros(self) -> bool:
        return self.event_driven if self.event_driven is not None else self.kind == "neuromorphic"

    def assumptions(self) -> list[str]:
        """One line per assumed number: 'field = value unit: why'."""
        out = []
        for field, q in self.quantities():
            if q.assumed:
                out.append(f"{field} = {q.given or q.value}: {' '.join((q.why or '').split())}")
        cw = self.chip.conv_weights if self.chip is not None else None
        if cw is not None and cw.assumed:
            out.append(f"chip.conv_weights = {cw.storage}: {' '.join((cw.why or '').split())}")
        part = self.chip.partition if self.chip is not None else None
        if part is not None and part.assumed:
            out.append(f"chip.partition = {part.frames} ({part.slab_widths} widths, dense synapses at "
                       f"{part.dense_synapse_bits or 'weight'} bits): {' '.join((part.why or '').split())}")
        if self.barrier_sync is not None and self.barrier_sync.assumed:
            out.append(f"barrier_sync: {' '.join((self.barrier_sync.why or '').split())}")
        return out

    def quantities(self) -> list[tuple[str, Quantity]]:
        """Every number of the profile as (dotted field name, Quantity)."""
        out: list[tuple[str, Quantity]] = []
        for group_name in ("energy", "time", "chip"):
            group = getattr(self, group_name)
            if group is None:
                continue
            for k in type(group).model_fields:
                q = getattr(group, k)
                if isinstance(q, Quantity):
                    out.append((f"{group_name}.{k}", q))
        for k in ("static_power", "throughput", "step_time"):
            q = getattr(self, k)
            if q is not None:
                out.append((k, q))
        return out


def shipped_profiles() -> dict[str, Path]:
    """Name -> path of every profile shipped with lmu2neuro."""
    # Through __path__ rather than a function of the package: an editable install made before
    # the package had an __init__.py imports it as a namespace package.
    folder = Path(next(iter(hardware_profiles.__path__)))
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def _describe(err: dict) -> str:
    loc = ".".join(str(x)[:40] for x in err["loc"]) or "(top level)"
    typ = err.get("type", "")
    if typ == "missing":
        return f"field '{loc}': missing (required)"
    if typ == "extra_forbidden":
        return f"field '{loc}': unknown field"
    got = excerpt(err.get("input"))  # bounded: a huge or deeply nested value is never rendered whole
    if typ == "greater_than_equal":
        return f"field '{loc}': got {got}, expected a number >= 0"
    if typ == "finite_number":
        return f"field '{loc}': got {got}, expected a finite number >= 0"
    expected = " ".join(err["msg"].removeprefix("Value error, ").split())[:200]
    if isinstance(err.get("input"), dict):  # a check across a group's fields: its message names them
        return f"field '{loc}': expected {expected}"
    return f"field '{loc}': got {got}, expected {expected}"


def _factor(unit: str, kind: str, where: str, path) -> tuple[float, str]:
    """(factor to SI, description after the symbol) of a unit string such as 'pJ per synaptic op'."""
    text = " ".join(str(unit).split())
    symbol, _, rest = text.partition(" ")
    table = UNITS[kind]
    if symbol not in table:
        raise UserError(f"{path}: field '{where}.unit': got {text!r}, expected a unit of {kind} first "
                        f"({', '.join(table)}), then any description")
    return table[symbol], rest


def _check_si(value: float, where: str, path, si_unit: str) -> None:
    if value > MAX_SI_VALUE:
        raise UserError(f"{path}: field '{where}': {value:.4g} {si_unit} once converted; expected at most "
                        f"{MAX_SI_VALUE:g} {si_unit} (no chip's per-event figure or capacity comes near it, and "
                        "the report's products would overflow)")


def _convert(q: Quantity, kind: str, where: str, path) -> Quantity:
    f, rest = _factor(q.unit, kind, where, path)
    si = SI.get(kind, q.unit.split(" ")[0])
    for end, v in (("", q.value), (".low", q.lo), (".high", q.hi)):
        _check_si(v * f, where + end, path, si)
    si_unit = SI.get(kind, q.unit.split(" ")[0])
    upd = {"value": q.value * f, "unit": (si_unit + " " + rest).strip(),
           "given": f"{q.value:g} {' '.join(q.unit.split())}"}
    if q.low:
        upd["low"] = q.low.model_copy(update={"value": q.low.value * f})
    if q.high:
        upd["high"] = q.high.model_copy(update={"value": q.high.value * f})
    return q.model_copy(update=upd)


def _to_si(prof: Profile, path) -> Profile:
    upd: dict = {}
    for group in ("energy", "time"):
        g = getattr(prof, group)
        if g is None:
            continue
        conv = {k: _convert(getattr(g, k), _KIND[group], f"{group}.{k}", path)
                for k in type(g).model_fields if getattr(g, k) is not None}
        upd[group] = g.model_copy(update=conv)
    for k in ("static_power", "step_time", "throughput"):
        q = getattr(prof, k)
        if q is not None:
            upd[k] = _convert(q, _KIND[k], k, path)
    if prof.chip is not None:
        conv = {k: _convert(getattr(prof.chip, k), _CHIP_KIND[k], f"chip.{k}", path)
                for k in _CHIP_KIND if getattr(prof.chip, k) is not None}
        upd["chip"] = prof.chip.model_copy(update=conv)
    if prof.barrier_sync is not None:
        b = prof.barrier_sync
        f, _ = _factor(b.unit, "time", "barrier_sync", path)

        def scale(t):
            for k, v in t.items():
                _check_si(v * f, f"barrier_sync.by_tiles.{k}", path, "s")
            return {k: v * f for k, v in t.items()}
        upd["barrier_sync"] = b.model_copy(update={
            "unit": "s", "by_tiles": scale(b.by_tiles),
            "low": b.low.model_copy(update={"by_tiles": scale(b.low.by_tiles)}) if b.low else None,
            "high": b.high.model_copy(update={"by_tiles": scale(b.high.by_tiles)}) if b.high else None})
    cals = []
    for i, c in enumerate(prof.calibration):
        kind = _CAL_KIND.get(c.quantity)
        if kind is None:
            raise UserError(f"{path}: field 'calibration.{i}.quantity': got {c.quantity!r}, expected one of "
                            f"{', '.join(_CAL_KIND)}")
        cals.append(c.model_copy(update={"reference": _convert(c.reference, kind, f"calibration.{i}.reference", path),
                                         "estimate": _convert(c.estimate, kind, f"calibration.{i}.estimate", path)
                                         if c.estimate is not None else None}))
    upd["calibration"] = cals
    return prof.model_copy(update=upd)


def load_profile(name_or_path: str | os.PathLike) -> Profile:
    """Load a shipped profile by name (e.g. 'loihi1') or a user's own YAML file by path.

    Raises UserError (one line, naming the file, the field and what was expected) for an unknown
    name, a file that is not YAML, a missing field, a negative or non-finite value, a unit of the
    wrong kind or a range whose low end exceeds its high end.
    """
    shipped = shipped_profiles()
    s = str(name_or_path)
    if s in shipped:
        path = shipped[s]
    else:
        path = Path(s)
        looks_like_path = path.suffix in (".yaml", ".yml") or os.sep in s or "/" in s
        if not looks_like_path:
            raise UserError(f"unknown profile '{s}': expected one of {', '.join(shipped)} or a path to a .yaml file")
    data = load_yaml(path, "profile file", "a hardware profile .yaml")
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of profile fields at the top level, got {type(data).__name__}")
    try:
        prof = Profile.model_validate(data)
    except ValidationError as exc:
        errs = exc.errors()
        more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
        raise UserError(f"{path}: {_describe(errs[0])}{more}") from None
    return _to_si(prof, path).model_copy(update={"path": str(path)})
