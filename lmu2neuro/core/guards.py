"""Size and shape guards for files that come from elsewhere (.nir / HDF5 graphs, checkpoints).

A file that claims to be a small graph can still ask for unbounded memory or time: a dataset
declared with 2**40 elements costs a few bytes in HDF5 (chunked, never written, or compressed
zeros), a 1e12-neuron Input makes an importer build an identity matrix of 1e24 entries, a Delay
of 1e9 steps a tap buffer of that length, and a group that hard-links to its own parent makes
every recursive reader loop. These guards look at what HDF5 declares (shape, dtype, link kind)
without reading any data, and at the sizes an importer is about to allocate, and refuse with one
``UserError`` line naming the file, the object and the limit.

Limits (the defaults fit every model this project trains with a wide margin; a legitimate
bigger model raises them through the environment):

- ``LMU2NEURO_MAX_FILE_BYTES``: largest input file (default 1 GiB);
- ``LMU2NEURO_MAX_ELEMENTS``: largest array, declared in the file or about to be allocated from
  sizes the file states (default 2**25 elements, 256 MiB of float64);
- ``LMU2NEURO_MAX_NODES``: most HDF5 objects (groups + datasets) walked in one file, and most NIR
  nodes in one graph (default 20,000);
- ``MAX_DEPTH``: deepest group nesting (NIR subgraphs), fixed at 32; ``MAX_CHUNKS``: most HDF5
  chunks in one dataset, fixed at 65,536.

Values: ``check_float32_range`` (float inputs within float32's range, checked before the cast) and
``check_dt`` (seconds per step within ``DT_MIN``..``DT_MAX``). docs/limits.md lists every limit.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

from lmu2neuro.core.errors import UserError

DEFAULT_MAX_FILE_BYTES = 1 << 30
DEFAULT_MAX_ELEMENTS = 1 << 25
DEFAULT_MAX_NODES = 20_000
MAX_DEPTH = 32
# HDF5 reads a chunked dataset chunk by chunk: millions of one-element chunks take minutes even
# when the element count is modest. nir.write's (h5py's automatic) chunking stays far below this.
MAX_CHUNKS = 1 << 16
# dtype kinds a numeric NIR parameter may have: bool, signed/unsigned int, float
NUMERIC_KINDS = "biuf"


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(float(raw))
    except ValueError:
        raise UserError(f"environment variable {name}={raw!r}: expected a whole number") from None
    if value < 1:
        raise UserError(f"environment variable {name}={raw!r}: expected a positive number")
    return value


def max_file_bytes() -> int:
    """The largest input file accepted (``LMU2NEURO_MAX_FILE_BYTES``, default 1 GiB)."""
    return env_int("LMU2NEURO_MAX_FILE_BYTES", DEFAULT_MAX_FILE_BYTES)


def max_elements() -> int:
    """The largest array accepted or allocated from a file's sizes (``LMU2NEURO_MAX_ELEMENTS``)."""
    return env_int("LMU2NEURO_MAX_ELEMENTS", DEFAULT_MAX_ELEMENTS)


def max_nodes() -> int:
    """The most HDF5 objects / NIR nodes accepted in one file (``LMU2NEURO_MAX_NODES``)."""
    return env_int("LMU2NEURO_MAX_NODES", DEFAULT_MAX_NODES)


def require_file(path: str | os.PathLike, what: str, expected: str = "") -> Path:
    """``path`` as a Path if it is a regular file; else a UserError that says what it is instead."""
    p = Path(path)
    hint = f"; expected {expected}" if expected else ""
    try:
        exists, folder, regular = p.exists(), p.is_dir(), p.is_file()
    except (OSError, ValueError) as exc:  # a name too long, a NUL byte, a loop of links
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UserError(f"{str(path)[:200]}: cannot be examined as a {what} ({why}){hint}") from None
    if not exists:
        raise UserError(f"{path}: {what} not found{hint}")
    if folder:
        raise UserError(f"{path}: is a folder, not a {what}{hint}")
    if not regular:
        raise UserError(f"{path}: is not a regular file (a device or pipe), not a {what}{hint}")
    return p


def check_file_size(path: str | os.PathLike, what: str = "file", limit: int | None = None,
                    env: str | None = "LMU2NEURO_MAX_FILE_BYTES") -> int:
    """Size of ``path`` in bytes; UserError if it is larger than the limit (before anything reads it).
    ``env``: the environment variable that raises the limit, named in the message (None: fixed)."""
    limit = max_file_bytes() if limit is None else limit
    size = Path(path).stat().st_size
    if size > limit:
        hint = f" (raise {env} if the file is trusted)" if env else ""
        raise UserError(f"{path}: {what} of {size:,} bytes exceeds the size limit of {limit:,} bytes{hint}")
    return size


def check_elements(path, where: str, shape, limit: int | None = None) -> int:
    """Element count of ``shape``; UserError naming ``where`` if it exceeds the element limit.

    Call before allocating an array whose shape comes from a file (declared sizes, delays).
    """
    limit = max_elements() if limit is None else limit
    try:
        dims = [int(d) for d in shape]
    except (TypeError, ValueError, OverflowError):
        raise UserError(f"{path}: {where}: shape {shape!r} is not a list of whole numbers") from None
    if any(d < 0 for d in dims):
        raise UserError(f"{path}: {where}: negative size in shape {tuple(dims)}")
    count = math.prod(dims)
    if count > limit:
        raise UserError(
            f"{path}: {where}: {count:,} elements (shape {tuple(dims)}) exceeds the limit of {limit:,} "
            "(raise LMU2NEURO_MAX_ELEMENTS if the file is trusted)"
        )
    return count


def check_npy(path: str | os.PathLike) -> None:
    """Read only an .npy file's header; UserError unless it declares a plain numeric array whose
    element count is within the limit and whose data the file actually holds."""
    import numpy as np

    require_file(path, "input file", "a .npy array")
    size = check_file_size(path, "input file")
    fmt = np.lib.format
    try:
        with open(path, "rb") as fh:
            major, _ = fmt.read_magic(fh)
            reader = fmt.read_array_header_1_0 if major == 1 else fmt.read_array_header_2_0
            shape, _, dtype = reader(fh, max_header_size=10_000)
            offset = fh.tell()
    except FileNotFoundError:
        raise UserError(f"{path}: input file not found") from None
    except (ValueError, OSError, SyntaxError) as exc:
        raise UserError(f"{path}: not a numpy .npy array ({(str(exc).splitlines() or [type(exc).__name__])[0][:120]})") from None
    if dtype.hasobject or dtype.kind not in NUMERIC_KINDS:
        raise UserError(f"{path}: not a numpy .npy array of numbers (dtype {dtype}); expected int or float values")
    count = check_elements(path, "array", shape)
    if offset + count * dtype.itemsize > size:
        raise UserError(f"{path}: the header declares shape {tuple(shape)} ({count * dtype.itemsize:,} bytes) but the "
                        f"file holds {size - offset:,} bytes of data (truncated?)")


def check_hdf5(path: str | os.PathLike, *, max_bytes: int | None = None, element_limit: int | None = None,
               object_limit: int | None = None) -> None:
    """Walk an HDF5 file's structure without reading data; UserError on anything unbounded.

    Refused: a file above the size limit; a dataset whose declared element count (or the sum over
    all datasets) exceeds the element limit; more objects than the object limit; groups nested
    deeper than ``MAX_DEPTH``; a group reached twice (hard-link cycles and aliases, which make
    recursive readers loop); external links (they would make us open other files) and soft links.
    """
    import h5py

    check_file_size(path, "HDF5 file", max_bytes)
    limit = max_elements() if element_limit is None else element_limit
    max_objects = max_nodes() if object_limit is None else object_limit
    seen: set = set()
    total = 0
    count = 0
    with h5py.File(path, "r") as f:
        stack = [(f, "/", 0)]
        while stack:
            grp, where, depth = stack.pop()
            if depth > MAX_DEPTH:
                raise UserError(f"{path}: group '{where}' is nested {depth} levels deep; the limit is {MAX_DEPTH}")
            key = grp.id  # HDF5 object ids compare equal when they name the same object
            if key in seen:
                raise UserError(f"{path}: group '{where}' links back to a group already visited "
                                "(a hard-link cycle or alias); expected a tree of groups")
            seen.add(key)
            for name in list(grp.keys()):
                count += 1
                if count > max_objects:
                    raise UserError(f"{path}: more than {max_objects:,} HDF5 objects "
                                    "(raise LMU2NEURO_MAX_NODES if the file is trusted)")
                child_where = f"{where.rstrip('/')}/{name}"
                link = grp.get(name, getlink=True)
                if isinstance(link, h5py.ExternalLink):
                    raise UserError(f"{path}: '{child_where}' is an external link to {link.filename!r}; "
                                    "refused (expected data inside the file)")
                if isinstance(link, h5py.SoftLink):
                    raise UserError(f"{path}: '{child_where}' is a soft link to {link.path!r}; "
                                    "expected a group or dataset")
                obj = grp.get(name)
                if isinstance(obj, h5py.Group):
                    stack.append((obj, child_where, depth + 1))
                elif isinstance(obj, h5py.Dataset):
                    shape = obj.shape
                    if shape is None:  # an empty (null dataspace) dataset holds nothing
                        continue
                    n = check_elements(path, f"dataset '{child_where}'", shape, limit)
                    chunks = obj.chunks
                    if chunks:
                        n_chunks = math.prod(-(-int(s) // int(c)) for s, c in zip(shape, chunks))
                        if n_chunks > MAX_CHUNKS:
                            raise UserError(
                                f"{path}: dataset '{child_where}' is stored in {n_chunks:,} chunks of shape {chunks}; "
                                f"the limit is {MAX_CHUNKS:,} (reading it would take unbounded time)"
                            )
                    total += n
                    if total > limit:
                        raise UserError(
                            f"{path}: datasets declare {total:,} elements in all (at '{child_where}'), above the "
                            f"limit of {limit:,} (raise LMU2NEURO_MAX_ELEMENTS if the file is trusted)"
                        )
                else:
                    raise UserError(f"{path}: '{child_where}' is a {type(obj).__name__}, expected a group or dataset")


# float32's largest finite value: every float input is computed in float32 (datasets, the float
# model) or quantized from float64; a larger value would overflow to inf in the cast
FLOAT32_MAX = 3.4028234663852886e38
# --dt: seconds per time step. Below a nanosecond or above 1000 s the NIR time constants
# (tau = dt / (1 - decay), 1 / dt) lose their precision or overflow; no SNN runs there.
DT_MIN, DT_MAX = 1e-9, 1e3


def check_float32_range(where: str, x) -> None:
    """UserError naming ``where`` unless every value of the numpy array ``x`` is finite and within
    float32's range (checked before any cast, so no overflow warning or inf is ever made)."""
    import numpy as np

    if x.dtype.kind not in "iuf" or x.size == 0:
        return
    if x.dtype.kind == "f":
        bad = int(x.size - np.count_nonzero(np.isfinite(x)))
        if bad:
            raise UserError(f"{where}: {bad} values are NaN or infinite; expected finite numbers")
    big = float(np.max(np.abs(x.astype(np.float64, copy=False)))) if x.dtype.kind == "f" else \
        max(abs(int(x.min())), abs(int(x.max())))
    if big > FLOAT32_MAX:
        raise UserError(f"{where}: a value of magnitude {big:.4g} is beyond float32's range (+-{FLOAT32_MAX:.4g}); "
                        "expected inputs that a float32 model can hold")


def check_dt(flag: str, dt) -> float:
    """``dt`` (seconds per step) as a float within [DT_MIN, DT_MAX]; else one UserError line."""
    if dt is None or isinstance(dt, bool) or not isinstance(dt, (int, float)) or not DT_MIN <= dt <= DT_MAX:
        raise UserError(f"{flag} {dt}: expected seconds per time step between {DT_MIN:g} and {DT_MAX:g}")
    return float(dt)


def sha256_of(path: str | os.PathLike) -> str:
    """The file's sha256 (hex): which model a traffic record or a checkpoint was made from."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
