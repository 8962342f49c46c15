"""Your own spiking MLP on Loihi, spike for spike: build it from lmu2neuro's layers, train it in float
and then quantization-aware (QAT), lower it to Loihi integers, export NIR, run it in Lava fixed
point and in the reference executor, and report energy and chip use.

Run: .venv/bin/python examples/own_mlp.py   (about 20 s on one core; writes runs/example_own_mlp/)

The layers work like snnTorch's (``layers.Leaky`` is ``snn.Leaky`` with Loihi's reset to zero), but
every layer takes whole sequences (batch, time, features): the neurons scan time themselves.
Nothing here describes the architecture to the deployment: LoihiModel traces the forward.
"""

from pathlib import Path

import torch
from torch import nn

from lmu2neuro.datasets import get_dataset
from lmu2neuro.models import layers as L
from lmu2neuro.models.trace import LoihiModel
from lmu2neuro.pipeline.own_model import accuracy, deploy_and_check, fit


class OwnMLP(nn.Module):
    """8 pixels per frame -> 128 LIF -> 128 LIF -> 10 classes per frame."""

    def __init__(self, hidden: int = 128):
        super().__init__()
        self.quant = L.InputQuantizer()  # scale calibrated from the training data below
        self.fc1, self.lif1 = L.Linear(8, hidden), L.Leaky(beta=0.9, threshold=0.5)
        self.fc2, self.lif2 = L.Linear(hidden, hidden), L.Leaky(beta=0.9, threshold=0.5)
        self.fc3 = L.Linear(hidden, 10)

    def forward(self, x):  # x (batch, time, 8) -> (batch, time, 10)
        x = self.quant(x)
        s1 = self.lif1(self.fc1(x))
        s2 = self.lif2(self.fc2(s1))
        return self.fc3(s2)


def main(out="runs/example_own_mlp", float_epochs=20, qat_epochs=5, samples=50, seed=0, progress=True) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    data = get_dataset("digits")  # (samples, 16 frames, 8 pixels); one image row per 2 frames
    xtr, ytr, xte, yte = data.train.x, data.train.y, data.test.x, data.test.y
    val = (data.val.x, data.val.y)  # picks the epoch kept

    # 1. your model, wrapped: traced once here (an unsupported layer fails now, by name)
    model = LoihiModel(OwnMLP(), frame_shape=(8,), max_len=data.timesteps)
    model.calibrate(xtr)  # input scale: 127 / max |x|
    fit(model, xtr, ytr, val, float_epochs, lr=2e-2, seed=seed, progress=progress)
    float_acc = accuracy(model, xte, yte)

    # 2. quantization-aware fine-tuning: Loihi's integers in the forward, straight-through gradients
    model.set_qat(True)
    fit(model, xtr, ytr, val, qat_epochs, lr=2e-3, seed=seed + 1, progress=progress)
    qat_acc = accuracy(model, xte, yte)

    # 3-5. lower to Loihi integers, NIR and back, Lava and the reference against the integer mode, report
    return deploy_and_check(model, "own MLP", xte, yte, out, float_acc, qat_acc, samples, progress)


if __name__ == "__main__":
    main()
