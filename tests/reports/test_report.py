"""`lmu2neuro report` end to end on a real .nir file and reference-simulator traffic."""

import json

import numpy as np
import pytest

from converters.nir.export import export_nir
from lmu2neuro.cli import main
from lmu2neuro.core.errors import UserError
from lmu2neuro.analysis.profiles import shipped_profiles
from lmu2neuro.core.guards import sha256_of
from netgen import make_traffic, spiking_mlp


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    net = spiking_mlp()
    model = d / "model.nir"
    export_nir(net, model, dt=1e-3)
    rng = np.random.default_rng(4)
    x = rng.integers(-4, 20, size=(5, 8, 6))
    labels = rng.integers(0, 4, size=5)
    traffic = make_traffic(net, x, labels=labels, model_sha256=sha256_of(model))
    (d / "traffic.json").write_text(json.dumps(traffic))
    return d, model, traffic


def test_report_writes_json_md_html_and_plots(case, capsys):
    d, model, traffic = case
    out = d / "out"
    rc = main(["report", str(d / "traffic.json"), "--model", str(model), "--profile", "loihi1",
               "--profile", "cpu", "--step-time", "1e-3", "-o", str(out)])
    assert rc == 0
    rep = json.loads((out / "report.json").read_text())
    l1, cpu = rep["profiles"]
    assert (l1["profile"], cpu["profile"]) == ("loihi1", "cpu")
    # static = 104 mW x 1 chip x 8 steps x 1 ms; dynamic = sum of the per-layer rows
    assert l1["static_j"] == pytest.approx(0.104 * 8e-3)
    assert l1["dynamic_j"] == pytest.approx(sum(r["energy_j"] for r in l1["layers"]) + l1["message_j"])
    assert l1["energy_per_inference_j"] == pytest.approx(l1["dynamic_j"] + l1["static_j"])
    assert l1["cores"] == 3 and l1["chips"] == 1 and cpu["cores"] is None
    assert [r["layer"] for r in l1["layers"]] == ["h1", "h2", "out"]
    assert rep["accuracy_by_frame"] == traffic["accuracy_by_frame"]
    assert any("Davies" in s.get("low", "") for s in l1["sources"].values())
    assert {b["profile"] for b in rep["dense_baseline"]} == {"cpu", "gpu", "mac45nm"}
    for name in ("energy_per_layer.png", "firing_rate.png", "raster.png", "streaming.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4 and "src='energy_per_layer.png'" not in html
    md = (out / "report.md").read_text()
    assert "| loihi1 |" in md and "Effective_ACs" in md and "SynapticOperations" in md
    assert "### loihi1: calibration" in md and "Blouw" in md and "x [benchmarks/blouw_kws_check.py]" not in md
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    assert "loihi1" in capsys.readouterr().out
    # the per-layer table of a conventional target shows the dense MACs it charges
    for r in cpu["layers"]:
        assert r["op_kind"] == "dense MACs" and r["ops"] == r["dense_macs"]
        assert r["ac_j"] + r["mac_j"] == pytest.approx(r["ops"] * 8.6e-9)
    assert cpu["time"]["basis"] == l1["time"]["basis"] == "given by the user (--step-time)"


def test_modelled_time_frame_period_labels_and_ranges(case, capsys):
    d, model, traffic = case
    out = d / "out2"
    rc = main(["report", str(d / "traffic.json"), "--model", str(model), "--profile", "loihi1", "--profile", "loihi2",
               "--profile", "spinnaker2", "--profile", "mac45nm", "--frame-period", "0.01", "-o", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    rep = json.loads((out / "report.json").read_text())
    l1, l2, sp2, floor = rep["profiles"]
    # static over the modelled latency: total = dynamic + static, both bases named
    assert l1["time"]["latency_s"][0] > 0 and l1["static_j"] == pytest.approx(0.104 * 1 * l1["time"]["latency_s"][0])
    assert l1["energy"]["static_pro_rata_j"]["estimate"] == pytest.approx(0.104 * 3 / 128 * l1["time"]["latency_s"][0])
    assert l1["energy"]["static_realtime_j"]["estimate"] == pytest.approx(0.104 * 8 * 0.01)
    assert l1["label"].startswith("dynamic + static (1 chip(s) occupied")
    assert l1["realtime"]["keeps_up"] and l1["realtime"]["factor"]["estimate"] < 1
    e = l1["energy"]
    assert e["dynamic_j"]["low"] < e["dynamic_j"]["estimate"] <= e["dynamic_j"]["high"]
    assert e["total_j"]["estimate"] == pytest.approx(e["dynamic_j"]["estimate"] + e["static_chips_j"]["estimate"])
    # the per-layer rows and the messages add up to the dynamic energy
    assert sum(r["energy_j"] for r in l1["layers"]) + l1["message_j"] == pytest.approx(l1["dynamic_j"])
    assert sp2["label"] == "dynamic only" and sp2["energy"]["total_j"] is None and sp2["time"] is None
    assert floor["label"].startswith("compute-only floor") and floor["power_w"] is None
    md = (out / "report.md").read_text()
    assert "Real time: one frame every 0.01 s" in md and "pro rata for the cores used" in md
    assert "compute-only floor" in md and "Busiest cores on loihi1" in md
    assert "(keeps up)" in printed and "latency" in printed and "[" in printed


def run_err(args, capsys):
    rc = main(args)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0
    return err


def test_bad_inputs_are_one_line_errors(case, capsys, tmp_path):
    d, model, traffic = case
    base = ["report", str(d / "traffic.json"), "--model", str(model), "-o", str(tmp_path / "o")]
    assert "unknown profile 'loihi9': expected one of" in run_err(base + ["--profile", "loihi9"], capsys)
    assert "--step-time: expected a positive, finite number" in run_err(base + ["--step-time=-1e-3"], capsys)
    assert "--step-time: expected a positive, finite number" in run_err(base + ["--step-time=inf"], capsys)
    assert "--frame-period: expected a positive, finite number" in run_err(base + ["--frame-period=0"], capsys)
    bad = tmp_path / "neg.yaml"
    bad.write_text(shipped_profiles()["loihi1"].read_text().replace("value: 35.5\n", "value: -35.5\n", 1))
    assert "neg.yaml: field 'energy.ac.value': got -35.5, expected a number >= 0" in run_err(base + ["--profile", str(bad)], capsys)
    # traffic recorded from another model file
    other = tmp_path / "other.nir"
    export_nir(spiking_mlp(seed=9), other, dt=1e-3)
    err = run_err(["report", str(d / "traffic.json"), "--model", str(other), "--profile", "cpu", "-o", str(tmp_path / "o")], capsys)
    assert "field 'model_sha256'" in err and "different model" in err
    # same hash claimed, but the layers do not match
    t2 = dict(traffic, model_sha256=sha256_of(other))
    (tmp_path / "t2.json").write_text(json.dumps(t2))
    err = run_err(["report", str(tmp_path / "t2.json"), "--model", str(other), "--profile", "cpu", "-o", str(tmp_path / "o")], capsys)
    assert "different model" in err
    assert not (tmp_path / "o").exists()


def test_model_defaults_to_the_one_the_traffic_names(case, capsys, tmp_path):
    d, model, traffic = case
    (tmp_path / "named.json").write_text(json.dumps(dict(traffic, model=str(model))))
    assert main(["report", str(tmp_path / "named.json"), "--profile", "cpu", "-o", str(tmp_path / "o")]) == 0
    assert json.loads((tmp_path / "o" / "report.json").read_text())["model"] == str(model)
    capsys.readouterr()
    (tmp_path / "gone.json").write_text(json.dumps(dict(traffic, model=str(tmp_path / "moved.nir"))))
    err = run_err(["report", str(tmp_path / "gone.json"), "--profile", "cpu", "-o", str(tmp_path / "p")], capsys)
    assert err == (f"error: {tmp_path / 'gone.json'}: field 'model' names {tmp_path / 'moved.nir'}, which is not "
                   "a file here; pass --model MODEL.nir")


@pytest.mark.parametrize("mutate, message", [
    (lambda t: t.__setitem__("layers", 5), r"field 'layers': got 5, expected a valid list"),
    (lambda t: t.__setitem__("samples", "x"), r"field 'samples': got 'x', expected a valid integer"),
    (lambda t: t["layers"][1].__setitem__("spike_counts", "abc"), r"field 'layers\.\w+\.spike_counts': got 'abc'"),
    (lambda t: t["layers"][1].__setitem__("spikes_per_step", [None] * t["timesteps"]),
     r"field 'layers\.\w+\.spikes_per_step\.0': got None, expected a valid number \(and \d+ more\)"),
    (lambda t: t["projections"][0].__setitem__("synaptic_events", -3),
     r"synaptic_events': got -3, expected a value greater than or equal to 0"),
    (lambda t: t.__setitem__("accuracy", float("nan")), r"field 'accuracy': got nan"),
])
def test_malformed_traffic_fields_are_one_line_errors(tmp_path, mutate, message):
    from lmu2neuro.analysis.traffic import load_traffic

    t = {"schema": "lmu2neuro.traffic/1", "samples": 2, "timesteps": 3, "accuracy": 0.5,
         "layers": [{"name": "input", "neurons": 4, "nonzero_inputs_per_step": [1, 2, 3]},
                    {"name": "hid", "neurons": 2, "spikes": 3, "spike_counts": [1, 2], "spikes_per_step": [1, 1, 1]}],
         "projections": [{"name": "w", "source": "input", "target": "hid", "synaptic_events": 10}]}
    path = tmp_path / "t.json"
    path.write_text(json.dumps(t))
    load_traffic(path)  # the unmutated file is fine
    mutate(t)
    path.write_text(json.dumps(t))
    with pytest.raises(UserError, match=message) as exc:
        load_traffic(path)
    assert str(exc.value).startswith(str(path)) and "\n" not in str(exc.value)
