"""Fuzzed `export --model FILE.py:FUNCTION CHECKPOINT` inputs never crash: each run ends in exit 0 or one
line `error: ...`, exit 2, and a failing run leaves no output file and no folder it created.

Hypothesis edits a real state_dict (a snnTorch Linear -> Leaky -> Linear -> Leaky model): keys that
are not strings (int, tuple, None, bytes), renamed, missing or extra; values complex, NaN, beyond
float32, of the wrong shape or not tensors; whole files truncated, flipped, or holding a list, a
tensor or pickled objects. Model files whose FUNCTION raises anything (SystemExit and other
BaseExceptions included), returns the wrong thing or fails to import; bad --dt values; output and
--report paths under a file or under /proc. Derandomized, a deadline per example; the module's
peak memory growth is bounded at the end.
"""

import pickle

import pytest
import torch
from fuzzing import FLIPS, SCALE, TEXT_FUZZ, CliCheck
from hypothesis import given, settings
from hypothesis import strategies as st

from lmu2neuro.core.errors import UserError
from lmu2neuro.training.user_model import MAX_KEYS_SHOWN, HOW_PLAIN, load_state_dict_file

CHECK = CliCheck()

MODELS = '''
import sys
import snntorch as snn
import torch
from torch import nn


def leaky():
    return nn.Sequential(nn.Linear(8, 12), snn.Leaky(beta=0.9, init_hidden=True),
                         nn.Linear(12, 10), snn.Leaky(beta=0.8, init_hidden=True, output=True))


class Boom(BaseException):
    pass


def raises_value():
    raise ValueError("bad width")


def exits_7():
    sys.exit(7)


def exits_none():
    raise SystemExit


def raises_base():
    raise Boom("\\x1b[1mbold\\x1b[0m\\nsecond line")


def generator_exit():
    raise GeneratorExit


def returns_none():
    return None


def needs_arg(width):
    return leaky()


def forward_exits():
    class M(nn.Sequential):
        def forward(self, x):
            sys.exit(3)
    return M(nn.Linear(8, 10), snn.Leaky(beta=0.9, init_hidden=True, output=True))
'''

FUNCTIONS = ["raises_value", "exits_7", "exits_none", "raises_base", "generator_exit", "returns_none", "needs_arg",
             "forward_exits", "absent"]


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    d = tmp_path_factory.mktemp("export-model")
    (d / "models.py").write_text(MODELS)
    (d / "bad_import.py").write_text("raise SystemExit(4)\n")
    (d / "bad_syntax.py").write_text("def leaky(:\n")
    torch.manual_seed(0)
    import importlib.util

    spec = importlib.util.spec_from_file_location("fuzz_export_models", d / "models.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    state = mod.leaky().state_dict()
    torch.save(state, d / "good.pt")
    assert _export(d, d / "good.pt", d / "ok") == 0  # the unmutated inputs are good
    ok_forward = mod.forward_exits().state_dict()
    torch.save(ok_forward, d / "forward_exits.pt")
    return d, state


def _export(d, ckpt, out_dir, func="leaky", file="models.py", extra=(), names=None) -> int:
    out = out_dir / "sub" / "m.nir"
    argv = ["export", "--model", f"{d / file}:{func}", ckpt, "--dataset", "digits", "--samples", "12", "-o", out,
            *extra]
    return CHECK.run(argv, names or str(ckpt), outputs=[out_dir / "sub"])


KEYS = st.sampled_from([0, (1, 2), None, b"0.weight", 1.5, "0.weight", "extra.bias", "x" * 300,
                        "\x1b[31mred\x1b[0m", ""])
VALUES = st.sampled_from(["complex", "nan", "inf", "1e39", "shape", "int", "list", "str", "nested", "scalar",
                          "sparse", "empty", "bool"])


def _value(kind: str, like: torch.Tensor):
    return {
        "complex": lambda: like.to(torch.complex64), "nan": lambda: torch.full_like(like, float("nan")),
        "inf": lambda: torch.full_like(like, float("inf")), "1e39": lambda: torch.full(like.shape, 1e39, dtype=torch.float64),
        "shape": lambda: torch.zeros(like.numel() + 1), "int": lambda: like.to(torch.int64), "list": lambda: like.tolist(),
        "str": lambda: "weights", "nested": lambda: {"w": like}, "scalar": lambda: torch.tensor(0.5),
        "sparse": lambda: like.reshape(-1).to_sparse(), "empty": lambda: torch.zeros(0), "bool": lambda: like > 0,
    }[kind]()


@settings(TEXT_FUZZ, max_examples=60 * SCALE)
@given(pick=st.integers(0, 10**6), key=KEYS, value=VALUES,
       action=st.sampled_from(["rekey", "revalue", "revalue", "delete", "add"]))
def test_state_dict_edits(case, tmp_path_factory, pick, key, value, action):
    d, state = case
    state = dict(state)
    names = sorted(state)
    name = names[pick % len(names)]
    if action == "rekey":
        state[key] = state.pop(name)
    elif action == "revalue":
        state[name] = _value(value, state[name])
    elif action == "delete":
        del state[name]
    else:
        state[key] = _value(value, state[name])
    w = tmp_path_factory.mktemp("sd")
    torch.save(state, w / "m.pt")
    _export(d, w / "m.pt", w)


class _Payload:
    def __reduce__(self):
        import os

        return os.system, ("echo ran > ran.txt",)


@settings(TEXT_FUZZ, max_examples=40 * SCALE)
@given(kind=st.sampled_from(["truncate", "flip", "list", "tensor", "none", "pickle", "protocol5", "empty", "folder",
                             "fifo"]),
       frac=st.floats(0.0, 1.0, exclude_max=True), flips=FLIPS)
def test_checkpoint_files(case, tmp_path_factory, kind, frac, flips):
    import os

    d, state = case
    w = tmp_path_factory.mktemp("ck")
    p = w / "m.pt"
    data = (d / "good.pt").read_bytes()
    if kind == "truncate":
        p.write_bytes(data[: int(frac * len(data))])
    elif kind == "flip":
        buf = bytearray(data)
        for pos, bit in flips:
            buf[int(pos * len(buf))] ^= 1 << bit
        p.write_bytes(bytes(buf))
    elif kind in ("list", "tensor", "none"):
        torch.save({"list": list(state.values()), "tensor": next(iter(state.values())), "none": None}[kind], p)
    elif kind == "pickle":
        p.write_bytes(pickle.dumps({"0.weight": _Payload()}))
    elif kind == "protocol5":
        torch.save(state, p, pickle_protocol=5)
    elif kind == "empty":
        p.write_bytes(b"")
    elif kind == "folder":
        p.mkdir()
    else:
        os.mkfifo(p)
    rc = _export(d, p, w)
    assert rc == 2 or kind in ("protocol5", "flip", "truncate")
    assert not (w / "ran.txt").exists() and not (d / "ran.txt").exists()


@settings(TEXT_FUZZ, max_examples=30 * SCALE)
@given(func=st.sampled_from(FUNCTIONS + ["leaky@bad_import.py", "leaky@bad_syntax.py"]),
       dt=st.sampled_from([None, "1e-320", "0", "-1", "nan", "inf", "1e300", "1e-3"]),
       where=st.sampled_from(["plain", "report_under_file", "report_proc", "out_under_file"]))
def test_model_files_and_options(case, tmp_path_factory, func, dt, where):
    d, _ = case
    w = tmp_path_factory.mktemp("mf")
    (w / "file").write_text("x")
    func, _, file = func.partition("@")
    ckpt = d / ("forward_exits.pt" if func == "forward_exits" else "good.pt")
    extra = [] if dt is None else ["--dt", dt]
    if where == "report_under_file":
        extra += ["--report", w / "file" / "r.json"]
    elif where == "report_proc":
        extra += ["--report", "/proc/lmu2neuro-x/r.json"]
    out = (w / "file" / "m.nir") if where == "out_under_file" else w / "o1" / "o2" / "m.nir"
    # several things may be wrong at once: the line names whichever is checked first
    rc = CHECK.run(["export", "--model", f"{d / (file or 'models.py')}:{func}", ckpt, "--dataset", "digits",
                    "--samples", "12", "-o", out, *extra], "", outputs=[w / "o1"], scratch=w)
    assert rc == 2  # every case here has one thing wrong


def test_messages_name_the_keys_and_the_failure(case, tmp_path, capsys):
    from lmu2neuro.cli import main

    d, state = case
    bad = {f"{k}.renamed": v for k, v in state.items()}
    torch.save(bad, tmp_path / "m.pt")
    assert main(["export", "--model", f"{d / 'models.py'}:leaky", str(tmp_path / "m.pt"), "--dataset", "digits",
                 "-o", str(tmp_path / "m.nir")]) == 2
    err = capsys.readouterr().err
    more = len(state) - MAX_KEYS_SHOWN
    assert f"missing '0.bias', '0.weight', '1.beta' and {len(state) - MAX_KEYS_SHOWN} more" in err or \
        f"and {more} more; unexpected" in err, err
    assert err.rstrip().endswith("(a state_dict of another model?)"), err  # whole, not cut mid-word
    assert main(["export", "--model", f"{d / 'models.py'}:exits_7", str(d / "good.pt"), "--dataset", "digits",
                 "-o", str(tmp_path / "m.nir")]) == 2
    assert "models.py: exits_7() failed (SystemExit: 7)" in capsys.readouterr().err
    assert main(["export", "--model", f"{tmp_path / 'none.py'}:leaky", str(d / "good.pt"), "--dataset", "digits",
                 "-o", str(tmp_path / "m.nir")]) == 2
    err = capsys.readouterr().err
    assert HOW_PLAIN in err and "LoihiModel" not in err, err
    assert main(["export", "--model", f"{d / 'models.py'}:leaky", str(d / "good.pt"), "--dataset", "digits",
                 "--dt", "1e-320", "-o", str(tmp_path / "m.nir")]) == 2
    assert capsys.readouterr().err == "error: --dt 1e-320: expected seconds per time step between 1e-09 and 1000\n"
    torch.save({1: torch.zeros(2)}, tmp_path / "int.pt")
    with pytest.raises(UserError, match=r"a key of type int \(1\); expected parameter names"):
        load_state_dict_file(tmp_path / "int.pt")
    torch.save({"w": torch.zeros(2, dtype=torch.complex64)}, tmp_path / "c.pt")
    with pytest.raises(UserError, match=r"entry 'w' is a torch.complex64 .*a complex part would be dropped"):
        load_state_dict_file(tmp_path / "c.pt")


def test_zz_totals_and_memory():
    CHECK.assert_bounded(100 * SCALE, 1024)
