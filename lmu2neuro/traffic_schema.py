"""What `lmu2neuro report` reads from a traffic.json, validated in one place.

The file is ours (`lmu2neuro simulate` writes it) but may have been edited or come from
elsewhere; every field the counting uses is checked for kind and range here, so a bad value is
one line naming the field, never a traceback deep in the arithmetic or a NaN in the report.
Fields the report does not read are allowed and left alone.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lmu2neuro.errors import UserError

Count = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Layer(_Open):
    name: str
    neurons: int = Field(ge=0)
    spikes: Count | None = None
    spike_counts: list[Count] | None = None
    spikes_per_step: list[Count] | None = None
    nonzero_inputs_per_step: list[Count] | None = None


class Projection(_Open):
    name: str
    source: str
    target: str
    graded: bool | None = None
    nonzero_weights: int | None = Field(default=None, ge=0)
    weight_bits: int | None = Field(default=None, ge=1, le=32)
    synaptic_events: Count | None = None


class Traffic(_Open):
    schema_: Literal["lmu2neuro.traffic/1"] = Field(alias="schema")
    samples: int = Field(ge=1)
    timesteps: int = Field(ge=1)
    dt: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    layers: list[Layer]
    projections: list[Projection]
    accuracy: Fraction | None = None
    accuracy_by_frame: list[Fraction | None] | None = None


def _where(err: dict, data: dict) -> str:
    # layers.3.spike_counts.0 -> layers.block0.u.spike_counts: a layer by its name, not its index
    loc = list(err["loc"])
    if len(loc) >= 2 and loc[0] in ("layers", "projections") and isinstance(loc[1], int):
        try:
            loc[1] = data[loc[0]][loc[1]]["name"]
        except (KeyError, IndexError, TypeError):
            pass
    return ".".join(str(x) for x in loc) or "(top level)"


def validate_traffic(data: dict, source: str) -> None:
    """UserError naming the first bad field (and how many more) unless ``data`` holds what the report reads."""
    try:
        Traffic.model_validate(data)
    except ValidationError as exc:
        errs = exc.errors()
        err = errs[0]
        more = f" (and {len(errs) - 1} more)" if len(errs) > 1 else ""
        shown = "missing" if err.get("type") == "missing" else f"got {repr(err.get('input'))[:60]}"
        expected = err["msg"].removeprefix("Input should be ")
        if expected.startswith(("greater", "less")):
            expected = "a value " + expected
        raise UserError(f"{source}: field '{_where(err, data)}': {shown}, expected {expected}{more}") from None
