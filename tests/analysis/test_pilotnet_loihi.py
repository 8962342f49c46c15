"""lava-dl's PilotNet LIF (the shared file, unchanged) on the Loihi profiles, with the activity our
simulator records for it (identical to Loihi 2's spikes: tests/converters/netx/test_netx_bias_input.py):

- Loihi 2 mapped as its compiler maps (slabs of full height and all channels; dense format):
  the compiler's printout, 74 cores, per layer 13 / 25 / 13 / 3 / 3 / 2 / 12 / 1 / 1 / 1;
- the loihi2 profile, calibrated on this measurement (benchmarks/loihi2_pilotnet_fit.py), gives it
  back: a regression check of the calibration, not an independent one;
- Loihi 1: every per-core limit kept, cores against the lower bound those limits give;
- per-core loads feed the time model: a worse-balanced mapping of the same traffic is slower."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from lmu2neuro.analysis.counting import count_operations
from lmu2neuro.analysis.plan import plan_profile
from lmu2neuro.analysis.profiles import load_profile

from netgen import PILOTNET, needs_pilotnet

ROOT = Path(__file__).resolve().parents[2]

# the Loihi 2 compiler's printout (../shared/data/lava_dl_pilotnet_lif/README.md), by layer
COMPILER = [13, 25, 13, 3, 3, 2, 12, 1, 1, 1]
MEASURED = {"step_us": (150.4, 152.8), "dynamic_mj": (0.562, 1.094), "total_mj": (0.99, 1.82)}

pytestmark = needs_pilotnet


@pytest.fixture(scope="module")
def pilotnet():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from loihi2_pilotnet_fit import pilotnet_traffic

    net, traffic = pilotnet_traffic(PILOTNET)
    return net, traffic, count_operations(traffic, net, "pilotnet")


def test_loihi2_maps_as_the_compiler(pilotnet):
    net, traffic, counts = pilotnet
    plan = plan_profile(counts, net, traffic, load_profile("loihi2"))
    mp = plan["mapping"]
    assert [r.cores for r in mp.layers] == COMPILER and mp.cores == 74 and not mp.violations
    assert [r.partition for r in mp.layers[:6]] == ["slabs"] * 6
    # every slab is full height and all channels: a core's neurons are whole columns of the frame
    for pop in net.populations[:6]:
        c, h, w = pop.shape
        cores = np.asarray(mp.core_of[pop.name]).reshape(c, h, w)
        assert (cores == cores[:1, :1, :]).all(), pop.name
        widths = np.bincount(cores[0, 0] - cores.min())
        assert set(widths[:-1].tolist()) <= {1, 2, 4, 8, 16, 32} and len(set(widths[:-1].tolist())) <= 1
    assert all(r.cores >= r.lower_bound_cores for r in mp.layers)


def test_loihi2_calibration_gives_the_measurement_back(pilotnet):
    net, traffic, counts = pilotnet
    plan = plan_profile(counts, net, traffic, load_profile("loihi2"))
    step_us = plan["time"].step_time_s[0] * 1e6
    dynamic_mj, total_mj = plan["energy"].dynamic_j[0] * 1e3, plan["energy"].total_j[0] * 1e3
    assert abs(step_us / 151.0 - 1) < 0.10 and MEASURED["step_us"][0] <= step_us <= MEASURED["step_us"][1]
    assert MEASURED["dynamic_mj"][0] <= dynamic_mj <= MEASURED["dynamic_mj"][1]
    assert MEASURED["total_mj"][0] <= total_mj <= MEASURED["total_mj"][1]
    # the low and high ends are the runs with the least and most dynamic energy
    lo, hi = plan["energy"].dynamic_j[1] * 1e3, plan["energy"].dynamic_j[2] * 1e3
    assert lo == pytest.approx(0.562, rel=2e-3) and hi == pytest.approx(1.094, rel=2e-3)


def test_loihi1_partition_keeps_every_limit(pilotnet):
    net, traffic, counts = pilotnet
    mp = plan_profile(counts, net, traffic, load_profile("loihi1"))["mapping"]
    assert not mp.violations
    assert mp.lower_bound_cores <= mp.cores <= 1.5 * mp.lower_bound_cores
    limits = load_profile("loihi1").chip
    for r in mp.layers:
        assert r.max_core_fan_in_axons <= limits.fan_in_axons_per_core.value, r.layer
        assert r.max_core_fan_out_axons <= limits.fan_out_axons_per_core.value, r.layer
        assert r.max_core_synaptic_bytes <= limits.synaptic_memory_per_core.value, r.layer
        assert max(np.bincount(mp.core_of[r.layer])) <= limits.neurons_per_core.value


def test_a_worse_balanced_mapping_is_slower(pilotnet):
    """The same traffic packed in order (every core filled to 3,168 neurons, conv5's 2,560 on one
    core) against the compiler's slabs: the time model sees the busier cores."""
    net, traffic, counts = pilotnet
    prof = load_profile("loihi2")
    flat = prof.model_copy(update={"chip": prof.chip.model_copy(update={"partition": None})})
    slabs, packed = (plan_profile(counts, net, traffic, p) for p in (prof, flat))
    assert packed["mapping"].cores < slabs["mapping"].cores
    assert packed["time"].step_time_s[0] > 1.3 * slabs["time"].step_time_s[0]
    busiest = max(packed["time"].per_core, key=lambda c: c["mean_busy_s"])
    assert busiest["layer"] == packed["time"].slowest_core["layer"]


def test_simulate_and_report_run_on_pilotnet(tmp_path, capsys):
    """The CLI end to end on the shared file: simulate (bias mode) writes the traffic, report reads it."""
    import json

    from lmu2neuro.cli import main

    image = np.load(PILOTNET / "image.npy").transpose(2, 1, 0)
    np.save(tmp_path / "bias.npy", np.repeat(image[None, None], 16, axis=1))
    traffic = tmp_path / "traffic.json"
    assert main(["simulate", str(PILOTNET / "network.net"), "--input", str(tmp_path / "bias.npy"), "--input-mode",
                 "bias", "--backend", "reference", "-o", str(traffic)]) == 0
    assert main(["report", str(traffic), "--profile", "loihi2", "-o", str(tmp_path / "rep")]) == 0
    out = capsys.readouterr().out
    assert "74 cores on 1 chip(s) (lower bound 66)" in out
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    (l2,) = rep["profiles"]
    assert l2["cores"] == 74 and 150e-6 < l2["time"]["step_time_s"][0] < 153e-6
