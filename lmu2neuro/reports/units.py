"""Times, energies and powers in the SI prefix that fits (0.000157 s -> 157 us), stated once."""

from __future__ import annotations

import math

_PREFIXES = [(1e0, ""), (1e-3, "m"), (1e-6, "u"), (1e-9, "n"), (1e-12, "p")]


def scale_for(value: float) -> tuple[float, str]:
    """(factor, prefix) that puts |value| in [1, 1000), from the base unit down to pico; 1, '' for
    0, infinities, NaN and values of 1000 or more (kept in the base unit: 12.3 kJ reads as 12300 J)."""
    v = abs(value)
    if v == 0 or not math.isfinite(v):
        return 1.0, ""
    for factor, prefix in _PREFIXES:
        if v >= factor:
            return factor, prefix
    return _PREFIXES[-1]


def fmt_quantity(value: float | None, unit: str, digits: int = 3) -> str:
    """``value`` in ``unit`` (s, J, W, ...) with the prefix that fits: 0.000157 s -> '157 us'."""
    if value is None:
        return "n/a"
    factor, prefix = scale_for(value)
    return f"{value / factor:.{digits}g} {prefix}{unit}"


def fmt_range(estimate: float, low: float, high: float, unit: str, digits: int = 3) -> str:
    """'157 us [120-210 us]': the estimate and its range, in one prefix where all three share it,
    else each end in its own ('882 nJ [333 nJ-3.18 uJ]')."""
    est = fmt_quantity(estimate, unit, digits)
    if low == high:
        return est
    prefixes = {scale_for(v)[1] for v in (estimate, low, high) if v}
    if len(prefixes) == 1:
        factor, prefix = scale_for(estimate if estimate else high)
        return f"{est} [{low / factor:.{digits}g}-{high / factor:.{digits}g} {prefix}{unit}]"
    return f"{est} [{fmt_quantity(low, unit, digits)}-{fmt_quantity(high, unit, digits)}]"
