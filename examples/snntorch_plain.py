"""A plain snnTorch model, trained without lmu2neuro, deployed on Loihi: quantized after training.

The models below are ordinary snnTorch (snn.Leaky, snn.RLeaky, nn.Linear, nn.Conv2d) with snnTorch's
own defaults (subtract reset, one step late) or reset_mechanism="zero". Train one in float with
snnTorch, save its state_dict, and hand both to lmu2neuro:

    .venv/bin/python examples/snntorch_plain.py            # trains mlp_subtract on digits, ~30 s
    lmu2neuro export --model examples/snntorch_plain.py:mlp_subtract runs/example_snntorch_plain/mlp.pt \\
        --dataset digits -o runs/example_snntorch_plain/mlp.nir

`export --model` imports this file and calls the function (code you chose to run), converts the
layers to lmu2neuro's (same float parameters and reset), calibrates the input scale on the training
inputs and writes the NIR file plus mlp.fidelity.json: the float snnTorch model against the deployed
integers on the test split. Scalar beta is fine here (snnTorch's own export_to_nir needs
beta=torch.full((n,), b)). benchmarks/snntorch_exports.py trains all of them and compares both roads.
"""

from __future__ import annotations

import sys
from pathlib import Path

import snntorch as snn
import torch
from torch import nn

HIDDEN = 128


def _leaky(n, reset: str, per_neuron: bool, **kw):
    # per-neuron tensors (n a size or a shape): what snnTorch's export_to_nir requires (it fails on
    # a scalar beta)
    shape = (n,) if isinstance(n, int) else tuple(n)
    beta = torch.full(shape, 0.9) if per_neuron else 0.9
    return snn.Leaky(beta=beta, threshold=torch.ones(shape) if per_neuron else 1.0, reset_mechanism=reset,
                     init_hidden=True, **kw)


def _mlp(reset: str, per_neuron: bool = True, inputs: int = 8, classes: int = 10) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, HIDDEN), _leaky(HIDDEN, reset, per_neuron),
                         nn.Linear(HIDDEN, classes), _leaky(classes, reset, per_neuron, output=True))


def _rleaky(reset: str, inputs: int = 8, classes: int = 10) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, HIDDEN),
                         snn.RLeaky(beta=torch.full((HIDDEN,), 0.9), threshold=torch.ones(HIDDEN),
                                    linear_features=HIDDEN, reset_mechanism=reset, init_hidden=True),
                         nn.Linear(HIDDEN, classes), _leaky(classes, reset, True, output=True))


def _conv(reset: str, classes: int = 10) -> nn.Sequential:
    # frames (1, 8, 8): the whole image each step; 8 channels of 3 x 3 (nir's Conv2d type check
    # handles square kernels only), stride 2 -> (8, 3, 3)
    return nn.Sequential(nn.Conv2d(1, 8, 3, stride=2), _leaky((8, 3, 3), reset, True), nn.Flatten(),
                         nn.Linear(8 * 9, HIDDEN), _leaky(HIDDEN, reset, True),
                         nn.Linear(HIDDEN, classes), _leaky(classes, reset, True, output=True))


def mlp_zero():
    return _mlp("zero")


def mlp_subtract():
    return _mlp("subtract")


def mlp_scalar_beta():
    return _mlp("subtract", per_neuron=False)


def rleaky_zero():
    return _rleaky("zero")


def rleaky_subtract():
    return _rleaky("subtract")


def conv_zero():
    return _conv("zero")


def conv_subtract():
    return _conv("subtract")


def train(net: nn.Sequential, x: torch.Tensor, y: torch.Tensor, frame, epochs: int = 15, lr: float = 1e-2,
          seed: int = 0, batch: int = 64) -> nn.Sequential:
    """snnTorch's usual loop: one step at a time, cross entropy on the output spike counts."""
    from snntorch import utils

    torch.manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for first in range(0, len(x), batch):
            idx = order[first:first + batch]
            xb = x[idx].reshape(len(idx), x.shape[1], *frame)
            utils.reset(net)
            counts = 0
            for t in range(xb.shape[1]):
                spk, _ = net(xb[:, t])
                counts = counts + spk
            loss = nn.functional.cross_entropy(counts, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


@torch.no_grad()
def accuracy(net: nn.Sequential, x: torch.Tensor, y: torch.Tensor, frame) -> float:
    from snntorch import utils

    utils.reset(net)
    xb = x.reshape(len(x), x.shape[1], *frame)
    counts = sum(net(xb[:, t])[0] for t in range(xb.shape[1]))
    return float((counts.argmax(1) == y).float().mean())


def main(out="runs/example_snntorch_plain") -> int:
    from lmu2neuro.cli import main as cli
    from lmu2neuro.datasets import get_dataset

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    data = get_dataset("digits")
    net = train(mlp_subtract(), data.train.x, data.train.y, (8,))
    print(f"float snnTorch accuracy {accuracy(net, data.test.x, data.test.y, (8,)):.4f}")
    torch.save(net.state_dict(), out / "mlp.pt")
    return cli(["export", "--model", f"{Path(__file__)}:mlp_subtract", str(out / "mlp.pt"), "--dataset", "digits",
                "-o", str(out / "mlp.nir")])


if __name__ == "__main__":
    sys.exit(main())
