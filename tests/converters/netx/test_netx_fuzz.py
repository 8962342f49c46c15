"""Fuzzed netx files never crash, hang or exhaust memory: each ends in exit 0 or a one-line error.

Hypothesis mutates real netx files (one SLAYER wrote with conv, pool, flatten and delayed dense
layers, and a conv network we exported): truncation at any offset, random bit flips, and structural
edits through h5py (deleted fields, wrong dtypes, wrong or huge declared shapes, odd scalars,
unknown layer types, groups aliased into themselves). Every mutated file goes through `lmu2neuro
inspect` (the CLI's main, in-process) and the network-file reader: the CLI must return 0 or 2, and
2 only with exactly one line `error: ...` naming the file; the reader must return an IntNetwork or
raise UserError. Derandomized (the same files every run), a deadline per example, and the peak
memory growth of the module is bounded at the end.
"""

import contextlib
import io
import os
import resource
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from netx_nets import slayer_file

from converters.netx.export import export_netx
from converters.netx.read import read_network_file
from lmu2neuro.cli import main
from lmu2neuro.core.errors import UserError
from lmu2neuro.core.intnet import IntNetwork

SCALE = int(os.environ.get("LMU2NEURO_FUZZ_SCALE", "1"))
FUZZ = settings(max_examples=40 * SCALE, deadline=timedelta(seconds=20), derandomize=SCALE == 1, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
COUNTS = {"files": 0, "ok": 0, "refused": 0}
_START_RSS_KB = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    from test_netx_read import _conv_net

    d = tmp_path_factory.mktemp("netx-bases")
    slayer_file(d / "slayer.net", "conv", seed=0)
    export_netx(_conv_net(), d / "ours.net")
    paths = [d / "slayer.net", d / "ours.net"]
    for p in paths:  # the unmutated files are good: the mutations are what fails
        assert _run(p) == 0
        assert isinstance(read_network_file(p), IntNetwork)
    return paths


@contextlib.contextmanager
def _scratch(base: Path):
    d = tempfile.mkdtemp(prefix="netx-fuzz-")
    try:
        p = Path(d) / "m.net"
        shutil.copyfile(base, p)
        yield p
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _run(path: Path) -> int:
    COUNTS["files"] += 1
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["inspect", str(path)])  # an exception escaping here is a traceback for the user
    text = err.getvalue()
    assert rc in (0, 2), (rc, text)
    if rc == 2:
        assert text.startswith("error: ") and text.count("\n") == 1 and str(path) in text, text
        COUNTS["refused"] += 1
    else:
        assert text == "", text
        COUNTS["ok"] += 1
    try:
        net = read_network_file(path)
    except UserError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc), str(exc)
    else:
        assert isinstance(net, IntNetwork)
    return rc


def _datasets(path: Path) -> list[str]:
    names = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    return sorted(names)


def _replace(f, name, **kw):
    del f[name]
    f.create_dataset(name, **kw)


which_base = st.integers(0, 1)


@FUZZ
@given(which=which_base, frac=st.floats(0.0, 1.0, exclude_max=True))
def test_truncated_files(bases, which, frac):
    data = bases[which].read_bytes()
    with _scratch(bases[which]) as p:
        p.write_bytes(data[: int(frac * len(data))])
        _run(p)


@settings(FUZZ, max_examples=60 * SCALE)
@given(which=which_base, flips=st.lists(st.tuples(st.floats(0.0, 1.0, exclude_max=True), st.integers(0, 7)),
                                         min_size=1, max_size=12))
def test_bit_flips(bases, which, flips):
    data = bytearray(bases[which].read_bytes())
    for k, (pos, bit) in enumerate(flips):  # half in the first 4 KiB: superblock and object headers
        span = min(len(data), 4096) if k % 2 == 0 else len(data)
        data[int(pos * span)] ^= 1 << bit
    with _scratch(bases[which]) as p:
        p.write_bytes(bytes(data))
        _run(p)


EDITS = ["delete", "dtype", "huge", "shape", "scalar", "type", "alias", "size"]


@settings(FUZZ, max_examples=70 * SCALE)
@given(which=which_base, edit=st.sampled_from(EDITS), pick=st.integers(0, 10**6),
       kind=st.sampled_from(["str", "complex", "compound", "bool", "int8", "vlen"]),
       k=st.integers(20, 44), shape=st.lists(st.integers(0, 6), max_size=4),
       scalar=st.sampled_from([np.nan, np.inf, -np.inf, 1e308, -1.0, 0.0, 0.5, 2.0**63, 255, -257]),
       text=st.sampled_from(["pool", "conv", "average", "flatten", "input", "dense_rec", "", "é"]))
def test_structural_edits(bases, which, edit, pick, kind, k, shape, scalar, text):
    with _scratch(bases[which]) as p:
        datasets = _datasets(p)
        target = datasets[pick % len(datasets)]
        with h5py.File(p, "r+") as f:
            n = max(int(np.prod(f[target].shape or ())), 1)
            if edit == "delete":
                del f[target]
            elif edit == "dtype":
                _replace(f, target, **{
                    "str": dict(data=np.array(["x"] * n, dtype=object), dtype=h5py.string_dtype()),
                    "complex": dict(data=np.full(n, 1 + 2j)),
                    "compound": dict(data=np.zeros(n, dtype=[("a", "i4"), ("b", "f8")])),
                    "bool": dict(data=np.ones(n, dtype=bool)),
                    "int8": dict(data=np.full(n, -7, dtype=np.int8)),
                    "vlen": dict(shape=(n,), dtype=h5py.vlen_dtype(np.float64)),
                }[kind])
            elif edit == "huge":  # declared, never written: a few bytes on disk
                dims = (2**k,) if pick % 2 else (2 ** (k // 2), 2 ** (k - k // 2))
                _replace(f, target, shape=dims, dtype="f8", chunks=(1,) * len(dims))
            elif edit == "shape":
                _replace(f, target, data=np.ones(shape))
            elif edit == "scalar":
                _replace(f, target, data=scalar)
            elif edit == "type":
                types = [d for d in datasets if d.endswith("/type")]
                _replace(f, types[pick % len(types)], data=text, dtype=h5py.string_dtype())
            elif edit == "alias":  # a group that holds its own ancestor: recursive readers loop
                f[f"layer/{pick % len(f['layer'])}"]["loop"] = f["layer"]
            elif edit == "size":  # declared sizes a reader allocates from
                sizes = [d for d in datasets if d.endswith("/shape") or d.endswith("/delay")
                         or d.endswith("/stride") or d.endswith("/groups")]
                _replace(f, sizes[pick % len(sizes)], data=np.array([10 ** (k // 3)] * (1 + pick % 3)))
        _run(p)


def test_zz_fuzz_stayed_bounded():
    """Runs last in the module: files were both accepted and refused, and memory stayed bounded."""
    assert COUNTS["files"] >= 100 and COUNTS["refused"] > 0 and COUNTS["ok"] > 0, COUNTS
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - _START_RSS_KB) / 1024
    assert grown_mb < 1500, f"peak memory grew {grown_mb:.0f} MB during the netx fuzz"
