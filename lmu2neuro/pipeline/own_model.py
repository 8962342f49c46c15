"""Your own model from Python, end to end: a short training loop, then deploy and check.

``fit`` trains any model whose forward returns logits (float first, then again after
``set_qat(True)``); ``deploy_and_check`` lowers it to Loihi integers, exports NIR and reads it
back, runs Lava fixed point and the reference executor on the first test samples, compares both
with the model's integer mode spike for spike, and writes the traffic and the report. The
examples (``examples/own_*.py``) are these two calls around a model definition.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm


@torch.no_grad()
def accuracy(model, x, y) -> float:
    return float((model(x).argmax(1) == y).float().mean())


def fit(model, x, y, val, epochs, lr, batch=32, seed=0, progress=True) -> None:
    """Cross-entropy on the model's logits; Adam with a one-cycle learning rate. Keeps the weights of
    the epoch with the best accuracy on the validation split ``val`` = (x, y)."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps = epochs * -(-len(x) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    g = torch.Generator().manual_seed(seed)
    best, best_state = -1.0, None
    for _ in tqdm(range(epochs), desc="epochs", leave=False, disable=not progress):
        model.train()
        for idx in torch.randperm(len(x), generator=g).split(batch):
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        score = accuracy(model, *val)
        if score >= best:
            best, best_state = score, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)


def deploy_and_check(model, name: str, x_test, y_test, out, float_acc: float, qat_acc: float,
                     samples: int = 50, progress: bool = True,
                     profiles: tuple[str, ...] = ("loihi1", "loihi2", "cpu")) -> dict:
    """Lower, export NIR (read back exactly), simulate Lava and the reference on ``samples`` test
    samples, compare with the integer mode, report; returns the figures (accuracies, agreements)."""
    from converters.nir.export import export_nir
    from converters.nir.read import read_intnet
    from lmu2neuro.core.atomic import write_json
    from lmu2neuro.core.guards import sha256_of
    from lmu2neuro.core.measurement import agreement, measure_spikes
    from lmu2neuro.deploy.lowering import integer_forward, lower
    from lmu2neuro.pipeline.simulate import simulate_network
    from lmu2neuro.reports.build import make_report

    out = Path(out)
    # the deployed integer network, its accuracy (the one integer executor), NIR, read back exactly
    net = lower(model)
    integer = integer_forward(model, x_test)
    int_acc = float((integer["scores"].argmax(1) == y_test).float().mean())
    export_nir(net, out / "model.nir")
    net = read_intnet(out / "model.nir")
    # Lava fixed point and the reference executor on the first test samples (frames flattened, as the
    # integer network takes them), and the integer mode
    traffic, runs = simulate_network(net, x_test[:samples].flatten(2).numpy(), y_test[:samples].numpy(),
                                     backend="both", model=str(out / "model.nir"),
                                     model_sha256=sha256_of(out / "model.nir"), progress=progress)
    mode = measure_spikes("integer_mode", {k: v[:samples] for k, v in integer["spikes"].items()},
                          integer["readout_trace"][:samples])
    write_json(out / "traffic.json", traffic)
    result = {"model": name, "float_accuracy": float_acc, "qat_accuracy": qat_acc,
              "integer_accuracy": int_acc, "test_samples": len(y_test), "lava_vs_reference": traffic["agreement"],
              "lava_vs_integer_mode": agreement(runs["lava"], mode), "report": str(out / "report")}
    print(f"accuracy on {len(y_test)} test samples: float {float_acc:.4f}, QAT {qat_acc:.4f}, integer {int_acc:.4f}")
    print(f"Lava vs reference identical spikes: {traffic['agreement']['identical_spikes']} "
          f"({samples} samples); Lava vs integer mode: {result['lava_vs_integer_mode']['identical_spikes']}")
    # energy, time and chip use per hardware profile (report.md, report.html, plots)
    report = make_report(out / "traffic.json", out / "model.nir", list(profiles), out / "report")
    for p in report["profiles"]:
        print(f"{p['profile']:>8}: {p['energy_per_inference_j']:.2e} J per inference")
    return result
