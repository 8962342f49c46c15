"""One ``/layer/{i}`` group of a lava-dl netx file, every field read through checked access: a
missing field, a wrong type, a non-integer or a value out of range is one line naming the file,
the layer and the field (the netx reader's validation, in one place)."""

from __future__ import annotations

import numpy as np

from lmu2neuro.core import guards
from lmu2neuro.core.errors import UserError


class Layer:
    """One ``/layer/{i}`` group with checked access to its fields."""

    def __init__(self, path, index: int, group):
        self.path, self.index, self.g = path, index, group
        self.kind = "?"

    def where(self, field: str | None = None) -> str:
        head = f"{self.path}: layer {self.index} ({self.kind})"
        return f"{head}, field '{field}'" if field else head

    def fail(self, field: str | None, msg: str):
        raise UserError(f"{self.where(field)}: {msg}")

    def has(self, field: str) -> bool:
        return field in self.g

    def dataset(self, field: str):
        import h5py

        if field not in self.g:
            self.fail(field, "missing")
        obj = self.g.get(field)
        if not isinstance(obj, h5py.Dataset):
            self.fail(field, "expected a dataset, found a group")
        return obj

    def text(self, field: str) -> str:
        ds = self.dataset(field)
        try:
            v = ds[()]
            v = np.asarray(v).reshape(-1)
            if v.size != 1:
                self.fail(field, f"expected one string, found {v.size} values")
            v = v[0]
            return (v.decode("ascii") if isinstance(v, bytes) else str(v)).strip()
        except (UnicodeDecodeError, OSError, TypeError, ValueError) as exc:
            self.fail(field, f"expected an ASCII string ({type(exc).__name__})")

    def ints(self, field: str, lo: int | None = None, hi: int | None = None) -> np.ndarray:
        """The dataset as int64, refusing non-numbers, non-integers and values outside [lo, hi]."""
        ds = self.dataset(field)
        if ds.dtype.kind not in guards.NUMERIC_KINDS:
            self.fail(field, f"expected numbers, found dtype {ds.dtype}")
        try:
            v = np.asarray(ds[()])
        except (OSError, ValueError, TypeError) as exc:
            self.fail(field, f"unreadable ({str(exc).splitlines()[0][:80]})")
        if v.dtype.kind == "f":
            if not np.all(np.isfinite(v)):
                self.fail(field, "holds NaN or infinite values; expected integers")
            if np.any(v != np.round(v)):
                bad = float(v.reshape(-1)[np.argmax(v.reshape(-1) != np.round(v.reshape(-1)))])
                self.fail(field, f"value {bad} is not a whole number; expected integers")
            if v.size and np.abs(v).max() >= 2.0 ** 62:
                self.fail(field, f"value {float(np.abs(v).max()):g} is out of range")
        elif v.dtype.kind == "u" and v.size and int(v.max()) >= 1 << 62:
            self.fail(field, f"value {int(v.max())} is out of range")
        v = v.astype(np.int64)
        if v.size and lo is not None and int(v.min()) < lo:
            self.fail(field, f"value {int(v.min())} below {lo}; expected [{lo}, {hi}]")
        if v.size and hi is not None and int(v.max()) > hi:
            self.fail(field, f"value {int(v.max())} above {hi}; expected [{lo}, {hi}]")
        return v

    def scalar(self, field: str, lo: int, hi: int, default: int | None = None) -> int:
        if default is not None and not self.has(field):
            return default
        v = self.ints(field, lo, hi)
        if v.size != 1:
            self.fail(field, f"expected one value, found shape {v.shape}")
        return int(v.reshape(-1)[0])

    def pair(self, field: str, lo: int, hi: int, default: tuple[int, int]) -> tuple[int, int]:
        """A conv parameter: scalar or two values in (H, W) order (netx's ``expand``)."""
        if not self.has(field):
            return default
        v = self.ints(field, lo, hi).reshape(-1)
        if v.size == 1:
            return int(v[0]), int(v[0])
        if v.size != 2:
            self.fail(field, f"expected one value or two (H, W), found {v.size}")
        return int(v[0]), int(v[1])

    def shape(self) -> tuple[int, ...]:
        v = self.ints("shape", 1, None).reshape(-1)
        if not 1 <= v.size <= 3:
            self.fail("shape", f"expected (n,) or (C, H, W), found {tuple(int(s) for s in v)}")
        guards.check_elements(self.path, f"layer {self.index} ({self.kind}) field 'shape'", v)
        return tuple(int(s) for s in v)


def netx_frame(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A declared shape as our population frame: (C, H, W), or (n,) for a vector ((C, L) has no netx
    form: lava-dl treats every 2-value shape as (x, y) of one channel, i.e. (1, H, W))."""
    if len(shape) == 2:
        return (1,) + shape
    return shape
