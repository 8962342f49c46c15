"""Hardware profiles: per-operation energies and chip limits, validated when loaded.

A profile is a YAML file (the shipped ones live in the `hardware_profiles` package). Every
number is a quantity with its `source`; an assumed number also says `assumed: true` and `why`.
Fields (all energies in joules, power in watts, times in seconds)::

    name: loihi1
    description: text
    kind: neuromorphic | conventional
    event_driven: bool   # optional; zero inputs cost nothing (default: neuromorphic only)
    energy: {ac: Q, mac: Q, neuron_update: Q, spike_out: Q}      # each optional
    static_power: Q        # optional, W per chip (per device for conventional targets)
    step_time: Q           # optional, s per time step; static energy is counted only with it
    chip: {cores_per_chip: Q, neurons_per_core: Q, ...}           # optional, see ChipLimits
    # where Q = {value: number >= 0, unit: text, source: text, assumed: bool, why: text}
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

import hardware_profiles
from lmu2neuro.core import guards
from lmu2neuro.core.errors import UserError


class Quantity(BaseModel):
    """One number with its unit and where it comes from."""

    model_config = ConfigDict(extra="forbid")
    value: float = Field(ge=0, allow_inf_nan=False)
    unit: str
    source: str = Field(min_length=1)
    assumed: bool = False
    why: str | None = None

    @model_validator(mode="after")
    def _assumed_says_why(self):
        if self.assumed and not self.why:
            raise ValueError("an assumed number must say why (field 'why')")
        return self


class Energy(BaseModel):
    """Dynamic energy per event; a missing entry is reported as left out, never as zero."""

    model_config = ConfigDict(extra="forbid")
    ac: Quantity | None = None  # synaptic op driven by a binary spike
    mac: Quantity | None = None  # synaptic op driven by a graded value
    neuron_update: Quantity | None = None  # one neuron, one time step
    spike_out: Quantity | None = None  # one spike sent

    @model_validator(mode="after")
    def _not_empty(self):
        if not any(getattr(self, k) is not None for k in type(self).model_fields):
            raise ValueError(f"at least one of {', '.join(type(self).model_fields)} (an empty energy table "
                             "would cost everything at zero)")
        return self


class ChipLimits(BaseModel):
    """Per-core and per-chip limits of a neuromorphic chip; a missing limit is not checked."""

    model_config = ConfigDict(extra="forbid")
    cores_per_chip: Quantity
    neurons_per_core: Quantity
    synaptic_memory_per_core: Quantity  # bytes
    fan_in_axons_per_core: Quantity | None = None
    fan_out_axons_per_core: Quantity | None = None
    weight_bits_min: Quantity | None = None
    weight_bits_max: Quantity | None = None
    max_delay: Quantity | None = None  # steps
    neurons_per_chip: Quantity | None = None
    synapses_per_chip: Quantity | None = None
    barrier_sync_s: Quantity | None = None
    reference_dynamic_energy_per_inference: Quantity | None = None

    @model_validator(mode="after")
    def _limits_make_sense(self):
        # a capacity of zero would divide by zero or map a layer onto nothing
        for k in ("cores_per_chip", "neurons_per_core", "synaptic_memory_per_core", "fan_in_axons_per_core",
                  "fan_out_axons_per_core", "neurons_per_chip", "synapses_per_chip"):
            q = getattr(self, k)
            if q is not None and q.value < 1:
                raise ValueError(f"'{k}' of at least 1 (a capacity), got {q.value:g}")
        lo, hi = self.weight_bits_min, self.weight_bits_max
        if (lo is None) != (hi is None):
            raise ValueError("both 'weight_bits_min' and 'weight_bits_max', or neither")
        if lo is not None and not 1 <= lo.value <= hi.value:
            raise ValueError(f"1 <= weight_bits_min ({lo.value:g}) <= weight_bits_max ({hi.value:g})")
        return self


class Profile(BaseModel):
    """A validated hardware profile."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    description: str = ""
    kind: Literal["neuromorphic", "conventional"]
    # Whether a zero input costs nothing (event-driven). Default: true for neuromorphic
    # targets, false for conventional ones, which run every connection every step.
    event_driven: bool | None = None
    energy: Energy
    static_power: Quantity | None = None
    step_time: Quantity | None = None
    chip: ChipLimits | None = None
    path: str | None = None  # filled in by the loader

    @property
    def skips_zeros(self) -> bool:
        return self.event_driven if self.event_driven is not None else self.kind == "neuromorphic"

    def assumptions(self) -> list[str]:
        """One line per assumed number: 'field = value unit: why'."""
        out = []
        for field, q in self.quantities():
            if q.assumed:
                out.append(f"{field} = {q.value:g} {q.unit}: {' '.join((q.why or '').split())}")
        return out

    def quantities(self) -> list[tuple[str, Quantity]]:
        """Every number of the profile as (dotted field name, Quantity)."""
        out: list[tuple[str, Quantity]] = []
        for group_name in ("energy", "chip"):
            group = getattr(self, group_name)
            if group is None:
                continue
            for k in type(group).model_fields:
                q = getattr(group, k)
                if q is not None:
                    out.append((f"{group_name}.{k}", q))
        for k in ("static_power", "step_time"):
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
    loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
    typ = err.get("type", "")
    if typ == "missing":
        return f"field '{loc}': missing (required)"
    if typ == "extra_forbidden":
        return f"field '{loc}': unknown field"
    if typ == "greater_than_equal":
        return f"field '{loc}': got {err.get('input')!r}, expected a number >= 0"
    if typ == "finite_number":
        return f"field '{loc}': got {err.get('input')!r}, expected a finite number >= 0"
    expected = err["msg"].removeprefix("Value error, ")
    if isinstance(err.get("input"), dict):  # a check across a group's fields: its message names them
        return f"field '{loc}': expected {expected}"
    return f"field '{loc}': got {err.get('input')!r}, expected {expected}"


def load_profile(name_or_path: str | os.PathLike) -> Profile:
    """Load a shipped profile by name (e.g. 'loihi1') or a user's own YAML file by path.

    Raises UserError (one line, naming the file, the field and what was expected) for an unknown
    name, a file that is not YAML, a missing field, a negative value or a wrong type.
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
        guards.require_file(path, "profile file", "a hardware profile .yaml")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = " ".join(str(exc).split())
        raise UserError(f"{path}: not valid YAML ({first})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of profile fields at the top level, got {type(data).__name__}")
    try:
        prof = Profile.model_validate(data)
    except ValidationError as exc:
        errs = exc.errors()
        more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
        raise UserError(f"{path}: {_describe(errs[0])}{more}") from None
    return prof.model_copy(update={"path": str(path)})
