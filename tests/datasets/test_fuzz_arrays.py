"""Fuzzed npz/npy datasets never crash, hang or exhaust memory: `lmu2neuro dataset npz:FILE` (and
npy:DIR) ends in exit 0 or one line `error: ...` naming the file.

Hypothesis edits a small valid archive: any array replaced by one of another dtype, shape, length or
range (labels of 1e9, 2**62 or the uint64 maximum, values of 1e39, NaN, complex and object arrays),
arrays deleted or added, named splits mixed in; then the archive's bytes truncated or flipped, and the
paths the guards exist for (FIFOs, folders, devices, headers declaring 2**40 elements). Derandomized,
a deadline per example; the module's peak memory growth is bounded at the end.
"""

import io
import warnings
import zipfile

import numpy as np
import pytest
from fuzzing import FLIPS, SCALE, TEXT_FUZZ, CliCheck, special_file
from hypothesis import given, settings
from hypothesis import strategies as st

from lmu2neuro.core.errors import UserError
from lmu2neuro.datasets.arrays import MIN_CLASS_LIMIT, load_array_splits

CHECK = CliCheck()
RNG = np.random.default_rng(0)
BASE = {"x": RNG.normal(size=(30, 4, 3)).astype(np.float32), "y": np.arange(30) % 3}

LABELS = st.sampled_from([10**9, 2**62, np.iinfo(np.uint64).max, 2**31, MIN_CLASS_LIMIT, -1, 7])
SCALARS = st.sampled_from([np.nan, np.inf, -np.inf, 1e39, -1e300, 3.4e38, 1e-320, 0.0])


def _array(kind: str, like: np.ndarray, n: int, label, scalar):
    """A replacement for array ``like`` of the given kind."""
    if kind == "label":
        y = np.arange(len(like)) % 3
        dtype = np.uint64 if label > np.iinfo(np.int64).max else np.int64
        y = y.astype(dtype)
        y[n % len(y)] = label
        return y
    if kind == "scalar":
        a = like.astype(np.float64)
        a.flat[n % a.size] = scalar
        return a
    if kind == "dtype":
        return [like.astype(np.complex64), like.astype(bool), like.astype(np.float16), like.astype("U3"),
                like.astype(object), like.astype(np.int8)][n % 6]
    if kind == "shape":
        return np.zeros([(1 + n) % 5, (n // 5) % 4, 3][: 1 + n % 3])
    if kind == "length":
        return like[: n % len(like)]
    return like


def _write(path, arrays: dict) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.savez(path, **arrays)  # object arrays are pickled into the archive: the reader must refuse them


def _run(spec: str, names: str) -> int:
    return CHECK.run(["dataset", spec], names)


@pytest.fixture(scope="module", autouse=True)
def base_is_good(tmp_path_factory):
    p = tmp_path_factory.mktemp("npz") / "d.npz"
    _write(p, BASE)
    assert _run(f"npz:{p}", str(p)) == 0


@settings(TEXT_FUZZ, max_examples=110 * SCALE)
@given(target=st.sampled_from(["x", "y", "x_train", "y_train", "x_test", "y_val", "extra"]),
       kind=st.sampled_from(["label", "scalar", "dtype", "shape", "length", "delete", "named"]),
       n=st.integers(0, 10**6), label=LABELS, scalar=SCALARS)
def test_array_edits(tmp_path_factory, target, kind, n, label, scalar):
    arrays = dict(BASE)
    if kind == "named":  # named splits, whole or partial, maybe beside x/y
        arrays = {"x_train": BASE["x"][:20], "y_train": BASE["y"][:20], "x_test": BASE["x"][20:],
                  "y_test": BASE["y"][20:]}
        if n % 3 == 0:
            arrays["x"] = BASE["x"]
        if n % 5 == 0:
            del arrays["y_test"]
    elif kind == "delete":
        arrays.pop(target, None)
    else:
        like = BASE["y"] if target.startswith("y") else BASE["x"]
        arrays[target] = _array(kind, like, n, label, scalar)
    p = tmp_path_factory.mktemp("npz") / "d.npz"
    _write(p, arrays)
    if n % 4 == 0:  # the same arrays as a folder of .npy files
        d = p.parent / "dir"
        d.mkdir()
        for k, v in arrays.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                np.save(d / f"{k}.npy", v, allow_pickle=True)
        _run(f"npy:{d}", str(d))
    else:
        _run(f"npz:{p}", str(p))


@settings(TEXT_FUZZ, max_examples=50 * SCALE)
@given(frac=st.floats(0.0, 1.0, exclude_max=True), flips=st.one_of(st.just([]), FLIPS))
def test_truncated_and_flipped(tmp_path_factory, frac, flips):
    buf = io.BytesIO()
    np.savez(buf, **BASE)
    data = bytearray(buf.getvalue())
    if not flips:
        data = data[: int(frac * len(data))]
    for k, (pos, bit) in enumerate(flips):  # half of them in the array headers, where they bite
        span = min(len(data), 400) if k % 2 == 0 else len(data)
        data[int(pos * span)] ^= 1 << bit
    p = tmp_path_factory.mktemp("npz") / "d.npz"
    p.write_bytes(bytes(data))
    _run(f"npz:{p}", str(p))


def _declared_huge(path) -> None:
    """An archive whose x.npy header declares 2**40 float64 values (a few bytes on disk)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (2**20, 2**20)})
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("x.npy", np.lib.format.MAGIC_PREFIX + b"\x01\x00" + header.getvalue()[8:])
        buf = io.BytesIO()
        np.save(buf, BASE["y"])
        zf.writestr("y.npy", buf.getvalue())


@settings(TEXT_FUZZ, max_examples=16 * SCALE)
@given(kind=st.sampled_from(["folder", "fifo", "device", "huge", "npy_fifo", "missing", "encrypted", "method"]))
def test_guarded_paths(tmp_path_factory, kind):
    d = tmp_path_factory.mktemp("npz")
    p = d / "d.npz"
    spec = f"npz:{p}"
    if kind in ("folder", "fifo", "device"):
        p = special_file(kind, p)
        spec = f"npz:{p}"
    elif kind == "huge":
        _declared_huge(p)
    elif kind in ("encrypted", "method"):  # zip entries flagged encrypted, or of an unknown compression
        buf = io.BytesIO()
        np.savez(buf, **BASE)
        data = bytearray(buf.getvalue())
        at = data.find(b"PK\x01\x02")
        while at != -1:
            if kind == "encrypted":
                data[at + 8] |= 1
            else:
                data[at + 10] = 99
            at = data.find(b"PK\x01\x02", at + 1)
        p.write_bytes(bytes(data))
    elif kind == "npy_fifo":
        np.save(d / "y.npy", BASE["y"])
        special_file("fifo", d / "x.npy")
        spec, p = f"npy:{d}", d
    assert _run(spec, str(p)) == 2


def test_labels_are_bounded_by_the_samples(tmp_path):
    """A label of 1e9 would make 1e9 class names (it was a memory kill); a label below the limit is fine."""
    for label, ok in ((10**9, False), (np.iinfo(np.uint64).max, False), (MIN_CLASS_LIMIT - 1, True)):
        y = BASE["y"].astype(np.uint64)
        y[:3] = label  # three samples: enough to stratify the class into every split
        _write(tmp_path / "d.npz", {"x": BASE["x"], "y": y})
        if ok:
            data = load_array_splits("npz", str(tmp_path / "d.npz"), val_fraction=0.2, test_fraction=0.2)
            assert data.num_classes == MIN_CLASS_LIMIT
        else:
            with pytest.raises(UserError, match=rf"largest label {label:,} means .* for 30 samples; expected at most "
                                                rf"{MIN_CLASS_LIMIT:,} classes"):
                load_array_splits("npz", str(tmp_path / "d.npz"))


def test_values_beyond_float32_are_refused_before_the_cast(tmp_path):
    x = BASE["x"].astype(np.float64)
    x[1, 2, 0] = 1e39
    _write(tmp_path / "d.npz", {"x": x, "y": BASE["y"]})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning may come before the error
        with pytest.raises(UserError, match=r"array 'x': a value of magnitude 1e\+39 is beyond float32's range"):
            load_array_splits("npz", str(tmp_path / "d.npz"))


@pytest.mark.parametrize("value", [1e39, 1e300])
def test_simulate_refuses_inputs_beyond_float32_in_one_line(tmp_path, value):
    """`simulate` on such inputs let IntNetwork.quantize_input's ValueError escape (a traceback)."""
    from converters.nir.export import export_nir
    from netgen import spiking_mlp

    export_nir(spiking_mlp(), tmp_path / "m.nir", dt=1e-3)
    x = np.zeros((4, 5, 6))
    x[1, 2, 3] = value
    np.save(tmp_path / "x.npy", x)
    y = np.arange(40) % 4
    _write(tmp_path / "d.npz", {"x": np.repeat(x, 10, axis=0), "y": y})
    for source, names in ((["--input", tmp_path / "x.npy"], "x.npy"), (["--dataset", f"npz:{tmp_path / 'd.npz'}"],
                                                                        "d.npz")):
        assert CHECK.run(["simulate", tmp_path / "m.nir", *source, "--backend", "reference", "-o",
                          tmp_path / "out" / "t.json"], names, outputs=[tmp_path / "out"]) == 2


def test_zz_totals_and_memory():
    CHECK.assert_bounded(150 * SCALE, 512)
