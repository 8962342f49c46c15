"""Calibrate the loihi2 profile on lava-dl's PilotNet LIF with its measured activity (a calibration on
one network: exact there by construction, untested elsewhere).

Intel publishes no per-operation energy or time for Loihi 2. The one public measurement with a
known network is lava-dl's PilotNet LIF benchmark notebook (tutorials/lava/lib/dl/netx/
pilotnet_snn/benchmark.ipynb; Loihi 2, 16 steps per inference, 74 cores on one chip), published
three times (../shared/data/lava_dl_pilotnet_lif/README.md):

    run   step      dynamic per inference   static power   total per inference
    1     150.4 us  0.562 mJ                0.178 W        0.990 mJ
    2     151.1 us  1.071 mJ                0.309 W        1.818 mJ
    3     152.8 us  1.094 mJ                0.232 W        1.661 mJ

The fit (every assumption stated):
- the network is the notebook's own file (network.net), unchanged, and its activity is what our
  reference simulator records for it on the recorded image (image.npy as the input neurons' bias,
  16 steps from zero state): the same spikes as Loihi 2 in every layer (tests/converters/netx/
  test_netx_bias_input.py). The notebook streams another frame (dataset frame 100); its activity
  is not published, so this image's stands for it;
- the mapping is ours (analysis/chip_mapping.py with the loihi2 profile's partition), which
  reproduces the compiler's printout: 74 cores, 13 / 25 / 13 / 3 / 3 / 2 / 12 / 1 / 1 / 1;
- Loihi 2's per-event costs are taken in Loihi 1's proportions (the loihi1 profile's estimates,
  fitted to Loihi 1 silicon by SANA-FE) and scaled by one factor for energy and one for time
  (per-event times and the barrier table alike), so that the project's own energy and time
  models (analysis/energy.py, analysis/timing.py) reproduce the measurement: k_E = measured
  dynamic energy / modelled with Loihi 1's numbers, k_T = measured step / modelled;
- the estimate is each quantity's median over the three runs (151.1 us, 1.071 mJ, 0.232 W), the
  range its least and most (150.4-152.8 us, 0.562-1.094 mJ, 0.178-0.309 W); static power is the
  notebook's own figure.

Usage: python benchmarks/loihi2_pilotnet_fit.py [--out runs/bench/loihi2_pilotnet_fit.json]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from converters.netx.read import read_netx  # noqa: E402
from lmu2neuro.analysis.counting import count_operations  # noqa: E402
from lmu2neuro.analysis.plan import plan_profile  # noqa: E402
from lmu2neuro.analysis.profiles import load_profile  # noqa: E402
from lmu2neuro.analysis.traffic import build_traffic  # noqa: E402
from lmu2neuro.core import atomic  # noqa: E402
from lmu2neuro.core.guards import sha256_of  # noqa: E402
from lmu2neuro.pipeline.simulate import run_reference  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "lava_dl_pilotnet_lif"
SOURCE = ("lava-dl PilotNet LIF benchmark notebook on Loihi 2 (tutorials/lava/lib/dl/netx/pilotnet_snn/benchmark.ipynb), "
          "three published runs: 150.4 / 151.1 / 152.8 us per step, 0.562 / 1.071 / 1.094 mJ dynamic per inference, "
          "0.178 / 0.309 / 0.232 W static, 16 steps, 74 cores")
STEPS = 16
RUNS = {"step_time_s": [150.4e-6, 151.1e-6, 152.8e-6], "dynamic_j": [0.562e-3, 1.071e-3, 1.094e-3],
        "static_w": [0.178, 0.309, 0.232]}
COMPILER = {"layer0": 13, "layer1": 25, "layer2": 13, "layer3": 3, "layer4": 3, "layer5": 2, "layer7": 12,
            "layer8": 1, "layer9": 1, "layer10": 1}


def ends(values) -> dict:
    """The published runs as estimate (median), low and high."""
    return {"estimate": float(np.median(values)), "low": float(min(values)), "high": float(max(values))}


def pilotnet_traffic(data: Path = DATA):
    """(network, traffic) of PilotNet LIF on the recorded image, 16 steps, reference simulator."""
    path = data / "network.net"
    net = read_netx(path)
    image = np.load(data / "image.npy")  # (W, H, C): the input neurons' bias mantissa
    x = np.repeat(image.transpose(2, 1, 0).reshape(1, 1, -1), STEPS, axis=1).astype(np.int64)
    m = run_reference(net, x)
    return net, build_traffic(net, x, m, model=str(path), model_sha256=sha256_of(path), backend="reference")


def with_loihi1_events(profile):
    """The loihi2 profile (its chip, its mapping) with Loihi 1's per-event energies, times and barrier."""
    l1 = load_profile("loihi1")
    return profile.model_copy(update={"energy": l1.energy, "time": l1.time, "barrier_sync": l1.barrier_sync})


def fit(net, traffic) -> dict:
    counts = count_operations(traffic, net, "pilotnet")
    plan = plan_profile(counts, net, traffic, with_loihi1_events(load_profile("loihi2")))
    dyn, step = plan["energy"].dynamic_j[0], plan["time"].step_time_s[0]
    measured = {k: ends(v) for k, v in RUNS.items()}
    k_e = {end: measured["dynamic_j"][end] / dyn for end in ("estimate", "low", "high")}
    k_t = {end: measured["step_time_s"][end] / step for end in ("estimate", "low", "high")}
    mp = plan["mapping"]
    rates = {lay.name: lay.firing_rate for lay in counts.layers if lay.kind != "readout"}
    return {"modelled_with_loihi1_events": {"dynamic_j": dyn, "step_time_s": step,
                                            "slowest_core": plan["time"].slowest_core},
            "energy_factor": k_e, "time_factor": k_t, "measured": measured,
            "mapping": {"cores": mp.cores, "tiles": mp.tiles, "lower_bound_cores": mp.lower_bound_cores,
                        "cores_by_layer": {r.layer: r.cores for r in mp.layers}, "compiler_cores": COMPILER},
            "firing_rates": rates, "synaptic_ops": float(counts.totals.get("synaptic_ops", 0.0))
            if isinstance(counts.totals, dict) else None}


def derived_numbers(f: dict) -> dict:
    """Each Loihi 1 per-event value times the fitted factor (estimate, low, high), SI units."""
    l1 = load_profile("loihi1")
    out = {}
    for group, k in (("energy", f["energy_factor"]), ("time", f["time_factor"])):
        g = getattr(l1, group)
        for name in type(g).model_fields:
            q = getattr(g, name)
            if q is not None:
                out[f"{group}.{name}"] = {end: q.value * k[end] for end in ("estimate", "low", "high")}
    table = l1.barrier_sync
    out["barrier_sync"] = {end: {n: v * f["time_factor"][end] for n, v in table.by_tiles.items()}
                           for end in ("estimate", "low", "high")}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="runs/bench/loihi2_pilotnet_fit.json", help="JSON output path")
    ap.add_argument("--data", default=str(DATA), help="the lava_dl_pilotnet_lif folder")
    args = ap.parse_args(argv)
    net, traffic = pilotnet_traffic(Path(args.data))
    f = fit(net, traffic)
    result = {"benchmark": "loihi2 profile calibrated on lava-dl's PilotNet LIF with its measured activity",
              "measured_source": SOURCE, "fit": f, "derived_loihi2_numbers_si": derived_numbers(f),
              "note": "a calibration on one network: the loihi2 profile reproduces this measurement by construction",
              "assumptions": ["the recorded image's activity stands for the benchmark's streamed frame",
                              "Loihi 1's per-event proportions (loihi1 profile, SANA-FE fit) scaled by one factor each "
                              "for energy and time", "our mapping (74 cores, the compiler's per-layer counts)"]}
    atomic.write_json(args.out, result)
    mod = f["modelled_with_loihi1_events"]
    print(f"PilotNet LIF, measured activity (rates {', '.join(f'{k} {v:.3f}' for k, v in f['firing_rates'].items())})")
    print(f"  mapping: {f['mapping']['cores']} cores {f['mapping']['cores_by_layer']} (compiler: 74)")
    print(f"  with loihi1 per-event numbers: dynamic {mod['dynamic_j'] * 1e3:.3f} mJ, step {mod['step_time_s'] * 1e6:.1f} us "
          f"(slowest: {mod['slowest_core']['layer']})")
    for k in ("energy_factor", "time_factor"):
        print(f"  {k}: " + ", ".join(f"{end} {v:.4g}" for end, v in f[k].items()))
    for k, v in result["derived_loihi2_numbers_si"].items():
        if k != "barrier_sync":
            print(f"  loihi2 {k}: " + ", ".join(f"{end} {x:.4g}" for end, x in v.items()))
    print("  loihi2 barrier_sync (s): " + "; ".join(
        f"{end} " + ", ".join(f"{n}: {x:.4g}" for n, x in t.items())
        for end, t in result["derived_loihi2_numbers_si"]["barrier_sync"].items()))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
