"""`lmu2neuro simulate` on another tool's graph: the input scale (given or calibrated), labels, and
the float source graph run beside the deployed integers (the quantize-after-training path)."""

import json

import nir
import numpy as np
import pytest
import torch
from netgen import random_network

from converters.nir.export import export_nir
from converters.nir.float_executor import load
from lmu2neuro.cli import main

DT = 1e-4  # the NIR paper's step, which read_intnet assumes for a graph without a dt


@pytest.fixture(scope="module")
def third(tmp_path_factory):
    """A two-layer LIF graph as another tool writes it, and float inputs in [0, 1] whose per-sample
    channel gains make the predicted class depend on the sample."""
    d = tmp_path_factory.mktemp("third")
    rng = np.random.default_rng(0)

    def lif(n):
        return nir.LIF(tau=np.full(n, 2e-3), r=np.full(n, 30.0), v_leak=np.zeros(n), v_threshold=np.ones(n))

    g = nir.NIRGraph(
        nodes={"x": nir.Input(input_type=np.array([6])),
               "fc": nir.Affine(weight=rng.normal(0, 1.0, (4, 6)), bias=np.zeros(4)), "lif": lif(4),
               "fc2": nir.Affine(weight=rng.normal(0, 1.0, (3, 4)), bias=np.zeros(3)), "lif2": lif(3),
               "y": nir.Output(output_type=np.array([3]))},
        edges=[("x", "fc"), ("fc", "lif"), ("lif", "fc2"), ("fc2", "lif2"), ("lif2", "y")])
    nir.write(d / "g.nir", g)
    x = rng.uniform(0, 1, (40, 30, 6)) * rng.uniform(0, 1, (40, 1, 6)) ** 2
    np.save(d / "x.npy", x)
    y = rng.integers(0, 3, 40)
    np.save(d / "y.npy", y)
    return d, x, y


def _simulate(d, out, *extra):
    return main(["simulate", str(d / "g.nir"), "--input", str(d / "x.npy"), "--backend", "reference",
                 "-o", str(out), *extra])


def test_default_scale_is_calibrated_and_the_float_graph_agrees(third, tmp_path, capsys):
    d, x, y = third
    out = tmp_path / "t.json"
    assert _simulate(d, out, "--labels", str(d / "y.npy")) == 0
    t = json.loads(out.read_text())
    scale = t["input_scale"]
    assert scale["source"] == "calibrated" and scale["value"] == pytest.approx(127 / np.abs(x).max())
    assert not t["layers"][0]["binary"]  # [0, 1] inputs keep their levels, not {0, 1}
    # the float source graph, run here on the same unscaled inputs: same predictions as the block says
    float_out = load(d / "g.nir", dt=DT)(torch.as_tensor(x)).numpy()
    float_pred = float_out.sum(axis=1).argmax(axis=1)
    fid = t["fidelity"]
    assert fid["float_predictions"] == float_pred.tolist()
    assert len(set(float_pred.tolist())) > 1  # agreement is not trivial
    assert fid["prediction_agreement"] == pytest.approx(np.mean(float_pred == np.array(t["predictions"])))
    assert fid["prediction_agreement"] >= 0.95
    for name in ("lif", "lif2"):
        assert fid["layers"][name]["float_spikes"] > 50
        assert fid["layers"][name]["spike_ratio"] == pytest.approx(1.0, abs=0.05)
    # labels give accuracy, of the deployed network and of the float graph
    assert t["labels"] == y.tolist()
    assert t["accuracy"] == pytest.approx(np.mean(np.array(t["predictions"]) == y))
    assert fid["float_accuracy"] == pytest.approx(np.mean(float_pred == y))
    captured = capsys.readouterr()
    assert f"input scale {scale['value']:.6g} (calibrated: 127 / max |x|" in captured.out
    assert "warning" not in captured.err


def test_calibrated_scale_does_not_move_with_the_samples_simulated(third, tmp_path):
    """One stated rule (the whole --input file; a dataset's training split): 3 samples or 40 simulated,
    the same file deploys with the same scale."""
    d, x, _ = third
    scales = []
    for n in ("3", "40"):
        assert _simulate(d, tmp_path / f"t{n}.json", "--samples", n) == 0
        scales.append(json.loads((tmp_path / f"t{n}.json").read_text())["input_scale"])
    assert scales[0] == scales[1] and scales[0]["value"] == pytest.approx(127 / np.abs(x).max())
    assert scales[0]["calibration_samples"] == 40 and "training split" in scales[0]["rule"]
    # a dataset: its training split, never the test samples simulated
    from lmu2neuro.core import fixed_point as fx
    from lmu2neuro.datasets import get_dataset

    g = nir.NIRGraph(nodes={"x": nir.Input(input_type=np.array([8])),
                            "fc": nir.Affine(weight=np.ones((10, 8)) * 0.1, bias=np.zeros(10)),
                            "lif": nir.LIF(tau=np.full(10, 2e-3), r=np.full(10, 30.0), v_leak=np.zeros(10),
                                           v_threshold=np.ones(10)),
                            "y": nir.Output(output_type=np.array([10]))},
                     edges=[("x", "fc"), ("fc", "lif"), ("lif", "y")])
    nir.write(tmp_path / "d.nir", g)
    got = []
    for n in ("5", "30"):
        assert main(["simulate", str(tmp_path / "d.nir"), "--dataset", "digits", "--samples", n, "--backend",
                     "reference", "-o", str(tmp_path / f"d{n}.json")]) == 0
        got.append(json.loads((tmp_path / f"d{n}.json").read_text())["input_scale"]["value"])
    train = get_dataset("digits").train
    want = fx.calibrated_input_scale(np.stack([np.asarray(train[i][0]) for i in range(min(len(train), 2000))]))
    assert got == [want, want]


def test_scale_of_one_collapses_inputs_and_warns(third, tmp_path, capsys):
    d, x, _ = third
    out = tmp_path / "t.json"
    assert _simulate(d, out, "--input-scale", "1") == 0
    t = json.loads(out.read_text())
    assert t["input_scale"] == {"value": 1.0, "source": "--input-scale"}
    assert t["layers"][0]["binary"]  # round(x) of [0, 1]: the silent collapse the calibration avoids
    fid = t["fidelity"]
    assert fid["prediction_agreement"] < fid["warn_below"] and fid["float_accuracy"] is None
    assert fid["layers"]["lif"]["spike_ratio"] < 0.9
    assert "warning: the deployed integer network predicts like the float graph on only" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "-2", "nan"])
def test_bad_input_scale_is_refused(third, tmp_path, capsys, value):
    d, _, _ = third
    out = tmp_path / "t.json"
    assert _simulate(d, out, f"--input-scale={value}") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --input-scale") and "positive, finite" in err and not out.exists()


def test_our_own_file_refuses_an_input_scale(tmp_path, capsys):
    net = random_network(5)
    export_nir(net, tmp_path / "m.nir")
    np.save(tmp_path / "x.npy", np.zeros((2, 4, net.input_size)))
    out = tmp_path / "t.json"
    assert main(["simulate", str(tmp_path / "m.nir"), "--input", str(tmp_path / "x.npy"), "--backend", "reference",
                 "--input-scale", "3", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "m.nir: --input-scale 3.0 given, but this file carries its own input scale" in err and not out.exists()
    assert main(["simulate", str(tmp_path / "m.nir"), "--input", str(tmp_path / "x.npy"), "--backend", "reference",
                 "-o", str(out)]) == 0
    t = json.loads(out.read_text())
    assert t["input_scale"] == {"value": net.input_scale, "source": "model file"} and t["fidelity"] is None


@pytest.mark.parametrize("labels, expected", [
    (np.zeros(39, dtype=np.int64), "39 labels for 40 input samples"),
    (np.array([0.0] * 39 + [np.nan]), "1 labels are NaN"),
    (np.full(40, 0.5), "fractions"),
    (np.zeros((40, 3)), "expected a 1-D array of integer class indices"),
    (np.array(["a"] * 40), "not a numpy .npy array of numbers"),
    (np.full(40, -1), "negative labels"),
])
def test_bad_labels_one_line_and_nothing_written(third, tmp_path, capsys, labels, expected):
    d, _, _ = third
    np.save(tmp_path / "bad.npy", labels)
    out = tmp_path / "t.json"
    assert _simulate(d, out, "--labels", str(tmp_path / "bad.npy")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {tmp_path / 'bad.npy'}: ") and expected in err and "\n" not in err
    assert not out.exists()


def test_labels_need_an_input_file(third, tmp_path, capsys):
    d, _, _ = third
    out = tmp_path / "t.json"
    assert main(["simulate", str(d / "g.nir"), "--dataset", "digits", "--samples", "2", "--labels",
                 str(d / "y.npy"), "-o", str(out)]) == 2
    assert "labels go with --input" in capsys.readouterr().err and not out.exists()


def test_labels_follow_samples(third, tmp_path):
    d, _, y = third
    out = tmp_path / "t.json"
    assert _simulate(d, out, "--labels", str(d / "y.npy"), "--samples", "7") == 0
    assert json.loads(out.read_text())["labels"] == y[:7].tolist()


def test_reset_subtract_runs_every_spiking_population_with_it(third, tmp_path, capsys):
    d, x, y = third
    outs = {}
    for reset in ("zero", "subtract"):
        out = tmp_path / f"{reset}.json"
        assert _simulate(d, out, "--reset", reset, "--labels", str(d / "y.npy")) == 0
        outs[reset] = json.loads(out.read_text())
    from converters.nir.read import read_intnet

    net = read_intnet(d / "g.nir", input_scale=1.0, reset="subtract")
    assert [p.reset for p in net.populations if not p.readout] == ["subtract", "subtract"]
    # the reset changes what the integer network does: more spikes after a subtract (the voltage
    # above threshold is kept), never fewer in the first layer, which sees the same input
    z, s = outs["zero"]["layers"], outs["subtract"]["layers"]
    assert s[1]["spikes"] > z[1]["spikes"], (s[1]["spikes"], z[1]["spikes"])


def test_reset_is_refused_for_our_own_files_and_checked(third, tmp_path, capsys):
    net = random_network(5)
    export_nir(net, tmp_path / "m.nir")
    np.save(tmp_path / "x.npy", np.zeros((2, 4, net.input_size)))
    out = tmp_path / "t.json"
    assert main(["simulate", str(tmp_path / "m.nir"), "--input", str(tmp_path / "x.npy"), "--backend", "reference",
                 "--reset", "subtract", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "m.nir: reset 'subtract' given, but this file states" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()
    with pytest.raises(SystemExit):  # argparse: not one of the choices
        _simulate(third[0], out, "--reset", "none")
    assert not out.exists()


def test_refractory_runs_every_spiking_population_with_it(third, tmp_path, capsys):
    d, x, y = third
    outs = {}
    for steps in ("0", "2"):
        out = tmp_path / f"r{steps}.json"
        assert _simulate(d, out, "--refractory", steps, "--labels", str(d / "y.npy")) == 0
        outs[steps] = json.loads(out.read_text())
    # the float graph ran with the same period (its source line says so), and the integers follow it
    assert "refractory 2 steps" in outs["2"]["fidelity"]["source"]
    assert outs["2"]["fidelity"]["prediction_agreement"] >= 0.9
    # held neurons fire less: the first layer sees the same input either way
    assert outs["2"]["layers"][1]["spikes"] < outs["0"]["layers"][1]["spikes"]


def test_refractory_is_refused_for_our_own_files_and_checked(third, tmp_path, capsys):
    net = random_network(5)
    export_nir(net, tmp_path / "m.nir")
    np.save(tmp_path / "x.npy", np.zeros((2, 4, net.input_size)))
    out = tmp_path / "t.json"
    assert main(["simulate", str(tmp_path / "m.nir"), "--input", str(tmp_path / "x.npy"), "--backend", "reference",
                 "--refractory", "1", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "m.nir: refractory 1 given, but this file states" in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()
    assert _simulate(third[0], out, "--refractory", "63") == 2
    err = capsys.readouterr().err
    assert err.startswith("error: refractory 63: expected whole steps 0..62") and not out.exists()
