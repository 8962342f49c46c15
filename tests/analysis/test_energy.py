"""Energy per inference: profile x counts with ranges, static power on its bases, the dense baseline."""

import numpy as np
import pytest

from lmu2neuro.analysis.counting import count_operations
from lmu2neuro.analysis.energy import dense_baseline, estimate_energy
from lmu2neuro.analysis.profiles import load_profile
from lmu2neuro.analysis.timing import fixed_time
from netgen import make_traffic, spiking_mlp


@pytest.fixture(scope="module")
def counts():
    net = spiking_mlp()
    rng = np.random.default_rng(3)
    x = rng.integers(-3, 12, size=(4, 6, 6))
    x[rng.random(x.shape) < 0.5] = 0
    return count_operations(make_traffic(net, x), net)


def test_loihi1_dynamic_energy_estimate_and_range_from_the_sources(counts):
    e = estimate_energy(counts, load_profile("loihi1"))
    t = counts.totals
    def at(ac, mac, nu, sp):
        return t["effective_acs"] * ac + t["effective_macs"] * mac + t["neuron_updates"] * nu + t["spikes"] * sp
    # estimate: SANA-FE's silicon fit; low: Davies 2018 pre-silicon; high: the larger of the two
    assert e.dynamic_j[0] == pytest.approx(at(35.5e-12, 142e-12, 72.8e-12, 69.3e-12), rel=1e-12)
    assert e.dynamic_j[1] == pytest.approx(at(23.6e-12, 94.4e-12, 52e-12, 1.7e-12), rel=1e-12)
    assert e.dynamic_j[2] == pytest.approx(at(35.5e-12, 248.5e-12, 81e-12, 69.3e-12), rel=1e-12)
    assert e.static_chips_j is None and e.total_j is None and e.label == "dynamic only"
    assert any("static power" in x and "latency" in x for x in e.leaves_out)
    assert any("messages between cores" in x for x in e.leaves_out)
    assert "Davies" in e.sources["energy.ac"]["low"] and "SANA-FE" in e.sources["energy.ac"]["value"]
    assert "(assumed)" in e.sources["energy.mac"]["value"]
    assert e.dynamic_by_frame_j[-1] == pytest.approx(e.dynamic_j[0], rel=1e-9)
    assert all(a <= b for a, b in zip(e.dynamic_by_frame_j, e.dynamic_by_frame_j[1:]))


def test_static_energy_on_both_bases_and_in_real_time(counts):
    prof = load_profile("loihi1")
    time = fixed_time(prof, counts.timesteps, 1e-3, "given")
    e = estimate_energy(counts, prof, time=time, chips=2, cores=3, frame_period_s=0.01)
    lat = counts.timesteps * 1e-3
    assert e.static_chips_j == pytest.approx((0.104 * 2 * lat, 0.029 * 2 * lat, 0.104 * 2 * lat))
    assert e.static_pro_rata_j[0] == pytest.approx(0.104 * 3 / 128 * lat)
    assert e.static_realtime_j[0] == pytest.approx(0.104 * 2 * counts.timesteps * 0.01)
    assert e.total_j[0] == pytest.approx(e.dynamic_j[0] + e.static_chips_j[0])
    assert e.label.startswith("dynamic + static (2 chip(s) occupied")


def test_conventional_processor_runs_every_connection_and_floor_is_labelled(counts):
    cpu = estimate_energy(counts, load_profile("cpu"))
    t = counts.totals
    assert cpu.dynamic_j[0] == pytest.approx((t["dense"] + t["neuron_updates"]) * 8.6e-9)
    assert not cpu.event_driven
    # the per-layer table charges the dense MACs it shows
    for row, lay in zip(cpu.layers, counts.layers):
        assert row.op_kind == "dense MACs" and row.ops == lay.dense_macs
        assert row.mac_j == pytest.approx(lay.dense_macs * 8.6e-9)
    base = dense_baseline(counts, load_profile("mac45nm"))
    assert base["dynamic_j"] == pytest.approx(t["dense"] * 4.6e-12) and base["floor"]
    snn45 = estimate_energy(counts, load_profile("mac45nm"))
    assert snn45.dynamic_j[0] == pytest.approx(t["effective_acs"] * 0.9e-12 + t["effective_macs"] * 4.6e-12)
    assert snn45.label.startswith("compute-only floor")
