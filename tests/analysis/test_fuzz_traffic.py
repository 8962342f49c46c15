"""Fuzzed traffic.json files never crash, hang or exhaust memory: `lmu2neuro report TRAFFIC.json` ends in
exit 0 or one line `error: ...` naming the file, and a failing run leaves no output folder.

Hypothesis edits a real traffic file (reference-simulator traffic of a small spiking network, with
labels): any field set to a value of another type, size or range (nulls in lists, lists of the wrong
length, a raster of the wrong shape), deleted, or nested deep; the text truncated or flipped, integers
of 5,000 digits and nesting 10,000 deep written in; FIFOs, folders and devices as the traffic path;
output folders under a file or under /proc. Derandomized, a deadline per example; the module's peak
memory growth is bounded at the end.
"""

import copy
import json

import numpy as np
import pytest
from fuzzing import FLIPS, SCALE, TEXT_FUZZ, CliCheck, special_file
from hypothesis import given, settings
from hypothesis import strategies as st

from converters.nir.export import export_nir
from lmu2neuro.analysis.traffic import load_traffic
from lmu2neuro.core.documents import MAX_DEPTH, MAX_NUMBER_CHARS
from lmu2neuro.core.errors import UserError
from lmu2neuro.core.guards import sha256_of
from netgen import make_traffic, spiking_mlp

CHECK = CliCheck()


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    d = tmp_path_factory.mktemp("traffic")
    net = spiking_mlp()
    export_nir(net, d / "model.nir", dt=1e-3)
    rng = np.random.default_rng(4)
    x = rng.integers(-4, 20, size=(5, 8, 6))
    traffic = make_traffic(net, x, labels=rng.integers(0, 4, size=5), model_sha256=sha256_of(d / "model.nir"))
    (d / "traffic.json").write_text(json.dumps(traffic))
    assert _report(d / "traffic.json", d / "model.nir", d / "ok") == 0  # the unmutated file is good
    return d, traffic


def _report(traffic, model, out) -> int:
    return CHECK.run(["report", traffic, "--model", model, "--profile", "loihi1", "-o", out], str(traffic),
                     outputs=[out])


def _paths(obj, prefix=()):
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:3]):  # the first entries of each list stand for the rest
            out += _paths(v, prefix + (i,))
    return out


VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**20), 10**20), st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e308, -1.0, 0.5, 1e-320, 2**63, "x" * 3000, "", "model.nir", "/dev/zero"]),
    st.text(max_size=8), st.lists(st.one_of(st.none(), st.integers(-2, 9), st.floats(0, 1)), max_size=12),
    st.dictionaries(st.sampled_from(["sample", "layers", "h1", "name"]), st.integers(-3, 10**6), max_size=3),
    st.integers(1, 120).map(lambda d: eval("[" * d + "]" * d)),
)


@settings(TEXT_FUZZ, max_examples=30 * SCALE)
@given(pick=st.integers(0, 10**6), value=VALUES, action=st.sampled_from(["set", "set", "set", "delete"]))
def test_field_edits(case, tmp_path_factory, pick, value, action):
    d, traffic = case
    data = copy.deepcopy(traffic)
    paths = _paths(data)
    path = paths[pick % len(paths)]
    parent = data
    for k in path[:-1]:
        parent = parent[k]
    if action == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    w = tmp_path_factory.mktemp("t")
    (w / "t.json").write_text(json.dumps(data))
    _report(w / "t.json", d / "model.nir", w / "out")


@settings(TEXT_FUZZ, max_examples=30 * SCALE)
@given(kind=st.sampled_from(["truncate", "flip", "bigint", "bigfloat", "deep", "nan", "latin1"]),
       frac=st.floats(0.0, 1.0, exclude_max=True), flips=FLIPS, n=st.integers(1, 10_000))
def test_text_edits(case, tmp_path_factory, kind, frac, flips, n):
    d, traffic = case
    text = json.dumps(traffic).encode()
    if kind == "truncate":
        text = text[: int(frac * len(text))]
    elif kind == "flip":
        data = bytearray(text)
        for pos, bit in flips:
            data[int(pos * len(data))] ^= 1 << bit
        text = bytes(data)
    elif kind == "bigint":
        text = text.replace(b'"samples": 5', b'"samples": ' + b"9" * (4000 + n), 1)
    elif kind == "bigfloat":
        text = text.replace(b'"dt": 0.001', b'"dt": 0.' + b"1" * n, 1)
    elif kind == "deep":
        text = text.replace(b'"agreement"', b'"agreement": ' + b"[" * n + b"]" * n + b', "x"', 1) if b'"agreement"' \
            in text else text[:-1] + b', "deep": ' + b"[" * n + b"]" * n + b"}"
    elif kind == "nan":
        text = text.replace(b'"accuracy": ', b'"accuracy": NaN, "a2": ', 1)
    else:
        text = text.replace(b'"reference"', b'"r\xe9f\xff"', 1)
    w = tmp_path_factory.mktemp("t")
    (w / "t.json").write_bytes(text)
    _report(w / "t.json", d / "model.nir", w / "out")


@settings(TEXT_FUZZ, max_examples=10 * SCALE)
@given(kind=st.sampled_from(["folder", "fifo", "device", "missing"]))
def test_guarded_paths(case, tmp_path_factory, kind):
    d, _ = case
    w = tmp_path_factory.mktemp("t")
    p = special_file(kind, w / "t.json") if kind != "missing" else w / "t.json"
    assert _report(p, d / "model.nir", w / "out") == 2


@pytest.mark.parametrize("where", ["under_a_file", "proc", "nested_new"])
def test_output_folders(case, tmp_path, where):
    """An output folder that cannot be made is one line; a refused run leaves none of the folders it made."""
    d, _ = case
    (tmp_path / "file").write_text("x")
    out = {"under_a_file": tmp_path / "file" / "rep", "proc": "/proc/lmu2neuro-x/rep",
           "nested_new": tmp_path / "o1" / "o2" / "o3"}[where]
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "lmu2neuro.traffic/1"}')
    traffic = d / "traffic.json" if where != "nested_new" else bad
    assert CHECK.run(["report", traffic, "--model", d / "model.nir", "--profile", "cpu", "-o", out],
                     str(out) if where != "nested_new" else str(bad), outputs=[out], scratch=tmp_path) == 2
    assert not (tmp_path / "o1").exists()


def test_the_guards_say_what_they_refuse(case, tmp_path):
    d, traffic = case
    cases = {
        "digits": (json.dumps(traffic).replace('"samples": 5', '"samples": ' + "9" * 5000, 1),
                   f"a number of 5,000 characters .* expected at most {MAX_NUMBER_CHARS}"),
        "deep": ('{"schema": "lmu2neuro.traffic/1", "x": ' + "[" * 10_000 + "]" * 10_000 + "}",
                 f"nested more than {MAX_DEPTH} levels deep"),
        "raster": (json.dumps({**traffic, "raster": [1, 2]}), "field 'raster': got \\[1, 2\\]"),
        "nulls": (json.dumps({**traffic, "accuracy_by_frame": [None] * 8}), "field 'accuracy_by_frame.0': got None"),
        "length": (json.dumps({**traffic, "accuracy_by_frame": [0.5] * 3}),
                   r"'accuracy_by_frame' of one fraction per step \(8\), got 3"),
    }
    for name, (text, needle) in cases.items():
        (tmp_path / f"{name}.json").write_text(text)
        with pytest.raises(UserError, match=needle):
            load_traffic(tmp_path / f"{name}.json")


@pytest.mark.parametrize("fidelity, needle", [
    ('{"prediction_agreement": "x", "samples": 3}', "field 'source': missing"),
    ('{"source": "s", "samples": 3, "prediction_agreement": 2, "warn_below": 0.9, "float_predictions": [], "layers": {}}',
     "field 'prediction_agreement': got 2, expected a value less than or equal to 1"),
    ("[" * 5000 + "]" * 5000, "nested more than 64 levels deep"),
])
def test_fidelity_file_beside_the_model_is_checked(case, tmp_path, fidelity, needle):
    """`export --model` writes MODEL.fidelity.json, which report reads beside the model: typed too."""
    import shutil

    d, traffic = case
    shutil.copyfile(d / "model.nir", tmp_path / "model.nir")
    (tmp_path / "model.fidelity.json").write_text(fidelity)
    (tmp_path / "t.json").write_text(json.dumps({k: v for k, v in traffic.items() if k != "fidelity"}))
    assert CHECK.run(["report", tmp_path / "t.json", "--model", tmp_path / "model.nir", "--profile", "cpu", "-o",
                      tmp_path / "out"], "model.fidelity.json", outputs=[tmp_path / "out"]) == 2
    from lmu2neuro.analysis.traffic import Fidelity, validate_with
    if not fidelity.startswith("["):
        with pytest.raises(UserError, match=needle):
            validate_with(Fidelity, json.loads(fidelity), "f")


def test_size_limit_is_configurable(case, monkeypatch):
    d, _ = case
    monkeypatch.setenv("LMU2NEURO_MAX_JSON_BYTES", "1000")
    with pytest.raises(UserError, match=r"traffic file of [\d,]+ bytes exceeds the size limit of 1,000 bytes \(raise "
                                        "LMU2NEURO_MAX_JSON_BYTES"):
        load_traffic(d / "traffic.json")


def test_zz_totals_and_memory():
    CHECK.assert_bounded(65 * SCALE, 768)
