"""Cost Blouw et al. 2019's keyword spotter (390-256-256-29) on the loihi1 profile and compare.

Blouw, Choo, Hunsberger, Eliasmith, "Benchmarking keyword spotting efficiency on neuromorphic
hardware" (arXiv 1812.01739, 2019), Table 1, Loihi: idle 0.029 W, running 0.110 W, dynamic
0.081 W, 296 inferences/s, 0.00027 J dynamic per inference. So the measured figure is dynamic
power x time per inference (0.081 W / 296 per s = 0.27 mJ): whatever draws power above idle for
as long as an inference takes counts, busy or waiting. This script runs the project's own
counting, chip mapping, time and energy model (`lmu2neuro.analysis.plan`) on what the chip runs,
at stated activities, and prints estimate, range and ratio to the measurement.

What the chip runs (sourced): nengo-loihi's public version of this network (docs/examples/
keyword_spotting.ipynb: 390 inputs, 256 neurons, 29 outputs, LIF tau_rc 0.02 / tau_ref 0.001,
dt = 1 ms, outputs read over windows of 10 steps, precompute=True) sets
`model.config[layer_1].on_chip = False`. Built by nengo-loihi's splitter (nengo_loihi/splitter.py,
`split_host_neurons_to_chip`: "send spikes over and do the rest of the connection on-chip") and
probe builder (nengo_loihi/builder/probe.py, `signal_probe`: a probe of neurons with a transform
is applied on the host to the probed spikes), that is:
- host: the 390 features -> layer 1 (256 LIF), and layer 1's spikes sent to the chip every step
  (a spike input of 256 axons, no on/off encoding);
- chip: 256 input axons -> layer 2 (256 LIF), dense 256 x 256 on chip: one core;
- host: layer 2's spikes probed every step, the 29 x 256 output weights and bias applied there.
Placement "example" below is that build. Two others, for scale: "all_on_chip", layer 1 on chip
as nengo-loihi would put it (`split_host_to_chip`: the host applies the 256 x 390 transform and
sends the 256-dim result as 512 on/off spike sources, one synapse each onto layer 1); and "graded",
every feature sent graded and both layers plus a 29-neuron readout on chip (Loihi 1 has no graded
spikes: bit-serial, the profile's energy.mac), an upper bound on chip work.

Assumptions (not published for that network):
- 10 steps per inference: the example reads the output over windows of 10 steps at dt = 1 ms.
- a mean firing rate (`--rate`, default 0.1 spikes per neuron per step = 100 Hz at 1 ms) in both
  layers (layer 1's spikes are the chip's input), swept over 0.02-0.25; dense weights; in
  "all_on_chip" `--input-rate` spikes per on/off pair per step (default 0.5).

What the model leaves out, and the evidence that it dominates: with these sourced placements the
chip's neural work is a few uJ per inference and a few tens of us per step, while the
measurement is 270 uJ over 3.38 ms (338 us per step at 10 steps). The measured dynamic power
(81 mW) is drawn for the whole inference, and the chip's modelled busy time is a small part of
it: the rest of each step the system exchanges spikes with the host (layer 1's spikes in, layer
2's spikes out) through the embedded x86 cores and the host link, for which no per-operation
energy or time is published. The script prints the modelled busy share of the measured step and
the energy left per step; it adds no term fitted to the measurement.

The check (since issue 21): an ORDER-OF-MAGNITUDE check of the activity-dependent part only.
Blouw et al.'s raw power logs (github abr/power_benchmarks; ../shared/REFERENCE.md section 5)
show idle at boot 29.5 mW, idle right after the run 96.4 mW, running 110.2 mW. The paper's
0.27 mJ subtracts the boot idle, so it includes the ~67 mW the system draws once a network is
loaded, busy or not. Running minus the post-run idle, 13.8 mW over 1/296 s, about 47 uJ per
inference, is the part that can depend on spike activity (lmu2neuro.analysis.system). The
estimate passes when it is within a factor 10 of that (0.1-10x) at the assumed activity; the old
0.67-1.5x target on the whole 0.27 mJ is retired: most of that figure is standing system power
and host I/O, which no per-operation chip figure can reproduce and which the report now shows in
its system section instead.

Usage: python benchmarks/blouw_kws_check.py [--out runs/bench/blouw_kws_check.json] [--rate 0.1]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from lmu2neuro.analysis.counting import count_operations
from lmu2neuro.analysis.plan import plan_profile
from lmu2neuro.analysis.profiles import load_profile
from lmu2neuro.analysis.system import blouw_activity_j
from lmu2neuro.core import atomic
from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core.intnet import IntNetwork, Population, Projection

MEASURED_J = 0.27e-3  # Blouw et al. 2019, Table 1: Loihi, dynamic energy per inference
# Blouw et al. 2019, Table 1: the same network as a non-spiking ANN, dynamic J per inference
MEASURED_CONVENTIONAL_J = {"cpu": 0.0063, "gpu": 0.0298, "jetson": 0.0056}
MEASURED_RATE = 296.0  # inferences per second, same table
ACTIVITY_J = blouw_activity_j()  # running minus post-run idle, per inference: the activity-dependent part
ORDER_OF_MAGNITUDE = (0.1, 10.0)  # the check: estimate / ACTIVITY_J within a factor 10
MEASURED_DYNAMIC_W = 0.110 - 0.029  # same table: running minus idle
SOURCE = "Blouw, Choo, Hunsberger, Eliasmith 2019 (arXiv 1812.01739), Table 1: Loihi 0.00027 J dynamic per inference, 296 inf/s"
STEPS = 10
N = 256
PLACEMENTS = {
    "example": "nengo-loihi's example: layer 1 on the host, its spikes sent to the chip; layer 2 on chip; output on host",
    "all_on_chip": "layer 1 on chip too: 512 host on/off sources (one synapse each) -> layer 1 -> layer 2; output on host",
    "graded": "390 graded features -> layer 1 -> layer 2 -> 29 readout, all on chip (bit-serial), upper bound",
}


def _pop(name, n, readout=False, host=False):
    return Population(name, n, 4095 if readout else 1024, 0 if readout else 256, fx.VTH_MAX if readout else 100,
                      np.zeros(n, np.int64), readout=readout, meta={"added_by_tool": True} if host else {})


def _dense(name, src, dst, n_in, n_out):
    return Projection(name, src, dst, np.full((1, n_out, n_in), 2, dtype=np.int64))


def network(placement: str) -> IntNetwork:
    """The part of the network on the chip; a host-side output is a readout marked as added (off chip)."""
    if placement == "example":
        # input = layer 1's 256 spiking neurons on the host; the 29 outputs are weighted on the host
        pops = [_pop("layer2", N), _pop("char_out", 29, readout=True, host=True)]
        projs = [_dense("layer1->layer2", "input", "layer2", N, N), _dense("layer2->char_out", "layer2", "char_out", N, 29)]
        return IntNetwork(N, 1.0, pops, projs, "char_out")
    if placement == "all_on_chip":
        # nengo-loihi's host->chip encoding: on/off pair 2i, 2i+1 drives neuron i with +w and -w
        w = np.zeros((1, N, 2 * N), dtype=np.int64)
        w[0, np.arange(N), 2 * np.arange(N)] = 2
        w[0, np.arange(N), 2 * np.arange(N) + 1] = -2
        pops = [_pop("layer1", N), _pop("layer2", N), _pop("char_out", 29, readout=True, host=True)]
        projs = [Projection("onoff->layer1", "input", "layer1", w), _dense("layer1->layer2", "layer1", "layer2", N, N),
                 _dense("layer2->char_out", "layer2", "char_out", N, 29)]
        return IntNetwork(2 * N, 1.0, pops, projs, "char_out")
    pops = [_pop("layer1", N), _pop("layer2", N), _pop("char_out", 29, readout=True)]
    projs = [_dense("input->layer1", "input", "layer1", 390, N), _dense("layer1->layer2", "layer1", "layer2", N, N),
             _dense("layer2->char_out", "layer2", "char_out", N, 29)]
    return IntNetwork(390, 1.0, pops, projs, "char_out")


def traffic_at_rate(net: IntNetwork, rate: float, input_rate: float, binary_input: bool) -> dict:
    """A traffic record (docs/CONTRACTS.md) of one inference at uniform rates."""
    layers = [{"name": "input", "kind": "input", "neurons": net.input_size, "graded": True, "binary": binary_input,
               "nonzero_inputs": input_rate * net.input_size * STEPS,
               "nonzero_inputs_per_step": [input_rate * net.input_size] * STEPS}]
    counts = {"input": np.full(net.input_size, input_rate * STEPS)}
    for p in net.populations:
        r = 0.0 if p.readout else rate
        c = np.full(p.size, r * STEPS)
        counts[p.name] = c
        layers.append({"name": p.name, "kind": "readout" if p.readout else "lif", "neurons": p.size,
                       "spikes": float(c.sum()), "spike_counts": c.tolist(), "spikes_per_step": [r * p.size] * STEPS})
    projections = [{"name": s.name, "source": s.source, "target": s.target, "taps": s.taps,
                    "graded": net.is_graded(s) and not binary_input, "weights": int(s.weights.size),
                    "nonzero_weights": int(np.count_nonzero(s.weights)), "weight_bits": 8,
                    "synaptic_events": float(counts[s.source] @ s.fan_out())} for s in net.projections]
    return {"schema": "lmu2neuro.traffic/1", "samples": 1, "timesteps": STEPS, "layers": layers, "projections": projections}


def source_rate(placement: str, rate: float, input_rate: float) -> float:
    """Spikes (or nonzero values) per input source per step, by what the input is."""
    return {"example": rate, "all_on_chip": input_rate / 2, "graded": 1.0}[placement]


def estimate(placement: str, rate: float, input_rate: float) -> dict:
    prof = load_profile("loihi1")
    net = network(placement)
    src = source_rate(placement, rate, input_rate)
    traffic = traffic_at_rate(net, rate, src, binary_input=placement != "graded")
    counts = count_operations(traffic, net)
    plan = plan_profile(counts, net, traffic, prof)
    e, t = plan["energy"], plan["time"]
    lat = t.latency_s[0]
    measured_step = 1.0 / MEASURED_RATE / STEPS
    return {"placement": PLACEMENTS[placement], "rate_spikes_per_neuron_per_step": rate,
            "input_events_per_source_per_step": src, "input_sources": net.input_size,
            "steps": STEPS, "effective_acs": counts.totals["effective_acs"], "effective_macs": counts.totals["effective_macs"],
            "neuron_updates": counts.totals["neuron_updates"], "spikes": counts.totals["spikes"],
            "messages": plan["loads"].messages,
            "dynamic_j": dict(zip(("estimate", "low", "high"), e.dynamic_j)),
            "ratio_to_measured": e.dynamic_j[0] / MEASURED_J,
            "ratio_to_activity_part": e.dynamic_j[0] / ACTIVITY_J,
            "order_of_magnitude_ok": ORDER_OF_MAGNITUDE[0] <= e.dynamic_j[0] / ACTIVITY_J <= ORDER_OF_MAGNITUDE[1],
            "ratio_range": [e.dynamic_j[1] / MEASURED_J, e.dynamic_j[2] / MEASURED_J],
            "latency_s": dict(zip(("estimate", "low", "high"), t.latency_s)),
            "latency_ratio": lat * MEASURED_RATE,
            "modelled_inferences_per_s": 1.0 / lat, "measured_inferences_per_s": MEASURED_RATE,
            "modelled_busy_share_of_measured_step": t.step_time_s[0] / measured_step,
            "modelled_chip_power_w": e.dynamic_j[0] / lat,
            "unmodelled_energy_per_step_j": (MEASURED_J - e.dynamic_j[0]) / STEPS,
            "per_layer_j": {le.layer: le.dynamic_j for le in e.layers}, "message_j": e.message_j[0] if e.message_j else 0.0,
            "cores": plan["mapping"].cores, "chips": plan["mapping"].chips,
            "violations": [v.message for v in plan["mapping"].violations], "leaves_out": e.leaves_out}


def conventional(name: str) -> dict:
    """The ANN (one forward pass per inference) on a conventional profile: per-op energy x ops."""
    prof = load_profile(name)
    macs = sum(a * b for a, b in zip((390, 256, 256), (256, 256, 29)))
    neurons = 256 + 256 + 29
    e = macs * prof.energy.mac.value + neurons * prof.energy.neuron_update.value
    return {"profile": name, "macs": macs, "activations": neurons, "dynamic_j": e,
            "measured_j": MEASURED_CONVENTIONAL_J[name], "ratio_to_measured": e / MEASURED_CONVENTIONAL_J[name]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="runs/bench/blouw_kws_check.json", help="JSON output path")
    ap.add_argument("--rate", type=float, default=0.1, help="assumed spikes per hidden neuron per step (default 0.1)")
    ap.add_argument("--input-rate", type=float, default=0.5,
                    help="assumed spikes per host on/off pair per step in placement all_on_chip (default 0.5)")
    args = ap.parse_args(argv)
    runs = {k: estimate(k, args.rate, args.input_rate) for k in PLACEMENTS}
    a = runs["example"]
    sweep = []
    for r in (0.02, 0.05, 0.1, 0.25):
        x = estimate("example", r, args.input_rate)
        sweep.append({"rate": r, "dynamic_j": x["dynamic_j"]["estimate"], "ratio": x["ratio_to_measured"],
                      "ratio_to_activity_part": x["ratio_to_activity_part"],
                      "latency_ratio": x["latency_ratio"]})
    result = {
        "benchmark": "Blouw et al. 2019 keyword spotter (390-256-256-29) on the loihi1 profile",
        "measured_dynamic_j": MEASURED_J, "measured_source": SOURCE,
        "activity_part_j": ACTIVITY_J,
        "activity_part_source": "Blouw et al. 2019 raw logs: running 110.2 mW - idle after the run 96.4 mW, x 1/296 s",
        "check": "order of magnitude: estimate / activity part within 0.1-10x (the 0.67-1.5x target on 0.27 mJ is "
                 "retired: most of 0.27 mJ is standing system power and host I/O)",
        "check_passes_example_placement": a["order_of_magnitude_ok"],
        "measured_dynamic_w": MEASURED_DYNAMIC_W, "measured_step_s_at_10_steps": 1.0 / MEASURED_RATE / STEPS,
        "assumptions": [f"{STEPS} steps per inference (nengo-loihi keyword_spotting example: outputs read over 10-step "
                        "windows at dt = 1 ms)",
                        f"firing rate {args.rate} spikes per neuron per step in layers 1 and 2; dense weights",
                        "example (sourced): nengo-loihi's example sets layer_1 on_chip = False; its spikes go to the chip "
                        "as a 256-axon spike input; layer 2's spikes are probed and the output weights applied on the host",
                        f"all_on_chip: 512 host on/off sources, {args.input_rate} spikes per pair per step",
                        "graded: all 390 features graded every step (the profile's assumed bit-serial MAC)"],
        "nengo_loihi_placement": a, "all_on_chip": runs["all_on_chip"], "graded_input_upper_bound": runs["graded"],
        "sweep_example": sweep,
        "latency_ratio_placement_A": a["latency_ratio"],
        "conventional": [conventional(n) for n in MEASURED_CONVENTIONAL_J],
        "reasons_they_differ": [
            "the measured 0.27 mJ is dynamic power x time per inference (81 mW x 3.38 ms): power drawn while the "
            "system waits also counts",
            f"in nengo-loihi's build only layer 2 (256 neurons, one core) runs on the chip: the modelled chip is busy "
            f"{a['modelled_busy_share_of_measured_step'] * 100:.0f} % of the measured step time at 10 steps per inference "
            f"and draws {a['modelled_chip_power_w'] * 1e3:.1f} mW over its own busy time; the rest of each step goes to "
            "the host link and the embedded x86 cores that carry layer 1's spikes in and layer 2's spikes out every step "
            "(no per-operation figure is published for them)",
            "even with layer 1 on the chip too (all_on_chip) or every feature sent graded (graded), the chip's modelled "
            "work stays far below the measurement",
            "activity per layer and steps per inference are not published: they are assumptions here",
        ],
    }
    atomic.write_json(args.out, result)
    print(f"Blouw et al. 2019 KWS, loihi1 profile, {STEPS} steps, rate {args.rate}, measured 270 uJ dynamic, 296 inf/s "
          f"({1e6 / MEASURED_RATE / STEPS:.0f} us per step at {STEPS} steps)")
    print(f"  check: order of magnitude of the activity-dependent part, {ACTIVITY_J * 1e6:.1f} uJ "
          f"(running - post-run idle); pass within {ORDER_OF_MAGNITUDE[0]}-{ORDER_OF_MAGNITUDE[1]}x")
    for k, r in runs.items():
        d = r["dynamic_j"]
        print(f"  {k:<12} {r['placement']}: x{r['ratio_to_activity_part']:.3f} of the activity part "
              f"({'within' if r['order_of_magnitude_ok'] else 'OUTSIDE'} an order of magnitude)")
        print(f"  {'':<12} {d['estimate'] * 1e6:8.2f} uJ [{d['low'] * 1e6:.2f}-{d['high'] * 1e6:.2f}] "
              f"= {r['ratio_to_measured']:.4f} x measured [{r['ratio_range'][0]:.4f}-{r['ratio_range'][1]:.4f}]; "
              f"latency {r['latency_s']['estimate'] * 1e3:.3f} ms (x{r['latency_ratio']:.3f}); cores {r['cores']}; "
              f"chip busy {r['modelled_busy_share_of_measured_step'] * 100:.1f} % of the measured step")
    print(f"  left per step (example placement): {a['unmodelled_energy_per_step_j'] * 1e6:.1f} uJ = "
          f"{a['unmodelled_energy_per_step_j'] * MEASURED_RATE * STEPS * 1e3:.1f} mW of the measured "
          f"{MEASURED_DYNAMIC_W * 1e3:.0f} mW dynamic")
    for c in result["conventional"]:
        print(f"  {c['profile']:>7} (ANN, per-op profile): {c['dynamic_j'] * 1e3:.3f} mJ vs measured {c['measured_j'] * 1e3:.1f} mJ "
              f"(x{c['ratio_to_measured']:.3f})")
    for s in sweep:
        print(f"  example: rate {s['rate']:<5} {s['dynamic_j'] * 1e6:7.2f} uJ (x{s['ratio']:.4f}), latency x{s['latency_ratio']:.3f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
