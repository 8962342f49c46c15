"""The whole pipeline on the built-in digits dataset, in minutes on 2 CPU cores.

train (QAT) -> export NIR -> simulate in Lava fixed_pt and the reference -> check that Lava,
the reference and the QAT model in integer mode agree -> energy and chip report.
"""

from __future__ import annotations

import time
from pathlib import Path

REPORT_PROFILES = ["loihi1", "loihi2", "spinnaker2", "cpu", "gpu", "jetson", "mac45nm"]


def _say(msg: str) -> None:
    print(msg, flush=True)


def run_demo(out_dir, *, epochs: int | None = None, samples: int = 60, seed: int = 0, progress: bool = True) -> dict:
    """Run every stage into out_dir; returns a summary dict (also written as out_dir/demo.json).

    The training is the documented digits run (``training.examples.EXAMPLES["digits"]``, the
    README's and `train --help`'s command); ``epochs`` shortens it (tests)."""
    from converters.nir.export import export_nir
    from converters.nir.read import read_intnet
    from lmu2neuro.core.atomic import write_json
    from lmu2neuro.training.checkpoint import model_from_checkpoint
    from lmu2neuro.deploy.lowering import integer_forward, lower
    from lmu2neuro.core.guards import sha256_of
    from lmu2neuro.reports.build import make_report
    from lmu2neuro.pipeline.simulate import load_inputs, simulate_network
    from lmu2neuro.core.measurement import agreement, measure_spikes
    from lmu2neuro.training.recipe import TrainConfig, train

    from lmu2neuro.training.examples import EXAMPLES

    out = Path(out_dir)
    times = {}
    t0 = time.perf_counter()
    recipe = dict(EXAMPLES["digits"])
    if epochs is not None:
        recipe["epochs"] = epochs
    _say(f"[1/5] training a Spiking LMUFormer with Loihi QAT on digits ({recipe['epochs']} epochs) -> {out / 'train'}")
    cfg = TrainConfig(out=str(out / "train"), seed=seed, overwrite=True, progress=progress, threads=1, **recipe)
    metrics = train(cfg)
    times["train_s"] = time.perf_counter() - t0
    test = metrics.get("test", {})
    _say(f"      test accuracy {test.get('accuracy', float('nan')):.4f}, "
         f"integer mode {test.get('integer_accuracy', float('nan')):.4f} ({times['train_s']:.0f} s)")

    t0 = time.perf_counter()
    model_path = out / "model.nir"
    _say(f"[2/5] exporting the integer network through NIR -> {model_path}")
    model, _ = model_from_checkpoint(out / "train" / "best.pt")
    export_nir(lower(model), model_path)
    net = read_intnet(model_path)
    times["export_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    traffic_path = out / "traffic.json"
    _say(f"[3/5] simulating {samples} test samples in Lava fixed_pt and the reference -> {traffic_path}")
    x, y = load_inputs(net, dataset="digits", samples=samples)
    traffic, runs = simulate_network(net, x, y, backend="both", model=str(model_path),
                                     model_sha256=sha256_of(model_path), progress=progress)
    times["simulate_s"] = time.perf_counter() - t0

    _say("[4/5] checking agreement: Lava fixed_pt vs reference vs the QAT model in integer mode")
    import torch

    with torch.no_grad():
        integer = integer_forward(model, torch.as_tensor(x, dtype=torch.float32))
    qat = measure_spikes("qat-integer", {k: v.numpy() for k, v in integer["spikes"].items()},
                         integer["readout_trace"].numpy())
    checks = {"lava_vs_reference": traffic["agreement"], "qat_vs_reference": agreement(qat, runs["reference"])}
    traffic["agreement_qat_integer"] = checks["qat_vs_reference"]
    write_json(traffic_path, traffic)
    for name, a in checks.items():
        _say(f"      {name}: identical spikes in every layer for {a['identical_spikes']:.0%} of {a['samples']} "
             f"samples, identical predictions {a['identical_predictions']:.0%}")

    t0 = time.perf_counter()
    report_dir = out / "report"
    _say(f"[5/5] energy and chip report for {', '.join(REPORT_PROFILES)} -> {report_dir}")
    rep = make_report(traffic_path, model_path, REPORT_PROFILES, report_dir)
    times["report_s"] = time.perf_counter() - t0
    energies = {p["profile"]: p["energy_per_inference_j"] for p in rep["profiles"]}
    # what each figure is (dynamic + static on a stated basis, dynamic only, or a floor) and how long
    labels = {p["profile"]: p["label"] for p in rep["profiles"]}
    latency = {p["profile"]: (p["time"] or {}).get("latency_s", [None])[0] for p in rep["profiles"]}
    summary = {
        "accuracy_float": test.get("accuracy"), "accuracy_integer": test.get("integer_accuracy"),
        "accuracy_simulated": traffic["accuracy"], "samples": samples, "agreement": checks,
        "energy_per_inference_j": energies, "energy_basis": labels, "latency_s": latency, "times_s": times,
        "lava_steps_per_second": runs["lava"].timing.get("steps_per_second"),
        "reference_steps_per_second": runs["reference"].timing.get("steps_per_second"),
        "artifacts": {"checkpoint": str(out / "train" / "best.pt"), "metrics": str(out / "train" / "metrics.json"),
                      "model": str(model_path), "traffic": str(traffic_path),
                      "report": str(report_dir / "report.html")},
    }
    write_json(out / "demo.json", summary)
    return summary


def print_summary(summary: dict) -> None:
    from lmu2neuro.reports.units import fmt_quantity

    _say("\nper inference (estimates; ranges and sources in the report):")
    for name, j in summary["energy_per_inference_j"].items():
        lat = summary.get("latency_s", {}).get(name)
        when = f", latency {fmt_quantity(lat, 's')}" if lat else ""
        basis = summary.get("energy_basis", {}).get(name, "")
        _say(f"  {name:<11} {fmt_quantity(j, 'J')}{when}  [{basis}]" if isinstance(j, float) else f"  {name:<11} {j}")
    _say("\nartifacts:")
    for name, path in summary["artifacts"].items():
        _say(f"  {name:<11} {path}")


def agreement_ok(summary: dict) -> bool:
    return all(a["identical_spikes"] == 1.0 and a["identical_predictions"] == 1.0
               for a in summary["agreement"].values())
