"""Cost Blouw et al. 2019's keyword spotter (390-256-256-29) with the loihi1 profile and compare.

Blouw, Choo, Hunsberger, Eliasmith, "Benchmarking keyword spotting efficiency on neuromorphic
hardware" (arXiv 1812.01739, 2019) measured 0.27 mJ of dynamic energy per inference on Loihi
(REFERENCE.md section 4). This script runs the project's own counting, energy and chip-mapping
code on that network at a stated activity and prints the ratio estimate / measured.

Assumptions (none of these is published per layer for that network):
- 10 time steps per inference: the public version of the network (nengo-loihi's keyword-spotting
  example) presents each 390-feature window for p_time = 10 steps at dt = 1 ms.
- every input feature is nonzero (MFCC windows are dense), delivered as graded input.
- a mean firing rate of 0.1 spikes per neuron per step (100 Hz at dt = 1 ms) in both hidden
  layers, swept over 0.02-0.25 to show the sensitivity. Weights dense (all nonzero).
Two placements: the whole network on the chip, and the split of nengo-loihi's example, where
layer 1 runs on the host (its spikes enter the chip) and the 29 outputs are decoded on the host.

Usage: python benchmarks/blouw_kws_check.py [--out runs/blouw_kws_check.json] [--rate 0.1]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from lmu2neuro.core import atomic
from lmu2neuro.core import fixed_point as fx
from lmu2neuro.analysis.chip_mapping import map_to_chip
from lmu2neuro.analysis.counting import count_operations, fan_out
from lmu2neuro.analysis.energy import estimate_energy
from lmu2neuro.core.intnet import IntNetwork, Population, Projection
from lmu2neuro.analysis.profiles import load_profile

MEASURED_J = 0.27e-3  # Blouw et al. 2019, Loihi, dynamic energy per inference
STEPS = 10
SIZES = (390, 256, 256, 29)


def network(on_chip_input: bool) -> IntNetwork:
    """390-256-256-29 with dense weights; or, split, 256 host spikes -> 256 on the chip."""
    def pop(name, n, readout=False):
        return Population(name, n, 4095 if readout else 1024, 0 if readout else 256,
                          fx.VTH_MAX if readout else 100, np.zeros(n, np.int64), readout=readout)

    def dense(name, src, dst, n_in, n_out):
        return Projection(name, src, dst, np.full((1, n_out, n_in), 2, dtype=np.int64))

    if on_chip_input:
        pops = [pop("layer1", 256), pop("layer2", 256), pop("char_out", 29, readout=True)]
        projs = [dense("input->layer1", "input", "layer1", 390, 256), dense("layer1->layer2", "layer1", "layer2", 256, 256),
                 dense("layer2->char_out", "layer2", "char_out", 256, 29)]
        return IntNetwork(390, 1.0, pops, projs, "char_out")
    # The host's layer-1 spikes are the chip's binary input (ACs); a zero-weight, one-neuron
    # readout stands in for the host-side decoder (it adds 10 neuron updates, 0.8 nJ).
    pops = [pop("layer2", 256), pop("host_out", 1, readout=True)]
    projs = [dense("layer1->layer2", "input", "layer2", 256, 256),
             Projection("none", "layer2", "host_out", np.zeros((1, 1, 256), np.int64))]
    return IntNetwork(256, 1.0, pops, projs, "host_out")


def traffic_at_rate(net: IntNetwork, rate: float, graded_input: bool) -> dict:
    """A traffic record (docs/CONTRACTS.md) of one inference at a uniform firing rate."""
    active = 1.0 if graded_input else rate  # dense MFCC features, or host spikes at the rate
    layers = [{"name": "input", "kind": "input", "neurons": net.input_size, "graded": graded_input,
               "nonzero_inputs": active * net.input_size * STEPS,
               "nonzero_inputs_per_step": [active * net.input_size] * STEPS}]
    counts = {"input": np.full(net.input_size, active * STEPS)}
    for p in net.populations:
        r = 0.0 if p.readout else rate
        c = np.full(p.size, r * STEPS)
        counts[p.name] = c
        layers.append({"name": p.name, "kind": "readout" if p.readout else "lif", "neurons": p.size,
                       "spikes": float(c.sum()), "spike_counts": c.tolist(), "spikes_per_step": [r * p.size] * STEPS})
    projections = [{"name": s.name, "source": s.source, "target": s.target, "taps": s.taps,
                    "graded": graded_input and net.is_graded(s), "weights": int(s.weights.size),
                    "nonzero_weights": int(np.count_nonzero(s.weights)), "weight_bits": 8,
                    "synaptic_events": float(counts[s.source] @ fan_out(s.weights))} for s in net.projections]
    return {"schema": "lmu2neuro.traffic/1", "samples": 1, "timesteps": STEPS, "layers": layers, "projections": projections}


def estimate(rate: float, on_chip_input: bool) -> dict:
    prof = load_profile("loihi1")
    net = network(on_chip_input)
    counts = count_operations(traffic_at_rate(net, rate, graded_input=on_chip_input), net)
    est = estimate_energy(counts, prof)
    mapping = map_to_chip(net, prof)
    t = counts.totals
    return {"placement": "whole network on chip" if on_chip_input else "nengo-loihi split (layer 1 and decoder on host)",
            "rate_spikes_per_neuron_per_step": rate, "steps": STEPS,
            "effective_acs": t["effective_acs"], "effective_macs": t["effective_macs"],
            "neuron_updates": sum(lay.neuron_updates for lay in counts.layers), "spikes": sum(lay.spikes for lay in counts.layers),
            "dynamic_j": est.dynamic_j, "ratio_to_measured": est.dynamic_j / MEASURED_J,
            "per_layer_j": {le.layer: le.dynamic_j for le in est.layers},
            "cores": mapping.cores, "chips": mapping.chips, "violations": [v.message for v in mapping.violations],
            "sources": est.sources, "leaves_out": est.leaves_out}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="runs/blouw_kws_check.json", help="JSON output path")
    ap.add_argument("--rate", type=float, default=0.1, help="assumed spikes per neuron per step (default 0.1 = 100 Hz at 1 ms)")
    args = ap.parse_args(argv)
    main_full = estimate(args.rate, True)
    main_split = estimate(args.rate, False)
    sweep = [{"rate": r, "whole_chip_j": estimate(r, True)["dynamic_j"], "split_j": estimate(r, False)["dynamic_j"]}
             for r in (0.02, 0.05, 0.1, 0.25)]
    for r in sweep:
        r["whole_chip_ratio"] = r["whole_chip_j"] / MEASURED_J
        r["split_ratio"] = r["split_j"] / MEASURED_J
    result = {
        "benchmark": "Blouw et al. 2019 keyword spotter (390-256-256-29) on the loihi1 profile",
        "measured_dynamic_j": MEASURED_J,
        "measured_source": "Blouw, Choo, Hunsberger, Eliasmith 2019 (arXiv 1812.01739): Loihi 0.27 mJ dynamic per inference",
        "assumptions": [f"{STEPS} steps per inference (nengo-loihi keyword-spotting example: p_time = 10 at dt = 1 ms)",
                        f"firing rate {args.rate} spikes per neuron per step in both hidden layers",
                        "all 390 input features nonzero every step, graded (MACs at the loihi1 profile's assumed 94.4 pJ)",
                        "dense weights"],
        "whole_network_on_chip": main_full, "nengo_loihi_split": main_split, "rate_sweep": sweep,
    }
    atomic.write_json(args.out, result)
    print(f"Blouw et al. 2019 KWS, loihi1 profile, {STEPS} steps, rate {args.rate} spikes/neuron/step")
    for r in (main_full, main_split):
        print(f"  {r['placement']:<48} {r['dynamic_j'] * 1e6:8.2f} uJ  = {r['ratio_to_measured']:.4f} x measured 270 uJ "
              f"({r['effective_acs']:.0f} ACs, {r['effective_macs']:.0f} MACs, {r['cores']} cores)")
    for r in sweep:
        print(f"  rate {r['rate']:<5} whole chip {r['whole_chip_j'] * 1e6:7.2f} uJ (x{r['whole_chip_ratio']:.4f}), "
              f"split {r['split_j'] * 1e6:6.2f} uJ (x{r['split_ratio']:.4f})")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
