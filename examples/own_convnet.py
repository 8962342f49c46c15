"""Your own spiking conv net on Loihi, spike for spike: Conv2d, LIF, sum pooling, Flatten and Linear
from lmu2neuro's layers, trained in float and then quantization-aware (QAT), lowered to Loihi
integers, exported to NIR, run in Lava fixed point and in the reference executor, and reported.

Run: .venv/bin/python examples/own_convnet.py   (about 20 s on one core; writes runs/example_own_convnet/)

Every layer takes whole sequences (batch, time, *frame); Conv2d and the pooling act on every frame
(channels, height, width). Here each 8x8 digit is shown as the same frame for 8 steps. The
deployment keeps each convolution a convolution: the conv projection stores its 3x3 kernel once
(72 weights, not the 32,768 of its dense 512 x 64 matrix), in QAT, the integer mode, NIR and Lava alike.
"""

from pathlib import Path

import torch
from torch import nn

from lmu2neuro.datasets import get_dataset
from lmu2neuro.models import layers as L
from lmu2neuro.models.trace import LoihiModel
from lmu2neuro.pipeline.own_model import accuracy, deploy_and_check, fit


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

    # 3-5. lower to Loihi integers, NIR and back, Lava and the reference against the integer mode, report
    return deploy_and_check(model, "own conv net", xte, yte, out, float_acc, qat_acc, samples, progress)


if __name__ == "__main__":
    main()
