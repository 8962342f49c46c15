"""Energy per inference: the arithmetic of profile x counts, static power, the dense baseline."""

import numpy as np
import pytest

from lmu2neuro.analysis.counting import count_operations
from lmu2neuro.analysis.energy import dense_baseline, estimate_energy
from lmu2neuro.analysis.profiles import load_profile
from test_counting import make_traffic, spiking_mlp


@pytest.fixture(scope="module")
def counts():
    net = spiking_mlp()
    rng = np.random.default_rng(3)
    x = rng.integers(-3, 12, size=(4, 6, 6))
    x[rng.random(x.shape) < 0.5] = 0
    return count_operations(make_traffic(net, x), net)


def test_loihi1_dynamic_energy_from_published_per_op_energies(counts):
    e = estimate_energy(counts, load_profile("loihi1"))
    t = counts.totals
    expect = (t["effective_acs"] * 23.6e-12 + t["effective_macs"] * 94.4e-12
              + t["neuron_updates"] * 81e-12 + t["spikes"] * 1.7e-12)
    assert e.dynamic_j == pytest.approx(expect, rel=1e-12)
    assert e.static_j is None and e.total_j == e.dynamic_j
    assert any("static power" in x and "step time" in x for x in e.leaves_out)
    assert "Davies" in e.sources["energy.ac"] and "(assumed)" in e.sources["energy.mac"]
    # the streaming curve ends at the full-sequence energy
    assert e.dynamic_by_frame_j[-1] == pytest.approx(e.dynamic_j, rel=1e-9)
    assert all(a <= b for a, b in zip(e.dynamic_by_frame_j, e.dynamic_by_frame_j[1:]))


def test_static_energy_needs_a_step_time(counts):
    e = estimate_energy(counts, load_profile("loihi1"), step_time_s=1e-3, chips=2)
    assert e.static_j == pytest.approx(0.104 * 2 * 1e-3 * counts.timesteps)
    assert e.total_j == pytest.approx(e.dynamic_j + e.static_j)
    assert e.sources["step_time"] == "given by the user"


def test_conventional_processor_runs_every_connection(counts):
    cpu = estimate_energy(counts, load_profile("cpu"))
    t = counts.totals
    assert cpu.dynamic_j == pytest.approx((t["dense"] + t["neuron_updates"]) * 8.6e-9)
    assert not cpu.event_driven
    base = dense_baseline(counts, load_profile("mac45nm"))
    assert base["dynamic_j"] == pytest.approx(t["dense"] * 4.6e-12)
    assert any("activation" in x for x in base["leaves_out"])
    snn45 = estimate_energy(counts, load_profile("mac45nm"))
    assert snn45.dynamic_j == pytest.approx(t["effective_acs"] * 0.9e-12 + t["effective_macs"] * 4.6e-12)
    assert any("neuron updates" in x for x in snn45.leaves_out)


def test_blouw_benchmark_counts_by_hand(tmp_path):
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "blouw_kws_check.py"
    spec = importlib.util.spec_from_file_location("blouw_kws_check", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--out", str(tmp_path / "b.json"), "--rate", "0.1"]) == 0
    r = json.loads((tmp_path / "b.json").read_text())["whole_network_on_chip"]
    # 10 steps, 0.1 spikes per neuron per step: 256 spikes per hidden layer per inference
    assert r["effective_macs"] == 390 * 256 * 10
    assert r["effective_acs"] == pytest.approx(256 * 256 + 256 * 29)
    expect = (390 * 256 * 10 * 94.4e-12 + (256 * 256 + 256 * 29) * 23.6e-12
              + (256 + 256 + 29) * 10 * 81e-12 + 512 * 1.7e-12)
    assert r["dynamic_j"] == pytest.approx(expect)
    assert r["ratio_to_measured"] == pytest.approx(expect / 0.27e-3)
