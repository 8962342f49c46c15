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

import h5py
import numpy as np
import pytest
from fuzzing import FLIPS, FUZZ, SCALE, FileCheck, datasets, replace
from hypothesis import given, settings
from hypothesis import strategies as st
from netx_nets import slayer_file

from converters.netx.export import export_netx
from converters.network_file import read_network_file
from lmu2neuro.core.intnet import IntNetwork

CHECK = FileCheck(read_network_file, ".net")


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    from test_netx_read import _conv_net

    d = tmp_path_factory.mktemp("netx-bases")
    slayer_file(d / "slayer.net", "conv", seed=0)
    export_netx(_conv_net(), d / "ours.net")
    paths = [d / "slayer.net", d / "ours.net"]
    for p in paths:  # the unmutated files are good: the mutations are what fails
        assert CHECK.run(p) == 0
        assert isinstance(read_network_file(p), IntNetwork)
    return paths


which_base = st.integers(0, 1)


@settings(FUZZ, max_examples=40 * SCALE)
@given(which=which_base, frac=st.floats(0.0, 1.0, exclude_max=True))
def test_truncated_files(bases, which, frac):
    CHECK.truncated(bases[which], frac)


@settings(FUZZ, max_examples=60 * SCALE)
@given(which=which_base, flips=FLIPS)
def test_bit_flips(bases, which, flips):
    CHECK.bit_flipped(bases[which], flips)


EDITS = ["delete", "dtype", "huge", "shape", "scalar", "type", "alias", "size"]


@settings(FUZZ, max_examples=70 * SCALE)
@given(which=which_base, edit=st.sampled_from(EDITS), pick=st.integers(0, 10**6),
       kind=st.sampled_from(["str", "complex", "compound", "bool", "int8", "vlen"]),
       k=st.integers(20, 44), shape=st.lists(st.integers(0, 6), max_size=4),
       scalar=st.sampled_from([np.nan, np.inf, -np.inf, 1e308, -1.0, 0.0, 0.5, 2.0**63, 255, -257]),
       text=st.sampled_from(["pool", "conv", "average", "flatten", "input", "dense_rec", "", "é"]))
def test_structural_edits(bases, which, edit, pick, kind, k, shape, scalar, text):
    with CHECK.scratch(bases[which]) as p:
        names = datasets(p)
        target = names[pick % len(names)]
        with h5py.File(p, "r+") as f:
            n = max(int(np.prod(f[target].shape or ())), 1)
            if edit == "delete":
                del f[target]
            elif edit == "dtype":
                replace(f, target, **{
                    "str": dict(data=np.array(["x"] * n, dtype=object), dtype=h5py.string_dtype()),
                    "complex": dict(data=np.full(n, 1 + 2j)),
                    "compound": dict(data=np.zeros(n, dtype=[("a", "i4"), ("b", "f8")])),
                    "bool": dict(data=np.ones(n, dtype=bool)),
                    "int8": dict(data=np.full(n, -7, dtype=np.int8)),
                    "vlen": dict(shape=(n,), dtype=h5py.vlen_dtype(np.float64)),
                }[kind])
            elif edit == "huge":  # declared, never written: a few bytes on disk
                dims = (2**k,) if pick % 2 else (2 ** (k // 2), 2 ** (k - k // 2))
                replace(f, target, shape=dims, dtype="f8", chunks=(1,) * len(dims))
            elif edit == "shape":
                replace(f, target, data=np.ones(shape))
            elif edit == "scalar":
                replace(f, target, data=scalar)
            elif edit == "type":
                types = [d for d in names if d.endswith("/type")]
                replace(f, types[pick % len(types)], data=text, dtype=h5py.string_dtype())
            elif edit == "alias":  # a group that holds its own ancestor: recursive readers loop
                f[f"layer/{pick % len(f['layer'])}"]["loop"] = f["layer"]
            elif edit == "size":  # declared sizes a reader allocates from
                sizes = [d for d in names if d.endswith("/shape") or d.endswith("/delay")
                         or d.endswith("/stride") or d.endswith("/groups")]
                replace(f, sizes[pick % len(sizes)], data=np.array([10 ** (k // 3)] * (1 + pick % 3)))
        CHECK.run(p)


def test_zz_fuzz_stayed_bounded():
    """Runs last in the module: files were both accepted and refused, and memory stayed bounded."""
    CHECK.assert_bounded(100, 1500)
