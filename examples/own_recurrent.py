"""Your own recurrent spiking net on Loihi, spike for spike: an RLeaky layer (its own spikes fed back
through a Linear, one step late, as snnTorch's RLeaky) trained in float and then quantization-aware
(QAT), lowered to Loihi integers (the feedback is a projection from the population to itself with a
delay of one step), exported to NIR, run in Lava fixed point and in the reference executor, and
reported.

Run: .venv/bin/python examples/own_recurrent.py   (about 20 s on one core; writes runs/example_own_recurrent/)
"""

from pathlib import Path

import torch
from torch import nn

from lmu2neuro.datasets import get_dataset
from lmu2neuro.models import layers as L
from lmu2neuro.models.trace import LoihiModel
from lmu2neuro.pipeline.own_model import accuracy, deploy_and_check, fit


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

    # 3-5. lower to Loihi integers, NIR and back, Lava and the reference against the integer mode, report
    return deploy_and_check(model, "own recurrent net", xte, yte, out, float_acc, qat_acc, samples, progress)


if __name__ == "__main__":
    main()
