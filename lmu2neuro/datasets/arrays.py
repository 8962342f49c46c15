"""Your own data as arrays: ``npz:FILE.npz`` (one NumPy archive) or ``npy:DIR`` (a folder of .npy files).

Both hold the same names. Either one labelled set, ``x`` (N, T, *frame) and ``y`` (N,), split here
into train/validation/test (stratified, fixed by ``seed``, as the built-in sets are), or named
splits ``x_train``/``y_train`` with optional ``x_val``/``y_val`` and ``x_test``/``y_test``; a
missing validation or test split is held out of the training split. Frames are flattened to
F = prod(frame) values per step, the form every model input and the integer network take;
``DatasetSplits.frame_shape`` keeps the original frame shape for models that need it (convolutions).

Nothing is trusted: each array's header is checked (numeric dtype, element count within
``core.guards`` limits, data actually present) before it is read, object arrays are never
unpickled, and x must be finite and within float32's range, y whole numbers >= 0 with at most
max(samples, ``MIN_CLASS_LIMIT``) classes (largest label + 1), the lengths of x and y equal and every
split the same T and frame shape. Each failure is one ``UserError`` naming the file and the array.
"""

from __future__ import annotations

import math
import zipfile
import zlib
from pathlib import Path

import numpy as np
import torch

from lmu2neuro.core import guards
from lmu2neuro.core.errors import UserError
from lmu2neuro.datasets.sequences import DatasetSplits, TensorSequences
from lmu2neuro.datasets.splits import stratified_holdout, stratified_indices

SPLITS = ("train", "val", "test")
# classes = largest label + 1; a dataset may have more classes than samples (some unseen), but not
# without bound: a label of 1e9 would make 1e9 class names and a 1e9-wide output layer
MIN_CLASS_LIMIT = 1024
NAMES = ("x", "y") + tuple(f"{a}_{s}" for s in SPLITS for a in "xy")


def _checked_header(path: Path, name: str, fh, size: int) -> tuple[tuple, bool, np.dtype]:
    """Shape and dtype from an .npy header in ``fh``, refused unless numeric, within the element
    limit and backed by ``size`` bytes of data, before anything is allocated."""
    fmt = np.lib.format
    start = fh.tell()
    try:
        major, _ = fmt.read_magic(fh)
        reader = fmt.read_array_header_1_0 if major == 1 else fmt.read_array_header_2_0
        shape, fortran, dtype = reader(fh, max_header_size=10_000)
    except (ValueError, OSError, SyntaxError) as exc:
        raise UserError(f"{path}: array '{name}': not a numpy array ({(str(exc).splitlines() or [type(exc).__name__])[0][:120]})") from None
    if dtype.hasobject or dtype.kind not in guards.NUMERIC_KINDS:
        raise UserError(f"{path}: array '{name}': dtype {dtype}; expected int or float values")
    count = guards.check_elements(path, f"array '{name}'", shape)
    if fh.tell() - start + count * dtype.itemsize > size:
        raise UserError(f"{path}: array '{name}': the header declares shape {tuple(shape)} but the data is "
                        "shorter (truncated?)")
    return tuple(shape), fortran, dtype


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    guards.require_file(path, "dataset file", "a .npz archive of x and y arrays")
    guards.check_file_size(path, "dataset file")
    out, total = {}, 0
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                name = info.filename[:-4] if info.filename.endswith(".npy") else None
                if name not in NAMES:  # other arrays are not ours to read (nor to spend memory on)
                    continue
                with zf.open(info) as fh:
                    shape, fortran, dtype = _checked_header(path, name, fh, info.file_size)
                    # a zip can hold many arrays, each within the limit: the limit applies to them together
                    total += math.prod(shape)
                    guards.check_elements(path, "arrays together", (total,))
                    count = math.prod(shape)
                    data = np.frombuffer(fh.read(count * dtype.itemsize), dtype=dtype, count=count)
                    out[name] = data.reshape(shape, order="F" if fortran else "C")
    except zipfile.BadZipFile:
        raise UserError(f"{path}: not a .npz archive (not a zip file); expected arrays x and y saved by numpy.savez") \
            from None
    except (ValueError, OSError, EOFError, RuntimeError, NotImplementedError, zlib.error) as exc:
        # a damaged archive: an entry flagged encrypted (RuntimeError), an unknown compression
        # method (NotImplementedError), a broken deflate stream (zlib.error), a bad CRC
        text = (str(exc).splitlines() or [type(exc).__name__])[0][:120]
        raise UserError(f"{path}: unreadable array ({text})") from None
    return out


def _read_npy_dir(folder: Path) -> dict[str, np.ndarray]:
    if not folder.is_dir():
        what = "not found" if not folder.exists() else "is not a folder"
        raise UserError(f"{folder}: {what}; expected a folder of .npy files (x.npy and y.npy, or x_train.npy, ...)")
    out = {}
    for name in NAMES:
        p = folder / f"{name}.npy"
        if not p.exists():
            continue
        guards.check_npy(p)
        try:
            out[name] = np.load(p, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise UserError(f"{p}: unreadable array ({(str(exc).splitlines() or [type(exc).__name__])[0][:120]})") from None
    return out


def _source(kind: str, path: Path, name: str) -> str:
    """Where array ``name`` lives, for messages: the archive and the array, or the .npy file."""
    return f"{path}: array '{name}'" if kind == "npz" else f"{path / (name + '.npy')}"


def _check_pair(kind, path, x, y, sx, sy) -> None:
    wx, wy = _source(kind, path, sx), _source(kind, path, sy)
    if x.ndim < 3:
        raise UserError(f"{wx}: shape {x.shape}; expected (N, T, *frame) with at least 3 axes "
                        "(add a feature axis, x[..., None], for one value per step)")
    if x.dtype.kind not in "biuf":
        raise UserError(f"{wx}: dtype {x.dtype}; expected int or float values")
    if y.ndim != 1:
        raise UserError(f"{wy}: shape {y.shape}; expected (N,) class labels")
    if y.dtype.kind not in "iu":
        raise UserError(f"{wy}: dtype {y.dtype}; expected integer class labels")
    if len(x) != len(y):
        raise UserError(f"{wy}: {len(y)} labels for {len(x)} samples in '{sx}'; expected the same length")
    if len(x) == 0 or x.shape[1] == 0 or math.prod(x.shape[2:]) == 0:
        raise UserError(f"{wx}: shape {x.shape}; expected at least one sample, step and value")
    guards.check_float32_range(wx, x)  # before the float32 cast, which would overflow to inf
    if (y < 0).any():
        raise UserError(f"{wy}: label {int(y.min())} is negative; expected class indices 0, 1, 2, ...")


def _count_classes(path, given: dict) -> int:
    """Largest label + 1, refused above max(samples, MIN_CLASS_LIMIT) before anything is sized by it."""
    samples = sum(len(y) for _, y in given.values())
    classes = max(int(y.max()) for _, y in given.values()) + 1
    limit = max(samples, MIN_CLASS_LIMIT)
    if classes > limit:
        raise UserError(f"{path}: largest label {classes - 1:,} means {classes:,} classes for {samples:,} samples; "
                        f"expected at most {limit:,} classes (class indices 0, 1, 2, ...: at most one class per "
                        f"sample, or {MIN_CLASS_LIMIT:,})")
    return classes


def load_array_splits(kind: str, raw: str, seed: int = 0, val_fraction: float = 0.1,
                      test_fraction: float = 0.2) -> DatasetSplits:
    """Load the archive (``kind`` "npz") or folder ("npy") ``raw`` (see the module doc); the fractions
    apply to the split(s) held out."""
    name = f"{kind}:{raw}"
    if not raw:
        raise UserError(f"dataset {name!r}: expected npz:FILE.npz or npy:DIR")
    for opt, v in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 < float(v) < 1.0:
            raise UserError(f"dataset {name}: option {opt}={v!r}: expected a fraction between 0 and 1")
    if float(val_fraction) + float(test_fraction) >= 1.0:
        raise UserError(f"dataset {name}: val_fraction + test_fraction = {val_fraction + test_fraction}: expected < 1")
    path = Path(raw)
    arrays = _read_npz(path) if kind == "npz" else _read_npy_dir(path)
    whole = "x" in arrays or "y" in arrays
    named = any(f"{a}_{s}" in arrays for s in SPLITS for a in "xy")
    if whole and named:
        raise UserError(f"{path}: holds both x/y and named splits (x_train, ...); expected one or the other")
    if not whole and not named:
        raise UserError(f"{path}: no arrays x and y (nor x_train and y_train); found "
                        f"{', '.join(sorted(arrays)) or 'none'}")
    pairs = [("", "x", "y")] if whole else [(s, f"x_{s}", f"y_{s}") for s in SPLITS]
    given: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for split, sx, sy in pairs:
        if sx not in arrays and sy not in arrays:
            if split == "train":
                raise UserError(f"{path}: named splits without x_train and y_train; expected at least those two")
            continue
        for have, need in ((sx, sy), (sy, sx)):
            if need not in arrays:
                raise UserError(f"{_source(kind, path, need)}: missing; expected it beside '{have}'")
        _check_pair(kind, path, arrays[sx], arrays[sy], sx, sy)
        given[split or "all"] = (arrays[sx], arrays[sy])
    classes = _count_classes(path, given)
    shapes = {k: v[0].shape[1:] for k, v in given.items()}
    first = next(iter(shapes.values()))
    for split, shape in shapes.items():
        if shape != first:
            raise UserError(f"{_source(kind, path, 'x_' + split)}: steps x frame {shape}; the other splits have {first}")

    def held_out(y, fraction, what, offset):
        try:
            return stratified_holdout(y, fraction, seed + offset)
        except ValueError as exc:  # a class too small to stratify, or too few samples
            raise UserError(f"{path}: cannot hold out a {what} split of {fraction:g} "
                            f"({(str(exc).splitlines() or [type(exc).__name__])[0][:120]}); give x_{what}/y_{what}") from None

    if "all" in given:
        x, y = given.pop("all")
        try:
            tr, va, te = stratified_indices(y, val_fraction, test_fraction, seed)
        except ValueError as exc:
            raise UserError(f"{path}: cannot split x/y into train/val/test ({(str(exc).splitlines() or [type(exc).__name__])[0][:120]}); "
                            "give named splits x_train/y_train, x_val/y_val, x_test/y_test") from None
        given = {"train": (x[tr], y[tr]), "val": (x[va], y[va]), "test": (x[te], y[te])}
    else:
        for what, fraction, offset in (("test", test_fraction, 0), ("val", val_fraction, 1)):
            if what not in given:
                x, y = given["train"]
                kept, held = held_out(y, fraction, what, offset)
                given["train"], given[what] = (x[kept], y[kept]), (x[held], y[held])

    frame = tuple(int(d) for d in first[1:])
    feats = math.prod(frame)
    splits = {s: TensorSequences(torch.from_numpy(np.array(given[s][0], dtype=np.float32))
                                 .reshape(len(given[s][0]), first[0], feats),
                                 torch.from_numpy(np.array(given[s][1], dtype=np.int64)))
              for s in SPLITS}
    return DatasetSplits(
        train=splits["train"], val=splits["val"], test=splits["test"],
        input_size=feats, num_classes=classes, timesteps=int(first[0]),
        class_names=[str(c) for c in range(classes)], frame_shape=frame,
    )


def own_data_sha256(name: str) -> str | None:
    """The sha256 of your own data (``npz:FILE``: the file; ``npy:DIR``: every .npy in it, by name),
    so a checkpoint can tell when the data it was trained on changed; None for a built-in dataset."""
    import hashlib

    from lmu2neuro.core.guards import sha256_of

    kind, sep, raw = name.partition(":")
    if not sep or kind not in ("npz", "npy") or not raw:
        return None
    path = Path(raw)
    if kind == "npz":
        return sha256_of(path) if path.is_file() else None
    if not path.is_dir():
        return None
    h = hashlib.sha256()
    for f in sorted(path.glob("*.npy")):
        h.update(f.name.encode() + b"\0" + sha256_of(f).encode())
    return h.hexdigest()
