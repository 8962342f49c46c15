"""`lmu2neuro baseline`: the network's conventional equivalents measured on this machine, beside
what a tabled profile estimates for them (docs/baselines.md)."""

from __future__ import annotations

import os
import platform
from dataclasses import asdict

from lmu2neuro.core.errors import UserError

THROUGHPUT_BATCH = 64  # the batch at which throughput is measured, besides batch 1


def check_device(device: str) -> str:
    """``device`` if torch can run on it here, else a one-line UserError naming --device."""
    import torch

    if device == "cpu":
        return device
    if device == "cuda" or (device.startswith("cuda:") and device[5:].isdigit()):
        if not torch.cuda.is_available():
            raise UserError(f"--device {device}: no CUDA device here (torch.cuda.is_available() is False); "
                            "use --device cpu")
        index = int(device[5:]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise UserError(f"--device {device}: only {torch.cuda.device_count()} CUDA device(s) here")
        return device
    raise UserError(f"--device {device}: expected cpu, cuda or cuda:N")


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def structure(net) -> dict:
    """What the ANN baseline needs from the network alone: per-step NeuroBench Dense (helpers
    count nothing: ``counting.dense_per_step``), neurons, recurrence."""
    from lmu2neuro.analysis.counting import dense_per_step

    pops = [p for p in net.populations if not p.helper]
    return {"dense_per_step": sum(dense_per_step(s) for s in net.projections),
            "neurons": sum(p.size for p in pops),
            "recurrent": any(s.source == s.target and not s.helper for s in net.projections)}


def run_baseline(model, *, timesteps: int, static: bool, device: str = "cpu", batch: int = THROUGHPUT_BATCH,
                 tdp_w: float | None = None, profile: str = "cpu", min_time_s: float = 1.0, seed: int = 0,
                 out: str | os.PathLike | None = None, networks: tuple[str, ...] = ("ann", "snn_dense")) -> dict:
    """Time the non-spiking equivalent (ANN: one pass for a static input to a network without
    recurrence, else T) and the SNN as a dense torch network (T steps) of ``model`` (a .nir or
    netx file, or an IntNetwork) on ``device`` at batch 1 and ``batch``; energy where a counter can
    be read, else TDP x time labelled as a bound; and ``profile``'s tabled estimate for each, as a
    ratio to the measurement. Returns the result dict (also written to ``out`` as JSON)."""
    import torch

    from lmu2neuro.analysis.baseline import TorchEquivalent, measure
    from lmu2neuro.analysis.energy_meter import meter_for, tdp
    from lmu2neuro.analysis.profiles import load_profile

    device = check_device(device)
    if timesteps < 1:
        raise UserError(f"--timesteps {timesteps}: expected at least 1")
    if batch < 1:
        raise UserError(f"--batch {batch}: expected at least 1")
    if tdp_w is not None and not tdp_w > 0:
        raise UserError(f"--tdp-w {tdp_w}: expected a positive power in watts")
    if out is not None:  # refused before the runs, not after them: a folder, under a file, /proc
        from lmu2neuro.core.outdir import check_output_file

        check_output_file(out, "-o")
    prof = load_profile(profile)
    if prof.kind != "conventional":
        raise UserError(f"--profile {profile}: expected a conventional profile (cpu, gpu, jetson), got {prof.kind}")
    net = model if hasattr(model, "populations") else _read(model)
    st = structure(net)
    passes = 1 if static and not st["recurrent"] else timesteps
    name = device_name(device)
    meter = meter_for(device)
    bound_w = None if meter.available else tdp(device, name, tdp_w)
    g = torch.Generator().manual_seed(seed)
    load_before = _load()
    rows = []
    for kind, spiking, n_pass in (("ann", False, passes), ("snn_dense", True, timesteps)):
        if kind not in networks:
            continue
        module = TorchEquivalent(net, spiking=spiking, passes=n_pass)
        for b in sorted({1, batch}):
            x = torch.randint(-127, 128, (b, 1 if static else timesteps, net.input_size), generator=g).float()
            x = x.expand(b, timesteps, net.input_size) if static else x
            t = measure(module, x, device, min_time_s=min_time_s, meter=meter if meter.available else None)
            row = {"network": kind, "passes": n_pass, **asdict(t)}
            if t.energy_j is not None:
                row["energy_j_per_inference"] = t.energy_j / (t.runs * b)
                row["energy_basis"] = "measured: " + meter.why + " over the timed runs (whatever else ran is in it)"
            elif bound_w is not None:
                row["energy_bound_j_per_inference"] = bound_w[0] * t.per_inference_s
                row["energy_basis"] = (f"UPPER BOUND, not a measurement: TDP {bound_w[0]:g} W ({bound_w[1]}) x "
                                       "time per inference")
            else:
                row["energy_basis"] = "not measured and no bound: give --tdp-w W (the processor's TDP)"
            rows.append(row)
    result = {
        "network_file": str(model) if not hasattr(model, "populations") else None,
        "device": device, "device_name": name, "torch": torch.__version__,
        "threads": torch.get_num_threads() if device == "cpu" else None, "cpu_count": os.cpu_count(),
        # other work on the machine moves wall-clock times: its load before and after, as the OS counts it
        "load_average_1min": {"before": load_before, "after": _load()},
        "timesteps": timesteps, "static_input": static, "ann_passes": passes,
        "energy_counter": meter.why, "measured": rows,
        "tabled": _tabled(prof, st, passes, timesteps, rows),
    }
    if out is not None:
        from lmu2neuro.core.atomic import write_json

        write_json(out, result)
    return result


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):  # not on every platform
        return None


def _read(path):
    from converters.network_file import read_network_file

    return read_network_file(path)


def _tabled(prof, st: dict, passes: int, steps: int, rows: list[dict]) -> dict:
    """The profile's estimate for both networks at batch 1 (its throughput is a batch-1 figure), and
    its ratio to the measurement here. Published, not measured here."""
    out = {"profile": prof.name, "label": "published, not measured here", "description": " ".join(prof.description.split()),
           "throughput_source": prof.throughput.source if prof.throughput else None,
           "energy_source": prof.energy.mac.source if prof.energy.mac else None}
    for kind, n_pass in (("ann", passes), ("snn_dense", steps)):
        macs = st["dense_per_step"] * n_pass
        est = {"macs": macs}
        if prof.throughput is not None:
            est["latency_s"] = macs / prof.throughput.value
        if prof.energy.mac is not None:
            nu = prof.energy.neuron_update.value if prof.energy.neuron_update else 0.0
            est["dynamic_j"] = macs * prof.energy.mac.value + st["neurons"] * n_pass * nu
        b1 = next((r for r in rows if r["network"] == kind and r["batch"] == 1), None)
        if b1 is not None and "latency_s" in est:
            est["latency_ratio_to_measured"] = est["latency_s"] / b1["per_inference_s"]  # the median run
            # the fastest run: what the machine does when other work leaves it alone
            est["latency_ratio_to_fastest"] = est["latency_s"] / b1["latency_min_s"]
        out[kind] = est
    return out


def format_baseline(res: dict) -> str:
    from lmu2neuro.reports.units import fmt_quantity

    load = res.get("load_average_1min") or {}
    lines = [f"{res['device_name']} ({res['device']}{', %d threads' % res['threads'] if res['threads'] else ''}), "
             f"torch {res['torch']}; energy: {res['energy_counter']}"]
    if load.get("before") is not None:
        lines.append(f"  machine load (1-min average) {load['before']:.2f} before, {load['after']:.2f} after, on "
                     f"{res['cpu_count']} CPUs: other work moves these times")
    for r in res["measured"]:
        e = r.get("energy_j_per_inference", r.get("energy_bound_j_per_inference"))
        energy = ("" if e is None else f", {'<= ' if 'energy_bound_j_per_inference' in r else ''}"
                  f"{fmt_quantity(e, 'J')} per inference")
        lines.append(f"  {r['network']:<9} batch {r['batch']:<4} {r['passes']} pass(es): "
                     f"{fmt_quantity(r['latency_s'], 's')} per call (median of {r['runs']}; fastest "
                     f"{fmt_quantity(r['latency_min_s'], 's')}), {r['throughput_per_s']:.4g} inferences/s{energy}")
    t = res["tabled"]
    for kind in ("ann", "snn_dense"):
        est = t[kind]
        if "latency_s" in est:
            lines.append(f"  tabled '{t['profile']}' ({t['label']}), {kind}: {est['macs']:.4g} MACs -> "
                         f"{fmt_quantity(est['latency_s'], 's')} = {est.get('latency_ratio_to_measured', float('nan')):.3g}x "
                         f"the batch-1 median, {est.get('latency_ratio_to_fastest', float('nan')):.3g}x the fastest run")
    return "\n".join(lines)

