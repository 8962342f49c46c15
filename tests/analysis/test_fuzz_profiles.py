"""Fuzzed hardware profiles never crash, hang or exhaust memory: `lmu2neuro profiles FILE.yaml` ends in
exit 0 or one line `error: ...` naming the file.

Hypothesis mutates a shipped profile (loihi1.yaml, every section present): truncation, byte flips,
and structural edits of any field (values of every type and size, deleted and unknown fields, deep
nesting), plus the inputs the size and alias guards exist for (alias bombs, 10,000-deep nesting,
oversized files, python tags, FIFOs, folders, devices). Derandomized, a deadline per example; the
module's peak memory growth is bounded at the end.
"""

import math

import pytest
import yaml
from fuzzing import FLIPS, SCALE, TEXT_FUZZ, CliCheck, special_file
from hypothesis import given, settings
from hypothesis import strategies as st

from lmu2neuro.analysis.profiles import MAX_TABLE_ENTRIES, load_profile, shipped_profiles
from lmu2neuro.core.documents import MAX_DEPTH, MAX_PROFILE_BYTES
from lmu2neuro.core.errors import UserError

CHECK = CliCheck()
BASE = shipped_profiles()["loihi1"]
DATA = yaml.safe_load(BASE.read_text())


def _paths(obj, prefix=()):
    """Every dotted path of the document (branches and leaves)."""
    out = [prefix] if prefix else []
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out += _paths(v, prefix + (i,))
    return out


PATHS = _paths(DATA)

VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.sampled_from([10**400, -(10**400)]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e308, 1e-320, -1.0, 0.0, 3.4e38]),
    st.text(max_size=12), st.sampled_from(["", "x" * 5000, "23.6 pJ", "pJ", "J per op", "!!python/object"]),
    st.lists(st.integers(-3, 3), max_size=4), st.dictionaries(st.text(max_size=4), st.integers(), max_size=3),
    st.integers(1, 200).map(lambda d: [[]] if d == 1 else eval("[" * d + "]" * d)),
)


def _run(p) -> int:
    return CHECK.run(["profiles", p], str(p))


def _edit(data, path, value, action):
    import copy

    data = copy.deepcopy(data)
    parent = data
    for k in path[:-1]:
        parent = parent[k]
    last = path[-1]
    if action == "delete":
        if isinstance(parent, dict):
            del parent[last]
        else:
            parent.pop(last)
    elif action == "unknown" and isinstance(parent, dict):
        parent[f"{last}_extra"] = value
    else:
        parent[last] = value
    return data


@pytest.fixture(scope="module", autouse=True)
def base_is_good():
    assert load_profile(BASE).name == "loihi1"


@settings(TEXT_FUZZ, max_examples=40 * SCALE)
@given(frac=st.floats(0.0, 1.0, exclude_max=True), flips=st.one_of(st.just([]), FLIPS))
def test_truncated_and_flipped(tmp_path_factory, frac, flips):
    data = bytearray(BASE.read_bytes()[: max(1, int(frac * BASE.stat().st_size))] if not flips else BASE.read_bytes())
    for pos, bit in flips:
        data[int(pos * len(data))] ^= 1 << bit
    p = tmp_path_factory.mktemp("prof") / "p.yaml"
    p.write_bytes(bytes(data))
    _run(p)


@settings(TEXT_FUZZ, max_examples=90 * SCALE)
@given(pick=st.integers(0, 10**6), value=VALUES, action=st.sampled_from(["set", "set", "delete", "unknown"]))
def test_structural_edits(tmp_path_factory, pick, value, action):
    data = _edit(DATA, PATHS[pick % len(PATHS)], value, action)
    p = tmp_path_factory.mktemp("prof") / "p.yaml"
    p.write_text(yaml.safe_dump(data, allow_unicode=True, width=10**6))
    _run(p)


def _bomb(levels: int) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    return "name: bomb\n" + "\n".join(lines) + "\n"


@settings(TEXT_FUZZ, max_examples=30 * SCALE)
@given(kind=st.sampled_from(["bomb", "merge", "flow_deep", "block_deep", "big", "tag", "bigint", "folder", "fifo",
                             "device", "binary"]),
       n=st.integers(1, 10_000))
def test_guarded_inputs(tmp_path_factory, kind, n):
    d = tmp_path_factory.mktemp("prof")
    p = d / "p.yaml"
    if kind in ("folder", "fifo", "device"):
        p = special_file(kind, p)
    else:
        text = {
            "bomb": lambda: _bomb(1 + n % 9),
            "merge": lambda: "base: &b {value: 1, unit: pJ, source: s}\nenergy:\n  ac:\n    <<: *b\n",
            "flow_deep": lambda: "name: " + "[" * n + "]" * n + "\n",
            "block_deep": lambda: "".join(" " * i + "k:\n" for i in range(min(n, 700))),
            "big": lambda: BASE.read_text() + "# " + "x" * (MAX_PROFILE_BYTES + n) + "\n",
            "tag": lambda: "name: !!python/object/apply:os.system ['echo ran > ran.txt']\n",
            "bigint": lambda: f"name: x\nkind: neuromorphic\nenergy: {{ac: {{value: {'9' * (4000 + n)}, unit: pJ, "
                              "source: s}}\n",
            "binary": lambda: bytes(range(256)).decode("latin-1"),
        }[kind]()
        p.write_text(text, encoding="utf-8" if kind != "binary" else "latin-1")
    assert _run(p) == 2
    assert not (d / "ran.txt").exists()


def test_the_guards_say_what_they_refuse(tmp_path):
    cases = {"bomb.yaml": (_bomb(9), "YAML alias '*a0' refused"),
             "deep.yaml": ("name: " + "[" * 10_000 + "]" * 10_000 + "\n", f"nested more than {MAX_DEPTH} levels deep"),
             "big.yaml": ("#" * (MAX_PROFILE_BYTES + 1), f"exceeds the size limit of {MAX_PROFILE_BYTES:,} bytes")}
    for name, (text, needle) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(UserError, match=needle.replace("*", r"\*").replace("(", r"\(")):
            load_profile(tmp_path / name)


def test_quietly_accepted_values_are_refused(tmp_path):
    """An energy of 1e308 J and a barrier low table above its estimate were accepted before."""
    huge = _edit(DATA, ("energy", "ac", "value"), 1e308, "set")
    huge["energy"]["ac"].pop("high", None)
    (tmp_path / "huge.yaml").write_text(yaml.safe_dump(huge))
    with pytest.raises(UserError, match=r"field 'energy.ac': 1e\+296 J once converted; expected at most 1e\+18 J"):
        load_profile(tmp_path / "huge.yaml")
    bs = DATA["barrier_sync"]
    assert "low" in bs and "by_tiles" in bs
    tiles = next(iter(bs["by_tiles"]))
    inverted = _edit(DATA, ("barrier_sync", "low", "by_tiles", tiles), bs["by_tiles"][tiles] * 2 + 1, "set")
    (tmp_path / "inv.yaml").write_text(yaml.safe_dump(inverted))
    with pytest.raises(UserError, match=rf"field 'barrier_sync': expected 'low.by_tiles' at {tiles} tiles .* not above "
                                        "the estimate"):
        load_profile(tmp_path / "inv.yaml")
    assert math.isfinite(load_profile(BASE).energy.ac.value)


def test_barrier_tables_are_bounded(tmp_path):
    data = _edit(DATA, ("barrier_sync", "by_tiles"), {i: 1.0 for i in range(1, MAX_TABLE_ENTRIES + 2)}, "set")
    (tmp_path / "t.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(UserError, match=rf"at most {MAX_TABLE_ENTRIES} entries in 'by_tiles', got 1,025"):
        load_profile(tmp_path / "t.yaml")


def test_zz_totals_and_memory():
    CHECK.assert_bounded(150 * SCALE, 512)
