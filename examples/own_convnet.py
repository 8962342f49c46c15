"""Your own spiking conv net on Loihi, spike for spike: Conv2d, LIF, sum pooling, Flatten and Linear
from lmu2neuro's layers, trained in float and then quantization-aware (QAT), lowered to Loihi
integers, exported to NIR, run in Lava fixed point and in the reference executor, and reported.

Run: .venv/bin/python examples/own_convnet.py   (about 20 s on one core; writes runs/example_own_convnet/)

Every layer takes whole sequences (batch, time, *frame); Conv2d and the pooling act on every frame
(channels, height, width). Here each 8x8 digit is shown as the same frame for 8 steps. The
deployment holds each convolution as its dense matrix for now (a projection per layer).
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


class OwnConvNet(nn.Module):
    """(1, 8, 8) frames -> Conv2d 8 x 3x3 -> LIF -> 2x2 sum pool -> Linear 128->64 -> LIF -> 10 classes."""

    def __init__(self, channels: int = 8, hidden: int = 64):
        super().__init__()
        self.quant = L.InputQuantizer()  # scale calibrated from the training data below
        self.conv, self.lif1 = L.Conv2d(1, channels, 3, padding=1), L.Leaky(beta=0.9, threshold=0.5)
        self.pool, self.flat = L.SumPool2d(2), L.Flatten()
        self.fc1, self.lif2 = L.Linear(channels * 16, hidden), L.Leaky(beta=0.9, threshold=0.5)
        self.fc2 = L.Linear(hidden, 10)

    def forward(self, x):  # x (batch, time, 1, 8, 8) -> (batch, time, 10)
        x = self.quant(x)
        s1 = self.lif1(self.conv(x))
        s2 = self.lif2(self.fc1(self.flat(self.pool(s1))))
        return self.fc2(s2)


def as_images(split, steps: int):
    """The digits' rows put back together: each image one frame (1, 8, 8), shown for ``steps`` frames."""
    images = split.x.reshape(len(split.x), 1, 1, 8, 8)
    return images.expand(-1, steps, -1, -1, -1).contiguous(), split.y


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


def main(out="runs/example_own_convnet", float_epochs=15, qat_epochs=4, samples=50, seed=0, progress=True,
         steps=8) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    data = get_dataset("digits", repeat=1)  # (samples, 8 rows, 8 pixels)
    (xtr, ytr), val, (xte, yte) = (as_images(s, steps) for s in (data.train, data.val, data.test))

    # 1. your model, wrapped: traced once here (an unsupported layer fails now, by name)
    model = LoihiModel(OwnConvNet(), frame_shape=(1, 8, 8), max_len=steps)
    model.calibrate(xtr)  # input scale: 127 / max |x|
    fit(model, xtr, ytr, val, float_epochs, lr=2e-2, seed=seed, progress=progress)
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
    traffic, runs = simulate_network(net, xte[:samples].flatten(2).numpy(), yte[:samples].numpy(), backend="both",
                                     model=str(out / "model.nir"), model_sha256=sha256_of(out / "model.nir"),
                                     progress=progress)
    mode = measure_spikes("integer_mode", {k: v[:samples] for k, v in integer["spikes"].items()},
                          integer["readout_trace"][:samples])
    write_json(out / "traffic.json", traffic)
    result = {"model": "own conv net", "float_accuracy": float_acc, "qat_accuracy": qat_acc,
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
