"""Bad .nir files: one UserError line naming the file, node and field; the CLI exits non-zero."""

import h5py
import nir
import numpy as np
import pytest

from converters.nir.read import read_graph, read_intnet
from converters.nir.float_executor import load
from lmu2neuro.cli import main
from lmu2neuro.core.errors import UserError
from netgen import lif_chain_graph


@pytest.fixture
def good(tmp_path):
    path = tmp_path / "good.nir"
    nir.write(path, lif_chain_graph())
    return path


def _edit(path, fn):
    with h5py.File(path, "r+") as f:
        fn(f["node"])
    return path


def _cases(tmp_path, good):
    text = tmp_path / "text.nir"
    text.write_text("this is not a graph\n")
    trunc = tmp_path / "trunc.nir"
    trunc.write_bytes(good.read_bytes()[:700])
    other = tmp_path / "other.nir"
    with h5py.File(other, "w") as f:
        f.create_dataset("data", data=np.arange(3))

    def copy(name):
        p = tmp_path / name
        p.write_bytes(good.read_bytes())
        return p

    def unknown(n):
        del n["nodes/fc/type"]
        n["nodes/fc"].create_dataset("type", data="Dense", dtype=h5py.string_dtype())

    def shapes(n):
        del n["nodes/lif/tau"]
        n["nodes/lif"].create_dataset("tau", data=np.full(3, 1e-3))

    def edge_types(n):
        del n["nodes/fc/weight"]
        n["nodes/fc"].create_dataset("weight", data=np.ones((2, 5)))

    loop = tmp_path / "loop.nir"
    nir.write(loop, nir.NIRGraph(
        nodes={"x": nir.Input(input_type=np.array([2])), "a": nir.Linear(weight=np.eye(2)),
               "b": nir.Linear(weight=np.eye(2)), "y": nir.Output(output_type=np.array([2]))},
        edges=[("x", "a"), ("a", "b"), ("b", "a"), ("b", "y")],
    ))

    return [
        (text, [r"not an HDF5 file"]),
        (trunc, [r"truncated or corrupt"]),
        (other, [r"not a NIR graph: no 'node' group"]),
        (_edit(copy("unknown.nir"), unknown), [r"node 'fc'", r"unknown node type 'Dense'"]),
        (_edit(copy("missing.nir"), lambda n: n["nodes/lif"].__delitem__("v_threshold")),
         [r"node 'lif' \(LIF\)", r"missing parameter 'v_threshold'"]),
        (_edit(copy("shapes.nir"), shapes), [r"node 'lif' \(LIF\)", r"parameter 'r' has shape \(2,\), expected \(3,\)"]),
        (_edit(copy("edges.nir"), edge_types), [r"not a valid NIR graph", r"fc"]),
        (loop, [r"cycle without state (a -> b -> a|b -> a -> b)"]),
    ]


def test_each_bad_file_is_one_named_line(tmp_path, good):
    from lmu2neuro.pipeline.inspect import inspect_nir

    for path, patterns in _cases(tmp_path, good):
        with pytest.raises(UserError) as e:
            inspect_nir(path)  # read_graph, then the loop check
        msg = str(e.value)
        assert "\n" not in msg, msg
        assert msg.startswith(str(path)), msg
        for pat in patterns:
            assert __import__("re").search(pat, msg), (pat, msg)


def test_cycle_without_state_is_named(tmp_path):
    g = nir.NIRGraph(
        nodes={"x": nir.Input(input_type=np.array([2])), "a": nir.Linear(weight=np.eye(2)),
               "b": nir.Linear(weight=np.eye(2)), "y": nir.Output(output_type=np.array([2]))},
        edges=[("x", "a"), ("a", "b"), ("b", "a"), ("b", "y")],
    )
    path = tmp_path / "loop.nir"
    nir.write(path, g)
    with pytest.raises(UserError, match=r"cycle without state a -> b -> a|cycle without state b -> a -> b"):
        load(path, dt=1e-3)
    with pytest.raises(UserError, match=r"cycle without state"):
        read_intnet(path)


def test_missing_file_folder_and_device(tmp_path):
    with pytest.raises(UserError, match=r"nope.nir: NIR file not found; expected a .nir graph"):
        read_graph(tmp_path / "nope.nir")
    with pytest.raises(UserError, match=r": is a folder, not a NIR file"):
        read_graph(tmp_path)
    with pytest.raises(UserError, match=r"/dev/null: is not a regular file"):
        read_graph("/dev/null")


def test_cli_reports_bad_files_without_traceback(tmp_path, good, capsys):
    for path, patterns in _cases(tmp_path, good):
        assert main(["inspect", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
        assert str(path) in err


def test_cli_inspect_good_file(good, capsys):
    assert main(["inspect", str(good)]) == 0
    out = capsys.readouterr().out
    assert "lif" in out and "LIF" in out and "Lava build: supported" in out
    assert main(["inspect", str(good), "--json"]) == 0
    info = __import__("json").loads(capsys.readouterr().out)
    assert info["lava_supported"] is True and len(info["nodes"]) == 4
    assert {"name": "fc", "type": "Affine", "input_shape": [3], "output_shape": [2], "parameters": 8,
            "metadata": []} in info["nodes"]


@pytest.mark.parametrize("node, field, value, message", [
    ("fc", "weight", np.nan, r"node 'fc' \(Affine\): parameter 'weight' holds NaN or infinite values"),
    ("lif", "v_threshold", np.inf, r"node 'lif' \(LIF\): parameter 'v_threshold' holds NaN or infinite"),
    ("lif", "tau", 0.0, r"node 'lif' \(LIF\): parameter 'tau' has a value 0; expected time constants > 0 s"),
    ("lif", "tau", -1.0, r"parameter 'tau' has a value -1; expected time constants > 0 s"),
])
def test_non_finite_or_non_positive_parameters_are_named(tmp_path, node, field, value, message):
    import warnings

    g = lif_chain_graph()
    getattr(g.nodes[node], field).flat[0] = value
    nir.write(tmp_path / "g.nir", g)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # named before any arithmetic warns about it
        with pytest.raises(UserError, match=message):
            read_intnet(tmp_path / "g.nir")
