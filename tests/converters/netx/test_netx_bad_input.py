"""Bad netx files: each refused with one line naming the file, the layer and the field (UserError;
the CLI prints `error: ...` and exits 2), and nothing written."""

import shutil

import h5py
import numpy as np
import pytest
from netx_nets import slayer_file

from converters.netx.read import read_netx
from lmu2neuro.cli import main
from lmu2neuro.core.errors import UserError


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return slayer_file(tmp_path_factory.mktemp("good") / "conv.net", "conv", seed=0)


def _put(f, name, value, **kw):
    if name in f:
        del f[name]
    f.create_dataset(name, data=value, **kw)


def _text(f, name, value):
    _put(f, name, np.array([value.encode()]), dtype="S10")


# (edit of the good file, the layer and field the one-line error must name)
CASES = {
    "unsupported type": (lambda f: _text(f, "layer/5/type", "dense_rec"), "layer 5 (dense_rec), field 'type'"),
    "missing weight": (lambda f: f.__delitem__("layer/1/weight"), "layer 1 (conv), field 'weight': missing"),
    "missing neuron": (lambda f: f.__delitem__("layer/2/neuron"), "layer 2 (conv), field 'neuron': missing"),
    "missing type": (lambda f: f.__delitem__("layer/6/type"), "layer 6 (?), field 'type': missing"),
    "conv shape": (lambda f: _put(f, "layer/1/shape", np.array([4, 7, 8])), "layer 1 (conv), field 'shape'"),
    "dense inputs": (lambda f: _put(f, "layer/6/weight", np.zeros((3, 11))), "layer 6 (dense), field 'weight'"),
    "weight range": (lambda f: _put(f, "layer/1/weight", np.full((4, 2, 3, 3), 300.0)),
                     "layer 1 (conv), field 'weight': weight 300 outside"),
    "weight fraction": (lambda f: _put(f, "layer/6/weight", np.full((3, 10), 1.5)),
                        "layer 6 (dense), field 'weight': value 1.5 is not a whole number"),
    "weight nan": (lambda f: _put(f, "layer/6/weight", np.full((3, 10), np.nan)), "layer 6 (dense), field 'weight'"),
    "threshold range": (lambda f: _put(f, "layer/2/neuron/vThMant", (1 << 18) - 1),
                        "layer 2 (conv), field 'neuron/vThMant': value 262143 above 131071"),
    "iDecay zero": (lambda f: _put(f, "layer/5/neuron/iDecay", 0), "layer 5 (dense), field 'neuron/iDecay'"),
    "refractory": (lambda f: _put(f, "layer/5/neuron/refDelay", 64),
                   "layer 5 (dense), field 'neuron/refDelay': value 64 above 63"),
    "neuron type": (lambda f: _text(f, "layer/5/neuron/type", "RF_IZ"), "layer 5 (dense), field 'neuron/type'"),
    "graded": (lambda f: _put(f, "layer/5/neuron/gradedSpike", True), "layer 5 (dense), field 'neuron/gradedSpike'"),
    "delay range": (lambda f: _put(f, "layer/5/delay", np.full(10, 70.0)), "layer 5 (dense), field 'delay': value 70"),
    "delay shape": (lambda f: _put(f, "layer/5/delay", np.zeros(7)), "layer 5 (dense), field 'delay': shape (7,)"),
    "conv delay": (lambda f: _put(f, "layer/1/delay", np.zeros(4)), "layer 1 (conv), field 'delay'"),
    "bias range": (lambda f: _put(f, "layer/6/bias", np.full(3, 5000)), "layer 6 (dense), field 'bias'"),
    "bias shape": (lambda f: _put(f, "layer/6/bias", np.zeros(2)), "layer 6 (dense), field 'bias': shape (2,)"),
    "groups": (lambda f: _put(f, "layer/2/groups", 3), "layer 2 (conv), field 'weight'"),
    "stride text": (lambda f: _text(f, "layer/2/stride", "two"), "layer 2 (conv), field 'stride'"),
    "pool kernel": (lambda f: _put(f, "layer/3/weight", np.ones((2, 1, 2, 2))), "layer 3 (pool), field 'weight'"),
    "no input frame": (lambda f: f.__delitem__("layer/0/shape"), "layer 0 (input), field 'shape': missing"),
    "layer names": (lambda f: f.move("layer/6", "layer/9"), "field 'layer': layer names"),
    "average not last": (lambda f: _text(f, "layer/5/type", "average"), "layer 5 (average)"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_bad_field_is_one_line_naming_layer_and_field(good, tmp_path, case):
    edit, expected = CASES[case]
    path = tmp_path / "bad.net"
    shutil.copy(good, path)
    with h5py.File(path, "a") as f:
        edit(f)
    with pytest.raises(UserError) as err:
        read_netx(path)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{path}: ")
    assert expected in msg, msg


def test_cli_exits_2_with_one_line(good, tmp_path, capsys):
    path = tmp_path / "bad.net"
    shutil.copy(good, path)
    with h5py.File(path, "a") as f:
        _put(f, "layer/5/neuron/refDelay", 70)
    np.save(tmp_path / "x.npy", np.zeros((2, 5, 128), dtype=np.float32))
    out = tmp_path / "t.json"
    rc = main(["simulate", str(path), "--input", str(tmp_path / "x.npy"), "--backend", "reference", "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert "layer 5 (dense), field 'neuron/refDelay'" in err
    assert not out.exists()


def test_size_guards_apply(good, tmp_path, monkeypatch):
    monkeypatch.setenv("LMU2NEURO_MAX_ELEMENTS", "100")
    with pytest.raises(UserError, match="exceeds the limit of 100"):
        read_netx(good)
    monkeypatch.delenv("LMU2NEURO_MAX_ELEMENTS")
    path = tmp_path / "big.net"
    shutil.copy(good, path)
    with h5py.File(path, "a") as f:  # a 1e12-neuron layer declared in a few bytes
        _put(f, "layer/6/shape", np.array([10 ** 12]))
    with pytest.raises(UserError, match=r"layer 6 \(dense\) field 'shape'.*exceeds the limit"):
        read_netx(path)
