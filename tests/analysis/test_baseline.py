"""The measured baselines: the torch equivalents compute what they claim, helpers are no part of
them, the command measures and labels its energy, and a missing device is one line, exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lmu2neuro.analysis.baseline import TorchEquivalent, measure
from lmu2neuro.cli import main
from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core.conv import ConvGeometry
from lmu2neuro.core.executor import execute
from lmu2neuro.core.intnet import IntNetwork, Population, Projection
from lmu2neuro.pipeline.baseline import run_baseline, structure


def _net(recurrent: bool = False, du: int = 1024, dv: int = 512) -> IntNetwork:
    """input (1 x 8 frame) -> conv pop "c" (2 x 8) -> dense pop "h" (5) -> spike-count readout,
    with a bias source helper population feeding "h" and, optionally, a recurrent "h" -> "h"."""
    rng = np.random.default_rng(0)
    geo = ConvGeometry((1, 8), 1, 1, 1)
    pops = [Population("bias", 1, du=0, dv=fx.DECAY_UNITY - 1, vth=0, bias_mant=np.ones(1, np.int64),
                       meta={"helper": "bias source"}),
            Population("c", 16, du=du, dv=dv, vth=40, bias_mant=rng.integers(-5, 5, 16)),
            Population("h", 5, du=du, dv=dv, vth=60, bias_mant=np.zeros(5, np.int64)),
            Population.readout_of("readout", 5)]
    projs = [Projection("c.k", "input", "c", rng.integers(-60, 60, (1, 2, 1, 3)) * 2, conv=geo),
             Projection("h.w", "c", "h", rng.integers(-70, 70, (2, 5, 16)) * 2),  # two delay taps
             Projection("h.bias", "bias", "h", np.full((1, 5, 1), 8), origin={"helper": "bias source"}),
             Projection("ro", "h", "readout", np.eye(5, dtype=np.int64)[None] * 2,
                        origin={"helper": "spike-count readout"})]
    if recurrent:
        w = np.zeros((2, 5, 5), np.int64)
        w[1] = rng.integers(-20, 20, (5, 5)) * 2
        projs.append(Projection("h.rec", "h", "h", w))
    return IntNetwork(8, 1.0, pops, projs, "readout")


def _ann_by_hand(net: IntNetwork, x: np.ndarray, passes: int) -> np.ndarray:
    """The non-spiking equivalent with explicit loops: ReLU(sum of delayed inputs + bias / 64)."""
    kern = net.projections[0].weights[0].astype(float)  # (2, 1, 3)
    w = net.projections[1].weights.astype(float)
    rec = next((p.weights.astype(float) for p in net.projections if p.name == "h.rec"), None)
    if passes == 1:
        w = w.sum(0, keepdims=True)  # a static frame: both delays see the same frame
    c_hist, h_hist = [], []
    for t in range(passes):
        frame = np.pad(x[:, t], ((0, 0), (1, 1)))  # (B, 10)
        c = np.zeros((x.shape[0], 2, 8))
        for o in range(2):
            for pos in range(8):
                c[:, o, pos] = frame[:, pos:pos + 3] @ kern[o, 0]
        c = np.maximum(c.reshape(len(x), 16) + net.population("c").bias / 64, 0)
        c_hist.append(c)
        h = 8.0 + sum(c_hist[t - d] @ w[d].T for d in range(w.shape[0]) if t - d >= 0)  # + the bias source's 8
        if rec is not None and t >= 1:
            h = h + h_hist[t - 1] @ rec[1].T
        h_hist.append(np.maximum(h, 0))
    return h_hist[-1]


@pytest.mark.parametrize("static, recurrent", [(True, False), (False, False), (False, True)])
def test_the_ann_equivalent_is_the_same_layers_with_relu_and_no_helpers(static, recurrent):
    # helpers: no readout of spike counts, and the bias source is the constant it stands for
    net = _net(recurrent)
    st = structure(net)
    assert st["recurrent"] is recurrent and st["neurons"] == 16 + 5 + 5  # no bias-source neuron
    passes = 1 if static and not recurrent else 6
    x = np.random.default_rng(1).integers(-100, 100, (3, 6, 8)).astype(float)
    if static:
        x[:] = x[:, :1]
    got = TorchEquivalent(net, spiking=False, passes=passes)(torch.as_tensor(x, dtype=torch.float32))
    assert got.shape == (3, 5)  # ends at "h": the readout only counts its spikes (a helper)
    want = _ann_by_hand(net, x, passes)
    assert want.max() > 0 and (want == 0).any()  # ReLU on both sides of zero
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-3)


def test_the_dense_snn_spikes_as_the_integer_executor_where_float_is_exact():
    # no decays (du 4095 clears the current, dv 0 keeps the voltage): integer and float agree exactly
    net = _net(du=4095, dv=0)
    net.projections = [p for p in net.projections if not p.helper]  # the executor runs what it is given
    net.populations = [p for p in net.populations if p.name != "bias"]
    net.populations[-1] = Population.readout_of("readout", 5)
    net.projections.append(Projection("ro", "h", "readout", np.eye(5, dtype=np.int64)[None] * 2))
    x = np.random.default_rng(2).integers(-100, 100, (4, 10, 8))
    r = execute(net, x)
    snn = TorchEquivalent(net, spiking=True, passes=10)
    hist = {}
    orig = snn._activate

    def keep(i, p, acc, state):
        out = orig(i, p, acc, state)
        hist.setdefault(p.name, []).append(out)
        return out
    snn._activate = keep
    snn(torch.as_tensor(x, dtype=torch.float32))
    for name in ("c", "h"):
        spikes = torch.stack(hist[name], 1).numpy()
        assert spikes.sum() > 0 and spikes.mean() < 1
        np.testing.assert_array_equal(spikes, r.spikes[name].numpy().astype(float))
    assert fx.DECAY_UNITY == 4096


def test_measure_times_and_reads_energy_through_the_meter():
    class Counter:  # an energy counter that advances 2 J per read: the measurement is the difference
        available, why, value = True, "test counter", 0.0

        def read_j(self):
            self.value += 2.0
            return self.value
    t = measure(torch.nn.Linear(4, 3), torch.ones(2, 4), "cpu", min_time_s=0.01, meter=Counter())
    assert t.runs >= 5 and t.batch == 2 and t.latency_min_s <= t.latency_s <= t.latency_max_s
    assert t.per_inference_s == pytest.approx(t.latency_s / 2) and t.energy_j == pytest.approx(2.0)


def test_baseline_measures_labels_its_energy_and_compares_the_tabled_profile(tmp_path):
    res = run_baseline(_net(), timesteps=6, static=True, batch=4, min_time_s=0.05, tdp_w=100.0,
                       out=tmp_path / "b.json")
    assert json.loads((tmp_path / "b.json").read_text())["device"] == "cpu"
    assert {(r["network"], r["batch"], r["passes"]) for r in res["measured"]} == {
        ("ann", 1, 1), ("ann", 4, 1), ("snn_dense", 1, 6), ("snn_dense", 4, 6)}
    for r in res["measured"]:
        assert r["latency_s"] > 0 and r["throughput_per_s"] == pytest.approx(r["batch"] / r["latency_s"])
        if "energy_j_per_inference" in r:  # a machine with a readable counter
            assert r["energy_basis"].startswith("measured")
        else:
            assert r["energy_basis"].startswith("UPPER BOUND") and "given (--tdp-w)" in r["energy_basis"]
            assert r["energy_bound_j_per_inference"] == pytest.approx(100.0 * r["per_inference_s"])
    tab = res["tabled"]
    assert tab["label"] == "published, not measured here"
    per_step = 2 * 8 * 3 - 2 * 2 + 2 * 5 * 16  # the conv (padding excluded), the dense layer's two taps: no helpers
    assert tab["ann"]["macs"] == per_step and tab["snn_dense"]["macs"] == per_step * 6
    ann1 = next(r for r in res["measured"] if r["network"] == "ann" and r["batch"] == 1)
    assert tab["ann"]["latency_ratio_to_measured"] == pytest.approx(tab["ann"]["latency_s"] / ann1["per_inference_s"])
    assert tab["ann"]["latency_ratio_to_fastest"] == pytest.approx(tab["ann"]["latency_s"] / ann1["latency_min_s"])
    assert res["load_average_1min"]["before"] is None or res["load_average_1min"]["before"] >= 0


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device")
def test_a_device_that_is_not_there_is_one_line_and_exit_2(tmp_path, capsys):
    out = tmp_path / "b.json"
    assert main(["baseline", "model.nir", "--timesteps", "4", "--device", "cuda", "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--device cuda" in err and "no CUDA device" in err
    assert not out.exists()
    for bad in ("tpu", "cuda:x"):
        assert main(["baseline", "model.nir", "--timesteps", "4", "--device", bad]) == 2
        assert f"--device {bad}: expected cpu, cuda or cuda:N" in capsys.readouterr().err


def test_baseline_command_takes_t_and_the_static_flag_from_a_traffic_file(tmp_path, capsys):
    from converters.nir.export import export_nir
    from lmu2neuro.core.guards import sha256_of
    from netgen import make_traffic

    net = _net()
    net.projections = [p for p in net.projections if p.source != "bias"]  # a file of the model's own layers
    net.populations = [p for p in net.populations if p.name != "bias"]
    export_nir(net, tmp_path / "m.nir")
    x = np.repeat(np.random.default_rng(3).integers(-50, 50, (2, 1, 8)), 5, axis=1)  # a static frame, 5 steps
    traffic = make_traffic(net, x, model_sha256=sha256_of(tmp_path / "m.nir"))
    traffic["layers"][0]["static"] = True
    (tmp_path / "t.json").write_text(json.dumps(traffic))
    out = tmp_path / "b.json"
    assert main(["baseline", str(tmp_path / "m.nir"), "--traffic", str(tmp_path / "t.json"), "--batch", "2",
                 "--min-time", "0.02", "--tdp-w", "65", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    res = json.loads(out.read_text())
    assert res["timesteps"] == 5 and res["static_input"] is True and res["ann_passes"] == 1
    assert "published, not measured here" in printed and "per call (median of" in printed
    assert main(["baseline", str(tmp_path / "m.nir"), "--traffic", str(tmp_path / "t.json"), "--static"]) == 2
    assert "--static: only with --timesteps" in capsys.readouterr().err
    assert main(["baseline", str(tmp_path / "m.nir"), "--timesteps", "3", "-o", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
