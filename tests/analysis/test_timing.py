"""The time model: per-core busy time by hand, the slowest core, conventional latency, calibrations."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lmu2neuro.analysis.counting import count_operations
from lmu2neuro.analysis.plan import plan_profile
from lmu2neuro.analysis.profiles import load_profile
from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core.intnet import IntNetwork, Population, Projection
from netgen import PILOTNET, make_traffic, needs_pilotnet, spiking_mlp

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def bench(name):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def two_layer(n_hid=5, n_out=3, n_in=4):
    pops = [Population("hid", n_hid, 4095, 0, 1, np.zeros(n_hid, np.int64)),
            Population("out", n_out, 4095, 0, fx.VTH_MAX, np.zeros(n_out, np.int64), readout=True)]
    projs = [Projection("in->hid", "input", "hid", np.full((1, n_hid, n_in), 2, np.int64)),
             Projection("hid->out", "hid", "out", np.full((1, n_out, n_hid), 2, np.int64))]
    return IntNetwork(n_in, 1.0, pops, projs, "out")


def test_step_time_by_hand_on_two_cores():
    net = two_layer()
    x = np.zeros((1, 3, 4), np.int64)
    x[0, 0, :] = 1  # binary input: 4 spikes at step 0
    traffic = make_traffic(net, x)
    traffic["layers"][0]["binary"] = True
    counts = count_operations(traffic, net)
    hid_spikes = np.asarray(traffic["layers"][1]["spikes_per_step"], float)
    assert hid_spikes.sum() > 0
    # an input of only 0 and 1 is spikes: its synaptic ops are ACs, as NeuroBench counts them
    assert counts.totals["effective_acs"] == 4 * 5 + hid_spikes.sum() * 3 and counts.totals["effective_macs"] == 0
    prof = load_profile("loihi1")
    plan = plan_profile(counts, net, traffic, prof)
    assert plan["mapping"].cores == 2 and plan["mapping"].tiles == 1
    ns = 1e-9
    steps = []
    for t in range(3):
        s_in = 4 if t == 0 else 0
        # core 0 (hid): 5 neurons; receives one message per input spike, 5 synapses each
        gen0 = 5 * 9.7 * ns + hid_spikes[t] * (30 * ns + 5.1 * ns)
        rec0 = s_in * 16 * ns + s_in * 5 * 3.8 * ns
        # core 1 (out): 3 neurons; one message per hid spike, 3 synapses each
        rec1 = hid_spikes[t] * (16 * ns + 3 * 3.8 * ns)
        steps.append(max(max(gen0, rec0), max(3 * 9.7 * ns, rec1)) + 0.6e-6)
    assert plan["time"].latency_s[0] == pytest.approx(sum(steps), rel=1e-9)
    assert plan["time"].latency_s[1] < plan["time"].latency_s[0] < plan["time"].latency_s[2]
    # energy: messages = input spikes x 1 core + hid spikes x 1 core, at 111 pJ
    msgs = 4 + hid_spikes.sum()
    assert plan["energy"].message_j[0] == pytest.approx(msgs * 111e-12)
    assert plan["power_w"]["total"]["estimate"] == pytest.approx(plan["energy"].total_j[0] / plan["time"].latency_s[0])


def test_a_badly_balanced_mapping_shows_as_the_slowest_core():
    # 3,000 hidden neurons spread over 3 cores; all their spikes converge on h2's 10 neurons, one core
    net = spiking_mlp(sizes=(6, 3000, 10, 4))
    x = np.random.default_rng(0).integers(0, 20, size=(2, 4, 6))
    traffic = make_traffic(net, x)
    counts = count_operations(traffic, net)
    t = plan_profile(counts, net, traffic, load_profile("loihi1"))["time"]
    assert t.slowest_core["layer"] == "h2"
    busy = {c["core"]: c["mean_busy_s"] for c in t.per_core}
    assert busy[t.slowest_core["core"]] > 10 * min(busy.values())


def test_conventional_latency_from_throughput_and_realtime_factor():
    net = spiking_mlp()
    x = np.random.default_rng(1).integers(0, 10, size=(2, 5, 6))
    traffic = make_traffic(net, x)
    counts = count_operations(traffic, net)
    cpu = load_profile("cpu")
    plan = plan_profile(counts, net, traffic, cpu, frame_period_s=1e-3)
    lat = counts.totals["dense"] / cpu.throughput.value
    assert plan["time"].latency_s[0] == pytest.approx(lat) and "estimate" in plan["time"].basis
    assert plan["energy"].static_chips_j[0] == pytest.approx(17.01 * lat)
    assert plan["realtime"]["factor"]["estimate"] == pytest.approx(lat / 5 / 1e-3)
    assert plan["realtime"]["keeps_up"]
    assert plan_profile(counts, net, traffic, load_profile("mac45nm"))["time"] is None


@needs_pilotnet
def test_loihi2_profile_is_the_pilotnet_fit():
    """The profile's numbers are the calibration benchmark's, on PilotNet LIF's recorded activity."""
    b = bench("loihi2_pilotnet_fit")
    f = b.fit(*b.pilotnet_traffic(PILOTNET))
    l1, l2 = load_profile("loihi1"), load_profile("loihi2")
    for group, key in (("energy", "energy_factor"), ("time", "time_factor")):
        for name in ("ac", "neuron_update", "spike_out"):
            q1, q2 = getattr(getattr(l1, group), name), getattr(getattr(l2, group), name)
            assert q2.value == pytest.approx(q1.value * f[key]["estimate"], rel=2e-3)
            assert q2.lo == pytest.approx(q1.value * f[key]["low"], rel=2e-3)
            assert q2.hi == pytest.approx(q1.value * f[key]["high"], rel=2e-3)
    assert (l2.static_power.value, l2.static_power.lo, l2.static_power.hi) == (0.232, 0.178, 0.309)
    assert f["mapping"]["cores"] == 74


def test_blouw_benchmark_matches_the_profile_calibration(tmp_path):
    assert bench("blouw_kws_check").main(["--out", str(tmp_path / "b.json")]) == 0
    r = json.loads((tmp_path / "b.json").read_text())
    a = r["nengo_loihi_placement"]
    # nengo-loihi's example: layer 1 on the host, so the chip sees its 256 neurons' spikes (0.1 per
    # step, 10 steps) through a dense 256 x 256 layer 2; the 29 outputs are weighted on the host
    assert a["effective_acs"] == pytest.approx(256 * 0.1 * 10 * 256)
    assert a["neuron_updates"] == 256 * 10 and a["cores"] == 1
    # layer 1 on chip too: 512 on/off sources at 0.25 spikes per step with one synapse each
    assert r["all_on_chip"]["effective_acs"] == pytest.approx(512 * 0.25 * 10 + 256 * 0.1 * 10 * 256)
    assert r["all_on_chip"]["cores"] == 2
    cal = {c.quantity: c for c in load_profile("loihi1").calibration if "Blouw" in c.measurement}
    # an order-of-magnitude check of the activity-dependent part (running - post-run idle: 46.6 uJ)
    assert r["activity_part_j"] == pytest.approx((0.1102 - 0.0964) / 296)
    assert cal["activity-dependent energy per inference"].ratio == pytest.approx(a["ratio_to_activity_part"], rel=2e-3)
    assert cal["activity-dependent energy per inference"].reference.value == pytest.approx(r["activity_part_j"],
                                                                                             rel=2e-3)  # SI: J
    assert a["order_of_magnitude_ok"] is (0.1 <= a["ratio_to_activity_part"] <= 10)
    assert cal["latency per inference"].ratio == pytest.approx(r["latency_ratio_placement_A"], rel=2e-3)
    conv = {c["profile"]: c for c in r["conventional"]}
    assert load_profile("cpu").calibration[0].ratio == pytest.approx(conv["cpu"]["ratio_to_measured"], rel=2e-3)


def test_sanafe_crosscheck_on_a_shared_network():
    pytest.importorskip("sanafe", reason="SANA-FE is GPL-3.0, so lmu2neuro never installs it; this development-only cross-check runs where `pip install sanafe` was done by hand")
    # in a process of its own: SANA-FE's Loihi architecture takes about 2 GB, which would hide the
    # memory checks of other tests that share this process
    code = ("import importlib.util, json, sys, sanafe\n"
            f"spec = importlib.util.spec_from_file_location('b', {str(BENCH / 'sanafe_crosscheck.py')!r})\n"
            "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
            "r = mod.run_case(sanafe, 'small', (32, 64, 16), 0.5, 0.2, 40, 10)\n"
            "print(json.dumps({k: v for k, v in r.items() if 'ratio' in k}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert abs(r["energy_ratio"] - 1) <= 0.15, r
    assert abs(r["time_ratio_detailed"] - 1) <= 0.25, r
