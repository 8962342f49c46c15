"""`lmu2neuro simulate` end to end on an exported .nir, and its answers to bad input."""

import json

import numpy as np
import pytest
from netgen import random_inputs, random_network

from converters.nir.export import export_nir
from lmu2neuro.cli import main


@pytest.fixture()
def model(tmp_path):
    path = tmp_path / "model.nir"
    net = random_network(5)
    export_nir(net, path)
    x = random_inputs(5, 6, 10) / net.input_scale  # floats that quantize back to the integers
    np.save(tmp_path / "x.npy", x)
    return path, net, x


@pytest.mark.lava
def test_both_backends_write_a_complete_traffic_file(model, tmp_path, capsys):
    path, net, x = model
    out = tmp_path / "traffic.json"
    assert main(["simulate", str(path), "--input", str(tmp_path / "x.npy"), "--backend", "both",
                 "--lava-batch", "4", "-o", str(out)]) == 0
    t = json.loads(out.read_text())
    assert t["schema"] == "lmu2neuro.traffic/1" and t["backend"] == "both"
    assert t["samples"] == 6 and t["timesteps"] == 10
    assert t["agreement"]["identical_spikes"] == 1.0 and t["agreement"]["first_mismatch"] is None
    # 6 samples, 4 side by side: two rounds, the second with two lanes to spare
    assert t["timing"]["lava"]["lanes"] == 4 and t["timing"]["lava"]["rounds"] == 2
    layers = {l["name"]: l for l in t["layers"]}
    assert set(layers) == {"input", "a", "b", "u", "c", "out"}
    for pop in net.populations:
        assert sum(layers[pop.name]["spike_counts"]) == layers[pop.name]["spikes"]
        assert sum(layers[pop.name]["spikes_per_step"]) == layers[pop.name]["spikes"]
    # synaptic events = spikes of each source neuron x its nonzero fan-out, recomputed here
    for p in t["projections"]:
        proj = next(q for q in net.projections if q.name == p["name"])
        if p["graded"]:
            counts = np.count_nonzero(net.quantize_input(x), axis=(0, 1))
        else:
            counts = np.array(layers[p["source"]]["spike_counts"])
        assert p["synaptic_events"] == int((counts * proj.fan_out()).sum())
    printed = capsys.readouterr().out
    assert "identical spikes 100.00%" in printed and "samples/s running (4 side by side" in printed


def test_reference_backend_alone_and_raster(model, tmp_path):
    path, net, x = model
    out = tmp_path / "t.json"
    assert main(["simulate", str(path), "--input", str(tmp_path / "x.npy"), "--backend", "reference", "-o", str(out)]) == 0
    t = json.loads(out.read_text())
    assert t["agreement"] is None and t["labels"] is None
    assert sum(len(ev) for ev in t["raster"]["layers"].values()) > 0


def test_digits_dataset_inputs_with_labels(tmp_path):
    from lmu2neuro.core.intnet import IntNetwork, Population, Projection

    rng = np.random.default_rng(0)
    net = IntNetwork(8, 20.0, [Population("out", 10, 4095, 0, 131071, np.zeros(10, dtype=np.int64), readout=True)],
                     [Projection("w", "input", "out", rng.integers(-50, 50, (1, 10, 8)) * 2)], "out")
    export_nir(net, tmp_path / "m.nir")
    out = tmp_path / "t.json"
    assert main(["simulate", str(tmp_path / "m.nir"), "--dataset", "digits", "--samples", "7",
                 "--backend", "reference", "-o", str(out)]) == 0
    t = json.loads(out.read_text())
    assert len(t["labels"]) == 7 and 0.0 <= t["accuracy"] <= 1.0
    assert len(t["accuracy_by_frame"]) == t["timesteps"]
    assert t["accuracy_by_frame"][-1] == t["accuracy"]
    assert t["inputs"]["source"] == "the first 7 of dataset digits's test split"  # the report says which samples


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: np.save(d / "bad.npy", np.zeros((2, 5, 3))), "each frame holds 3 values; the model's input has 4"),
        (lambda d: np.save(d / "bad.npy", np.zeros((5, 4))), "expected numbers shaped (samples >= 1, timesteps >= 1"),
        (lambda d: np.save(d / "bad.npy", np.zeros((0, 5, 4))), "expected numbers shaped (samples >= 1, timesteps >= 1"),
        (lambda d: np.save(d / "bad.npy", np.zeros((2, 0, 4))), "expected numbers shaped (samples >= 1, timesteps >= 1"),
        (lambda d: np.save(d / "bad.npy", np.array([[[0.0, np.nan, 1, np.inf]]])), "2 values are NaN or infinite"),
        (lambda d: (d / "bad.npy").write_text("not numpy"), "not a numpy .npy array"),
        (lambda d: None, "input file not found"),
    ],
)
def test_bad_input_files_get_one_line_errors(model, tmp_path, capsys, make, message):
    path, _, _ = model
    make(tmp_path)
    out = tmp_path / "t.json"
    code = main(["simulate", str(path), "--input", str(tmp_path / "bad.npy"), "--backend", "reference", "-o", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and "\n" not in err
    assert message in err and "bad.npy" in err
    assert not out.exists()


def test_output_that_is_a_folder_fails_before_the_work(model, tmp_path, capsys):
    path, _, _ = model
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((2, 5, 4)))
    (tmp_path / "taken").mkdir()
    code = main(["simulate", str(path), "--input", str(x), "--backend", "reference",
                 "-o", str(tmp_path / "taken")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == f"error: -o {tmp_path / 'taken'}: is a folder; expected the path of a file to write"


def test_dt_of_our_own_file_is_kept_and_a_different_one_refused(model, tmp_path, capsys):
    path, _, _ = model
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((2, 5, 4)))
    out = tmp_path / "t.json"
    assert main(["simulate", str(path), "--input", str(x), "--backend", "reference",
                 "-o", str(out)]) == 0
    assert json.loads(out.read_text())["dt"] == 1e-4  # the file's own (export's default)
    capsys.readouterr()
    code = main(["simulate", str(path), "--input", str(x), "--backend", "reference",
                 "--dt", "1e-3", "-o", str(tmp_path / "u.json")])
    err = capsys.readouterr().err
    assert code == 2 and "dt = 0.001 given, but this file carries its own dt = 0.0001 s" in err
    assert not (tmp_path / "u.json").exists()


@pytest.mark.parametrize("value", ["0", "-2", "abc", "2.5"])
def test_a_lava_batch_that_is_not_a_positive_integer_fails_before_any_work(model, tmp_path, capsys, monkeypatch, value):
    import lmu2neuro.pipeline.simulate as sim

    monkeypatch.setattr(sim, "run_reference", lambda *a, **k: pytest.fail("a back end started"))
    path, _, _ = model
    out = tmp_path / "t.json"
    code = main(["simulate", str(path), "--input", str(tmp_path / "x.npy"), "--lava-batch", value, "-o", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith(f"error: --lava-batch {value}: expected a positive integer") and "\n" not in err
    assert not out.exists()


def test_a_lava_batch_that_does_not_fit_in_memory_fails_before_any_work(model, tmp_path, capsys, monkeypatch):
    import converters.lava.plan as plan
    import lmu2neuro.pipeline.simulate as sim

    path, net, _ = model
    # a machine with room for the weights, inputs and records of 6 samples and 2.5 lanes (at 80 %)
    room = int((plan.run_bytes(net, 10, 6) + 2.5 * plan.lane_bytes(net, 10)) / plan.MAX_MEMORY_SHARE)
    monkeypatch.setattr(plan, "available_memory", lambda: room)
    monkeypatch.setattr(sim, "run_reference", lambda *a, **k: pytest.fail("a back end started"))
    out = tmp_path / "t.json"
    code = main(["simulate", str(path), "--input", str(tmp_path / "x.npy"), "--lava-batch", "5", "-o", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: --lava-batch 5: 5 samples side by side need about") and "\n" not in err
    assert "at most 2 fit" in err
    assert not out.exists()
