"""Fuzzed .nir files never crash, hang or exhaust memory: each ends in exit 0 or a one-line error.

Hypothesis mutates real files (ones we export with every projection form, convolutions included,
and third-party graphs with CubaLIF, Delay and recurrence, or a Conv2d -> AvgPool2d chain): truncation at any offset, random bit flips, and structural
edits through h5py (wrong dtypes, wrong or huge declared shapes, deleted fields, cycles, group
aliases, corrupted metadata JSON). Every mutated file goes through `lmu2neuro inspect` (the CLI's
main, in-process) and `read_intnet`: the CLI must return 0 or 2, and 2 only with exactly one
line `error: ...` naming the file; read_intnet must return an IntNetwork or raise UserError.
Examples are derandomized (the same files every run) and each has a deadline; the whole module's
peak memory growth is bounded at the end.
"""

import json
import shutil

import h5py
import nir
import numpy as np
import pytest
from fuzzing import FLIPS, FUZZ, SCALE, FileCheck, datasets, groups, replace
from hypothesis import given, settings
from hypothesis import strategies as st

from converters.nir.export import export_nir
from converters.nir.read import read_intnet
from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core import guards
from lmu2neuro.core.errors import UserError
from lmu2neuro.core.conv import ConvGeometry
from lmu2neuro.core.intnet import IntNetwork, Population, Projection
from netgen import lif_chain_graph

CHECK = FileCheck(read_intnet, ".nir")


def _ours() -> IntNetwork:
    rng = np.random.default_rng(3)
    pops = [
        Population("h", 4, 300, 1000, 90, rng.integers(-4, 4, 4)),
        Population("u", 1, 4095, 2048, 60, np.zeros(1, dtype=np.int64)),
        Population("out", 2, 4095, 0, fx.VTH_MAX, np.zeros(2, dtype=np.int64), readout=True),
    ]
    projs = [
        Projection("in-h", "input", "h", rng.integers(-50, 50, (2, 4, 3)) * 2, 0, {"kind": "conv"}),
        Projection("h-u", "h", "u", rng.integers(0, 60, (1, 1, 4)) * 2, 0, {"kind": "dense"}),
        Projection("u-out", "u", "out", rng.integers(-60, 60, (3, 2, 1)) * 2, 1, {"kind": "dense"}),
        Projection("h-out", "h", "out", rng.integers(-60, 60, (1, 2, 4)) * 2, -1, {"kind": "dense"}),
    ]
    return IntNetwork(3, 8.0, pops, projs, "out", dt=1e-3)


def _thirdparty() -> nir.NIRGraph:
    n = 3
    return nir.NIRGraph(
        nodes={
            "x": nir.Input(input_type=np.array([2])),
            "fc": nir.Affine(weight=np.linspace(-1, 1, n * 2).reshape(n, 2), bias=np.full(n, 0.1)),
            "cuba": nir.CubaLIF(tau_syn=np.full(n, 2e-3), tau_mem=np.full(n, 5e-3), r=np.ones(n),
                                v_leak=np.zeros(n), v_threshold=np.ones(n), v_reset=np.zeros(n), w_in=np.ones(n)),
            "rec": nir.Linear(weight=0.1 * np.eye(n)),
            "d": nir.Delay(delay=np.full(n, 2e-4)),
            "fc2": nir.Linear(weight=np.ones((2, n))),
            "lif": nir.LIF(tau=np.full(2, 1e-3), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2)),
            "y": nir.Output(output_type=np.array([2])),
        },
        edges=[("x", "fc"), ("fc", "cuba"), ("cuba", "rec"), ("rec", "cuba"), ("cuba", "d"), ("d", "fc2"),
               ("fc2", "lif"), ("lif", "y")],
        metadata={"dt": 1e-4},
    )


def _ours_conv() -> IntNetwork:
    """Convolutional projections (grouped, two taps; strided) between shaped populations."""
    rng = np.random.default_rng(4)
    pops = [Population("a", 32, 4095, 500, 40, np.repeat(rng.integers(-9, 9, 2), 16), shape=(2, 4, 4),
                       reset="subtract"),
            Population("b", 8, 4095, 500, 40, np.zeros(8, dtype=np.int64), shape=(2, 2, 2)),
            Population("out", 2, 4095, 0, fx.VTH_MAX, np.zeros(2, dtype=np.int64), readout=True)]
    projs = [Projection("in-a", "input", "a", rng.integers(-50, 50, (2, 2, 1, 3, 3)) * 2, 0, {"kind": "nir"},
                        conv=ConvGeometry((2, 4, 4), 1, 1, 1, groups=2)),
             Projection("a-b", "a", "b", rng.integers(-50, 50, (1, 2, 2, 2, 2)) * 2, 1, {"kind": "nir"},
                        conv=ConvGeometry((2, 4, 4), 2, 0, 1)),
             Projection("b-out", "b", "out", rng.integers(-60, 60, (1, 2, 8)) * 2, 0, {"kind": "dense"})]
    return IntNetwork(32, 8.0, pops, projs, "out", dt=1e-3)


def _thirdparty_conv() -> nir.NIRGraph:
    """Conv2d -> AvgPool2d -> LIF -> Flatten -> Linear -> LIF: one convolutional projection, one dense."""
    rng = np.random.default_rng(5)
    return nir.NIRGraph(
        nodes={"x": nir.Input(input_type=np.array([1, 6, 6])),
               "c": nir.Conv2d(input_shape=(6, 6), weight=rng.normal(0.2, 0.5, (2, 1, 3, 3)), stride=1, padding=1,
                               dilation=1, groups=1, bias=np.full(2, 0.05)),
               "p": nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
               "l1": nir.LIF(tau=np.full((2, 3, 3), 1e-3), r=np.ones((2, 3, 3)), v_leak=np.zeros((2, 3, 3)),
                             v_threshold=np.ones((2, 3, 3))),
               "f": nir.Flatten(input_type={"input": np.array([2, 3, 3])}, start_dim=0, end_dim=-1),
               "fc": nir.Linear(weight=rng.normal(0.2, 0.5, (2, 18))),
               "l2": nir.LIF(tau=np.full(2, 1e-3), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2)),
               "y": nir.Output(output_type=np.array([2]))},
        edges=[("x", "c"), ("c", "p"), ("p", "l1"), ("l1", "f"), ("f", "fc"), ("fc", "l2"), ("l2", "y")])


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    d = tmp_path_factory.mktemp("bases")
    export_nir(_ours(), d / "ours.nir")
    nir.write(d / "third.nir", _thirdparty())
    nir.write(d / "ff.nir", lif_chain_graph())
    export_nir(_ours_conv(), d / "ours_conv.nir")
    nir.write(d / "third_conv.nir", _thirdparty_conv())
    paths = [d / "ours.nir", d / "third.nir", d / "ff.nir", d / "ours_conv.nir", d / "third_conv.nir"]
    for p in paths:  # the unmutated files are good: the mutations are what fails
        assert CHECK.run(p) == 0
    return paths


base_index = st.integers(0, 4)


@FUZZ
@given(which=base_index, frac=st.floats(0.0, 1.0, exclude_max=True))
def test_truncated_files(bases, which, frac):
    CHECK.truncated(bases[which], frac)


@settings(FUZZ, max_examples=100 * SCALE)
@given(which=base_index, flips=FLIPS)
def test_bit_flips(bases, which, flips):
    CHECK.bit_flipped(bases[which], flips)


JSON_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-(10**30), 10**30),
                        st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
                        st.lists(st.integers(-5, 10**12), max_size=4),
                        st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))


def _edit_json(f, name, key_pick, value):
    raw = f[name][()]
    try:
        obj = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except (ValueError, AttributeError):
        return
    if not isinstance(obj, dict) or not obj:
        return
    key = sorted(obj)[key_pick % len(obj)]
    obj[key] = value
    replace(f, name, data=json.dumps(obj), dtype=h5py.string_dtype())


EDITS = ["dtype", "huge", "shape", "delete", "scalar", "cycle", "alias", "json", "type", "size"]


@settings(FUZZ, max_examples=140 * SCALE)
@given(which=base_index, edit=st.sampled_from(EDITS), pick=st.integers(0, 10**6),
       kind=st.sampled_from(["str", "complex", "compound", "bool", "int8", "vlen"]),
       k=st.integers(20, 44), shape=st.lists(st.integers(0, 6), max_size=3),
       scalar=st.sampled_from([np.nan, np.inf, -np.inf, 1e308, -1.0, 0.0, 1e-320, 2.0**63]),
       value=JSON_VALUES)
def test_structural_edits(bases, which, edit, pick, kind, k, shape, scalar, value):
    base = bases[which]
    with CHECK.scratch(base) as p:
        names = datasets(p)
        target = names[pick % len(names)]
        with h5py.File(p, "r+") as f:
            old = f[target]
            n = max(int(np.prod(old.shape or ())), 1)
            if edit == "dtype":
                data = {
                    "str": dict(data=np.array(["x"] * n, dtype=object), dtype=h5py.string_dtype()),
                    "complex": dict(data=np.full(n, 1 + 2j)),
                    "compound": dict(data=np.zeros(n, dtype=[("a", "i4"), ("b", "f8")])),
                    "bool": dict(data=np.ones(n, dtype=bool)),
                    "int8": dict(data=np.full(n, -7, dtype=np.int8)),
                    "vlen": dict(shape=(n,), dtype=h5py.vlen_dtype(np.float64)),
                }[kind]
                replace(f, target, **data)
            elif edit == "huge":  # declared, never written: a few bytes on disk
                dims = (2**k,) if pick % 2 else (2 ** (k // 2), 2 ** (k - k // 2))
                replace(f, target, shape=dims, dtype="f8", chunks=(1,) * len(dims))
            elif edit == "shape":
                replace(f, target, data=np.ones(shape))
            elif edit == "delete":
                del f[target]
            elif edit == "scalar":
                replace(f, target, data=scalar)
            elif edit == "cycle":  # reverse one edge: a loop, with or without state on it
                edges = [tuple(e) for e in f["node/edges"][()]]
                a, b = edges[pick % len(edges)]
                c, d = edges[(pick // 7) % len(edges)]
                replace(f, "node/edges", data=np.array(edges + [(b, a), (d, a)], dtype=object),
                         dtype=h5py.string_dtype())
            elif edit == "alias":  # a group that contains its own ancestor: recursive readers loop
                group_names = groups(p)
                g = group_names[pick % len(group_names)]
                f[g]["loop"] = f["node"]
            elif edit == "json":
                metas = [d for d in names if d.endswith("lmu2neuro")]
                if metas:
                    _edit_json(f, metas[pick % len(metas)], pick // 13, value)
            elif edit == "type":
                types = [d for d in names if d.endswith("/type")]
                replace(f, types[pick % len(types)], data=str(value)[:20] if pick % 3 else "Conv2d",
                         dtype=h5py.string_dtype())
            elif edit == "size":  # declared sizes the importers allocate from
                shapes = [d for d in names if d.endswith("/shape") or d.endswith("/delay")]
                replace(f, shapes[pick % len(shapes)], data=np.array([10 ** (k // 3)] * (1 + pick % 2)))
        CHECK.run(p)


# -- the specific files each guard exists for -------------------------------------------------------
def _refused(path, pattern, cli_status=2):
    """read_intnet refuses with `pattern`; inspect exits 2 when the file itself is refused, 0 when
    only the lowering is (inspect then prints "Lava build: NOT supported: <reason>")."""
    assert CHECK.run(path) == cli_status
    with pytest.raises(UserError, match=pattern):
        read_intnet(path)


def test_declared_huge_dataset_is_refused_before_reading(bases, tmp_path):
    p = tmp_path / "huge.nir"
    shutil.copyfile(bases[2], p)
    with h5py.File(p, "r+") as f:
        del f["node/nodes/fc/weight"]
        f["node/nodes/fc"].create_dataset("weight", shape=(2**20, 2**20), dtype="f8", chunks=(1, 1))
    assert p.stat().st_size < 1 << 20  # a tiny file that would need 8 TiB once read
    _refused(p, r"dataset '/node/nodes/fc/weight': 1,099,511,627,776 elements .* exceeds the limit")


def test_compressed_zeros_are_refused_by_declared_size(bases, tmp_path, monkeypatch):
    p = tmp_path / "bomb.nir"
    shutil.copyfile(bases[2], p)
    with h5py.File(p, "r+") as f:
        del f["node/nodes/fc/weight"]
        f["node/nodes/fc"].create_dataset("weight", data=np.zeros((2, 3 * 2**20)), compression="gzip")
    monkeypatch.setenv("LMU2NEURO_MAX_ELEMENTS", str(2**20))
    _refused(p, r"6,291,456 elements .* exceeds the limit of 1,048,576")


def test_many_small_chunks_are_refused(bases, tmp_path):
    p = tmp_path / "chunks.nir"
    shutil.copyfile(bases[2], p)
    with h5py.File(p, "r+") as f:  # 90,000 elements: within the element limit, but one chunk each
        del f["node/nodes/fc/weight"]
        f["node/nodes/fc"].create_dataset("weight", shape=(300, 300), dtype="f8", chunks=(1, 1))
    _refused(p, r"dataset '/node/nodes/fc/weight' is stored in 90,000 chunks .* the limit is 65,536")


def test_group_cycle_and_links_are_refused(bases, tmp_path):
    p = tmp_path / "loop.nir"
    shutil.copyfile(bases[2], p)
    with h5py.File(p, "r+") as f:
        f["node/nodes/fc"]["back"] = f["node"]
    _refused(p, r"links back to a group already visited")
    q = tmp_path / "ext.nir"
    shutil.copyfile(bases[2], q)
    with h5py.File(q, "r+") as f:
        f["node/nodes/fc/extra"] = h5py.ExternalLink("/etc/passwd", "/x")
    _refused(q, r"external link to '/etc/passwd'")


def test_deep_nesting_is_refused(bases, tmp_path):
    p = tmp_path / "deep.nir"
    shutil.copyfile(bases[2], p)
    with h5py.File(p, "r+") as f:
        f.create_group("node/nodes/fc/metadata/" + "/".join(["g"] * 40))
    _refused(p, r"nested \d+ levels deep; the limit is 32")


def test_huge_declared_neuron_count_is_refused(bases, tmp_path):
    p = tmp_path / "wide.nir"
    shutil.copyfile(bases[2], p)
    with h5py.File(p, "r+") as f:
        replace(f, "node/nodes/x/shape", data=np.array([10**12]))
    # nir's type check sees the Affine's 3 inputs first; the size guard before the importer's
    # identity matrix is the second line of defence (unit-tested on guards.check_elements below)
    _refused(p, r"wide.nir: ")
    with pytest.raises(UserError, match=r"node 'x': 1,000,000,000,000,000,000,000,000 elements"):
        guards.check_elements(p, "node 'x'", (10**12, 10**12))


def test_long_delay_is_refused(tmp_path):
    g = lif_chain_graph()
    g.nodes["d"] = nir.Delay(delay=np.full(3, 2e-4))
    g.edges = [("x", "d"), ("d", "fc"), ("fc", "lif"), ("lif", "y")]
    p = tmp_path / "delay.nir"
    nir.write(p, g)
    assert CHECK.run(p) == 0 and read_intnet(p, dt=1e-4).max_taps() == 3  # 2 steps: accepted
    with h5py.File(p, "r+") as f:
        replace(f, "node/nodes/d/delay", data=np.full(3, 1e5))  # 1e9 steps of 1e-4 s
    _refused(p, r"node 'd' \(Delay\): a delay of 1,000,000,000 steps .* exceeds the limit", cli_status=0)


def test_file_size_limit_is_configurable(bases, monkeypatch):
    monkeypatch.setenv("LMU2NEURO_MAX_FILE_BYTES", "1000")
    _refused(bases[0], r"NIR file of [\d,]+ bytes exceeds the size limit of 1,000 bytes")
    monkeypatch.setenv("LMU2NEURO_MAX_FILE_BYTES", "lots")
    with pytest.raises(UserError, match="LMU2NEURO_MAX_FILE_BYTES='lots': expected a whole number"):
        guards.max_file_bytes()


def test_zz_totals_and_memory():
    """Runs last in this module: how many files were tried, and that none of them took memory."""
    CHECK.assert_bounded(300 * SCALE, 1024)
