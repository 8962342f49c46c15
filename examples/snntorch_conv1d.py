"""A plain snnTorch 1-D convolutional model with a synaptic current, deployed with `export --model`.

The model (a new user's, trained with plain torch): Conv1d(1 -> 8, k 5, pad 2) -> snn.Synaptic ->
AvgPool1d(2) -> Flatten -> Linear(64, 32) -> snn.Leaky -> Linear(32, 5) -> snn.Leaky, on noisy
chirps (5 classes, 20 steps of a (1, 16) frame). snnTorch's own ``export_to_nir`` cannot write
Conv1d, so ``lmu2neuro export --model FILE.py:FUNCTION STATE_DICT`` is the path for 1-D
convolutions: it converts the model itself, measures each layer's exactness and writes NIR.
The Conv1d's bias enters the Synaptic neuron's current, where it accumulates (1 / (1 - alpha)
times its value at steady state); on Loihi it comes from an always-on helper neuron through a
synapse into that current, so the conversion stays exact.

Run: python examples/snntorch_conv1d.py [--reset zero] [--epochs 40] [--out runs/conv1d]
(writes chirps.npz, trains, saves the state_dict, then exports and simulates through the CLI).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch import nn

STEPS, BINS, CLASSES = 20, 16, 5


def make(reset: str = "subtract") -> nn.Sequential:
    """The model; ``reset`` is snnTorch's reset_mechanism of every neuron layer."""
    import snntorch as snn

    kw = dict(init_hidden=True, reset_mechanism=reset)
    return nn.Sequential(
        nn.Conv1d(1, 8, 5, padding=2), snn.Synaptic(alpha=0.8, beta=0.9, **kw),
        nn.AvgPool1d(2), nn.Flatten(),
        nn.Linear(64, 32), snn.Leaky(beta=0.9, **kw),
        nn.Linear(32, CLASSES), snn.Leaky(beta=0.9, **kw),
    )


def make_zero() -> nn.Sequential:
    return make("zero")


def chirps(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noisy chirps: class c is a bump sweeping across the 16 bins at its own rate and direction,
    from a random start, with noise -> x (n, 20, 1, 16) float32, y (n,) int64."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, n)
    rate = np.array([-0.6, -0.3, 0.0, 0.3, 0.6])[y]
    start = rng.uniform(3, 13, n)
    t = np.arange(STEPS)
    centre = (start[:, None] + rate[:, None] * t[None]) % BINS  # (n, T)
    bins = np.arange(BINS)
    dist = np.minimum(np.abs(bins[None, None] - centre[..., None]), BINS - np.abs(bins[None, None] - centre[..., None]))
    x = np.exp(-0.5 * dist ** 2) + rng.normal(0, 0.35, (n, STEPS, BINS))
    return x[:, :, None, :].astype(np.float32), y.astype(np.int64)


def spike_counts(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The output layer's spikes summed over time (B, classes): snnTorch stepping, one call a step."""
    from snntorch import utils

    utils.reset(model)
    return sum(model(x[:, t]) for t in range(x.shape[1]))


def train(model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int = 40, seed: int = 0) -> nn.Module:
    """Plain torch: cross entropy on the output spike counts, Adam, batches of 64."""
    torch.manual_seed(seed)
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    for _ in range(epochs):
        for idx in torch.randperm(len(xt)).split(64):
            loss = nn.functional.cross_entropy(spike_counts(model, xt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reset", default="subtract", choices=("subtract", "zero"))
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--out", default="runs/conv1d")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    x, y = chirps(1200, seed=1)
    np.savez(out / "chirps.npz", x_train=x[:800], y_train=y[:800], x_test=x[800:], y_test=y[800:])
    torch.manual_seed(0)
    model = train(make(args.reset), x[:800], y[:800], args.epochs)
    torch.save(model.state_dict(), out / "model.pt")
    func = "make" if args.reset == "subtract" else "make_zero"
    from lmu2neuro.cli import main as cli

    data = f"npz:{out / 'chirps.npz'}"
    cli(["export", "--model", f"{Path(__file__).resolve()}:{func}", str(out / "model.pt"), "--dataset", data,
         "-o", str(out / "model.nir")])
    cli(["simulate", str(out / "model.nir"), "--dataset", data, "-o", str(out / "traffic.json")])


if __name__ == "__main__":
    main()
