"""Your own recurrent spiking net on Loihi, spike for spike: an RLeaky layer (its own spikes fed back
through a Linear, one step late, as snnTorch's RLeaky) trained in float and then quantization-aware
(QAT), lowered to Loihi integers (the feedback is a projection from the population to itself with a
delay of one step), exported to NIR, run in Lava fixed point and in the reference executor, and
reported.

Run: .venv/bin/python examples/own_recurrent.py   (about 20 s on one core; writes runs/example_own_recurrent/)
"""

import copy
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

import lmu2neuro
from converters.nir.export import export_nir
from converters.nir.read import read_intnet
from lmu2neuro.core.atomic import write_json
from lmu2neuro.core.guards import sha256_of
from lmu2neuro.core.measurement import agreement, measure_spikes
from lmu2neuro.datasets import get_dataset
from lmu2neuro.deploy.lowering import integer_forward, lower
from lmu2neuro.models import layers as L
from lmu2neuro.models.trace import LoihiModel
from lmu2neuro.pipeline.simulate import simulate_network


class OwnRecurrent(nn.Module):
    """8 pixels per frame -> 128 recurrent LIF (RLeaky) -> 10 classes per frame."""

    def __init__(self, hidden: int = 128):
        super().__init__()
        self.quant = L.InputQuantizer()  # scale calibrated from the training data below
        self.fc1 = L.Linear(8, hidden)
        self.rlif = L.RLeaky(beta=0.9, linear_features=hidden, threshold=0.5)
        self.fc2 = L.Linear(hidden, 10)

    def forward(self, x):  # x (batch, time, 8) -> (batch, time, 10)
        return self.fc2(self.rlif(self.fc1(self.quant(x))))


@torch.no_grad()
def accuracy(model, x, y) -> float:
    return float((model(x).argmax(1) == y).float().mean())


def fit(model, x, y, val, epochs, lr, batch=32, seed=0, progress=True):
    """Cross-entropy on the mean of the per-frame outputs; Adam with a one-cycle learning rate. Keeps
    the weights of the epoch with the best accuracy on the validation split ``val`` = (x, y)."""
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


def main(out="runs/example_own_recurrent", float_epochs=20, qat_epochs=5, samples=50, seed=0, progress=True) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    data = get_dataset("digits")  # (samples, 16 frames, 8 pixels); one image row per 2 frames
    xtr, ytr, xte, yte = data.train.x, data.train.y, data.test.x, data.test.y
    val = (data.val.x, data.val.y)  # picks the epoch kept

    # 1. your model, wrapped: traced once here (an unsupported layer fails now, by name)
    model = LoihiModel(OwnRecurrent(), frame_shape=(8,), max_len=data.timesteps)
    model.calibrate(xtr)  # input scale: 127 / max |x|
    fit(model, xtr, ytr, val, float_epochs, lr=1e-2, seed=seed, progress=progress)
    float_acc = accuracy(model, xte, yte)

    # 2. quantization-aware fine-tuning: Loihi's integers in the forward, straight-through gradients
    model.set_qat(True)
    fit(model, xtr, ytr, val, qat_epochs, lr=2e-3, seed=seed + 1, progress=progress)
    qat_acc = accuracy(model, xte, yte)

    # 3. the deployed integer network, its accuracy (the one integer executor), NIR, read back exactly
    net = lower(model)
    integer = integer_forward(model, xte)
    int_acc = float((integer["scores"].argmax(1) == yte).float().mean())
    export_nir(net, out / "model.nir")
    net = read_intnet(out / "model.nir")

    # 4. Lava fixed point and the reference executor on the first test samples, and the integer mode
    traffic, runs = simulate_network(net, xte[:samples].numpy(), yte[:samples].numpy(), backend="both",
                                     model=str(out / "model.nir"), model_sha256=sha256_of(out / "model.nir"),
                                     progress=progress)
    mode = measure_spikes("integer_mode", {k: v[:samples] for k, v in integer["spikes"].items()},
                          integer["readout_trace"][:samples])
    write_json(out / "traffic.json", traffic)
    result = {"model": "own recurrent net", "float_accuracy": float_acc, "qat_accuracy": qat_acc,
              "integer_accuracy": int_acc, "test_samples": len(yte), "lava_vs_reference": traffic["agreement"],
              "lava_vs_integer_mode": agreement(runs["lava"], mode), "report": str(out / "report")}
    print(f"accuracy on {len(yte)} test samples: float {float_acc:.4f}, QAT {qat_acc:.4f}, integer {int_acc:.4f}")
    print(f"Lava vs reference identical spikes: {traffic['agreement']['identical_spikes']} "
          f"({samples} samples); Lava vs integer mode: {result['lava_vs_integer_mode']['identical_spikes']}")

    # 5. energy, time and chip use per hardware profile (report.md, report.html, plots)
    report = lmu2neuro.report(out / "traffic.json", out / "report", model=out / "model.nir",
                              profiles=["loihi1", "loihi2", "cpu"])
    for p in report["profiles"]:
        print(f"{p['profile']:>8}: {p['energy_per_inference_j']:.2e} J per inference")
    return result


if __name__ == "__main__":
    main()
