"""Issue 14: the loihi2 profile on a PilotNet-size network against lava-dl's Loihi 2 measurement.

Measured (lava-dl PilotNet LIF benchmark notebook, tutorials/lava/lib/dl/netx/pilotnet_snn/
benchmark.ipynb; Loihi 2, 16 steps per inference, 74 cores on one chip): about 151 us per step
(within 1 % across its published runs), 0.56-1.09 mJ dynamic and 0.99-1.82 mJ total per inference.

Modelled here: benchmarks/conv_networks.py's ``pilotnet_lavadl`` (the notebook's own layer shapes:
200x66x3 input, five 3x3 convolutions, dense 100, 50, 10, 1; random kernels, each layer's threshold
set for a target firing rate), run in the reference simulator for 16 steps on a static frame;
activity is what that run measures, per neuron. Two inputs: the frame as binary spikes at the
layer rate (closest to the notebook, whose input layer is neurons biased by the frame, spiking),
and the static graded frame sent by the host every step (MACs on every pixel). Then the project's own plan (counting, chip
mapping with shared convolution weights, per-core time model, energy) on the loihi2 profile.
The rate is swept (0.05, 0.1, 0.2) because the notebook publishes no activity.

Superseded by benchmarks/loihi2_pilotnet_fit.py, which runs lava-dl's own file (unchanged, its
spikes identical to Loihi 2's) and calibrates the loihi2 profile on that activity; this rebuild with
random kernels stays as a sensitivity study (how activity moves the estimate).

The mapping: the loihi2 profile's chip.neurons_per_core (3,168, the most the Loihi 2 compiler put
on one core in this notebook's printout; range up to Intel's 8,192 = 1 M / 128). Each run prints
our cores and most neurons per core, layer by layer, beside the compiler's printout (COMPILER),
and the step time again with the mapping at the range's high end (8,192 per core), side by side
in the same run, to show how much the per-core neuron limit alone moves the latency.

Also measured (issue 13's PilotNet-size target, reference simulator): wall time, steps per
second and this process's peak memory; one run on a shared 2-core machine.

Usage: python benchmarks/pilotnet_loihi2.py [--out runs/bench/pilotnet_loihi2.json] [--rates 0.05 0.1 0.2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from conv_networks import pilotnet_lavadl  # noqa: E402
from lmu2neuro.analysis.counting import count_operations  # noqa: E402
from lmu2neuro.analysis.plan import plan_profile  # noqa: E402
from lmu2neuro.analysis.profiles import load_profile  # noqa: E402
from lmu2neuro.analysis.traffic import build_traffic  # noqa: E402
from lmu2neuro.core import atomic  # noqa: E402
from lmu2neuro.pipeline.simulate import run_reference  # noqa: E402

STEPS = 16
MEASURED = {"step_time_s": {"value": 151e-6, "low": 151e-6 * 0.99, "high": 151e-6 * 1.01},
            "dynamic_j": {"value": 1.09e-3, "low": 0.56e-3, "high": 1.09e-3},
            "total_j": {"value": 1.66e-3, "low": 0.99e-3, "high": 1.82e-3},
            "cores": 74,
            "source": "lava-dl PilotNet LIF benchmark notebook on Loihi 2 (tutorials/lava/lib/dl/netx/pilotnet_snn/"
                      "benchmark.ipynb): 151 us per step, 0.56-1.09 mJ dynamic, 0.99-1.82 mJ total per inference, "
                      "16 steps, 74 cores"}
# The Loihi 2 compiler's per-core distribution printed in the same notebook (layer: cores, most
# neurons on one core). The input layer is neurons there (13 cores), the host's input here.
COMPILER = {"input": (13, 3168), "conv1": (25, 3072), "conv2": (13, 2160), "conv3": (3, 2688), "conv4": (3, 2048),
            "conv5": (2, 2048), "dense1": (12, 8), "dense2": (1, 50), "dense3": (1, 10), "out": (1, 1)}
REASONS = [
    "activity: the notebook publishes none; here random kernels with thresholds set for a uniform target rate, "
    "so the per-layer activity of the trained network is unknown (the sweep shows how much it matters)",
    "the notebook's input layer is a neuron population on 13 cores, fed the frame as bias and spiking; here the "
    "frame is a graded input injected by the host every step (no input cores, no input neuron updates)",
    "the notebook's compiler maps the network onto 74 cores (61 without the input layer); our mapping cuts the "
    "convolutions into the same slabs (the profile's chip.partition) and the dense layers in the dense format, but "
    "this network has no input layer of neurons (the host sends the frame)",
    "the loihi2 per-event numbers are Loihi 1's proportions scaled by one factor each for energy and time, "
    "calibrated on the real PilotNet LIF file's recorded activity and our 74-core mapping of it "
    "(benchmarks/loihi2_pilotnet_fit.py; not an independent check)",
    "lava-dl's network resets every 16 steps with an offset of 3 and runs 10,000 steps for its power figure; "
    "the measured energy includes whatever the chip does besides the neurons and synapses (I/O, management cores)",
]


def _rng(d):
    return {"estimate": d[0], "low": d[1], "high": d[2]}


def per_layer_cores(mp) -> dict:
    """layer -> (cores, most neurons on one core) of our mapping."""
    return {layer: (len(set(cores)), int(np.bincount(np.asarray(cores)).max()))
            for layer, cores in mp.core_of.items()}


def with_neurons_per_core(profile, n: float):
    """The same profile with another per-core neuron limit (a sensitivity run, not a profile)."""
    q = profile.chip.neurons_per_core.model_copy(update={"value": n})
    return profile.model_copy(update={"chip": profile.chip.model_copy(update={"neurons_per_core": q})})


def one_rate(rate: float, samples: int, spiking_input: bool) -> dict:
    net, x = pilotnet_lavadl(steps=STEPS, batch=samples, rate=rate, spiking_input=spiking_input)
    run_reference(net, x[:1])  # warm-up: the timed run below is the steady state
    t0 = time.perf_counter()
    m = run_reference(net, x)
    sim_s = time.perf_counter() - t0
    traffic = build_traffic(net, x, m, model="pilotnet_lavadl (benchmarks/conv_networks.py)", model_sha256="0" * 64,
                            backend="reference")
    counts = count_operations(traffic, net)
    profile = load_profile("loihi2")
    t1 = time.perf_counter()
    plan = plan_profile(counts, net, traffic, profile)
    plan_s = time.perf_counter() - t1
    tm, en, mp = plan["time"], plan["energy"], plan["mapping"]
    n_hi = profile.chip.neurons_per_core.hi
    plan_hi = plan_profile(counts, net, traffic, with_neurons_per_core(profile, n_hi))
    rates = {lay.name: lay.firing_rate for lay in counts.layers if lay.kind != "readout"}
    est = {"step_time_s": _rng(tm.step_time_s), "dynamic_j": _rng(en.dynamic_j),
           "total_j": _rng(en.total_j) if en.total_j is not None else None,
           "static_basis": en.static_basis, "cores": mp.cores, "chips": mp.chips, "tiles": mp.tiles,
           "slowest_core": tm.slowest_core,
           "cores_by_layer": {r.layer: r.cores for r in mp.layers},
           "neurons_per_core_limit": profile.chip.neurons_per_core.value,
           "layers_vs_compiler": {k: {"cores": v[0], "max_neurons_per_core": v[1],
                                      "compiler_cores": COMPILER.get(k, (None, None))[0],
                                      "compiler_max_neurons_per_core": COMPILER.get(k, (None, None))[1]}
                                  for k, v in per_layer_cores(mp).items()},
           "at_neurons_per_core_high": {"neurons_per_core": n_hi, "cores": plan_hi["mapping"].cores,
                                        "step_time_s": _rng(plan_hi["time"].step_time_s),
                                        "dynamic_j": _rng(plan_hi["energy"].dynamic_j),
                                        "slowest_core": plan_hi["time"].slowest_core},
           "synaptic_bytes_shared_by_layer": {r.layer: r.synaptic_bytes_shared for r in mp.layers},
           "synaptic_bytes_per_synapse_by_layer": {r.layer: r.synaptic_bytes_per_synapse for r in mp.layers}}
    ratio = {k: est[k]["estimate"] / MEASURED[k]["value"] for k in ("step_time_s", "dynamic_j")}
    est["at_neurons_per_core_high"]["step_ratio"] = (est["at_neurons_per_core_high"]["step_time_s"]["estimate"]
                                                     / MEASURED["step_time_s"]["value"])
    if est["total_j"] is not None:
        ratio["total_j"] = est["total_j"]["estimate"] / MEASURED["total_j"]["value"]
    inside = {k: MEASURED[k]["low"] <= est[k]["estimate"] <= MEASURED[k]["high"] for k in ratio}
    return {"input": "binary spikes at the rate" if spiking_input else "graded static frame (host, every step)",
            "target_rate": rate, "measured_rates": rates, "totals": counts.totals, "estimate": est, "ratio": ratio,
            "estimate_inside_measured_range": inside,
            "reference": {"samples": samples, "steps": STEPS, "wall_s": sim_s,
                          "steps_per_s": samples * STEPS / sim_s, "plan_s": plan_s}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "runs/bench/pilotnet_loihi2.json"))
    ap.add_argument("--rates", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    ap.add_argument("--samples", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    runs = [one_rate(r, args.samples, spiking) for spiking in (True, False) for r in args.rates]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {"benchmark": "loihi2 profile on PilotNet LIF (lava-dl's shapes) vs lava-dl's Loihi 2 measurement",
              "measured": MEASURED, "runs": runs, "reasons": REASONS, "peak_rss_mb_process": peak_mb,
              "torch_threads": torch.get_num_threads(),
              "note": "one run on a shared machine; the reference figures are wall clock"}
    atomic.write_text(args.out, json.dumps(result, indent=2, default=float))
    print(f"measured: {MEASURED['source']}")
    print(f"{'rate':>5} {'measured rates':>18} {'cores':>5} {'step us':>22} {'dynamic mJ':>22} {'total mJ':>22} "
          f"{'ratio step/dyn/total':>22}")
    for r in runs:
        e = r["estimate"]
        rates = list(r["measured_rates"].values())

        def fmt(d, k):
            return "n/a" if d is None else f"{d['estimate'] * k:.3g} [{d['low'] * k:.3g}-{d['high'] * k:.3g}]"
        if r is runs[0] or r["input"] != runs[runs.index(r) - 1]["input"]:
            print(f"input: {r['input']}")
        print(f"{r['target_rate']:>5} {min(rates):.3f}-{max(rates):.3f}{'':>7} {e['cores']:>5} "
              f"{fmt(e['step_time_s'], 1e6):>22} {fmt(e['dynamic_j'], 1e3):>22} {fmt(e['total_j'], 1e3):>22} "
              + "/".join(f"{v:.2f}" for v in r["ratio"].values()))
        print(f"      reference: {r['reference']['samples']} samples x {STEPS} steps in {r['reference']['wall_s']:.1f} s "
              f"({r['reference']['steps_per_s']:.1f} sample-steps/s); plan {r['reference']['plan_s']:.1f} s; "
              f"slowest core: {e['slowest_core']['layer'] if e['slowest_core'] else None}")
        hi = e["at_neurons_per_core_high"]
        print(f"      at {hi['neurons_per_core']:.0f} neurons per core (the range's high end): {hi['cores']} cores, "
              f"step {fmt(hi['step_time_s'], 1e6)} us (ratio {hi['step_ratio']:.2f}), slowest core: "
              f"{hi['slowest_core']['layer'] if hi['slowest_core'] else None}")
    print(f"cores and most neurons per core by layer, ours ({runs[0]['estimate']['neurons_per_core_limit']:.0f} per core)"
          " vs the Loihi 2 compiler's printout:")
    for k, v in runs[0]["estimate"]["layers_vs_compiler"].items():
        print(f"  {k:>7}: {v['cores']:>3} cores, {v['max_neurons_per_core']:>5} max | compiler {v['compiler_cores']} "
              f"cores, {v['compiler_max_neurons_per_core']} max")
    print(f"  compiler input layer (host-injected here): {COMPILER['input'][0]} cores, {COMPILER['input'][1]} max; "
          f"compiler total {MEASURED['cores']} cores")
    print(f"peak memory of this process: {peak_mb:.0f} MB")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
