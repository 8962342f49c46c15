"""scikit-learn's bundled 8x8 handwritten digits as a sequence (no download).

Framing: one image row per frame, each row held for `repeat` consecutive steps so that LIF
neurons (which need several steps of input to charge up) see it long enough; T = 8 * repeat,
F = 8 pixel intensities scaled to [0, 1]. The default repeat=2 gives T = 16, with which
the small spiking model reaches about 97 % (benchmarks/train_accuracy.py).
"""

from __future__ import annotations

import numpy as np
import torch

from lmu2neuro.datasets.sequences import DatasetSplits, TensorSequences
from lmu2neuro.datasets.splits import stratified_indices
from lmu2neuro.core.errors import UserError


def digits_sequences(repeat: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits as x (N, 8*repeat, 8) float32 in [0, 1] and y (N,) int64."""
    from sklearn.datasets import load_digits

    if int(repeat) < 1:
        raise UserError(f"digits option repeat={repeat}: expected an integer >= 1")
    data = load_digits()
    images = torch.from_numpy(data.images.astype(np.float32) / 16.0)  # (N, 8, 8) rows x columns
    x = images.repeat_interleave(int(repeat), dim=1)
    return x, torch.from_numpy(data.target.astype(np.int64))


def load_digits_splits(repeat: int = 2, seed: int = 0, val_fraction: float = 0.1,
                       test_fraction: float = 0.2) -> DatasetSplits:
    """Stratified train/val/test splits of the digits, identical for the same `seed`."""
    x, y = digits_sequences(repeat)
    tr, va, te = stratified_indices(y.numpy(), val_fraction, test_fraction, seed)
    return DatasetSplits(
        train=TensorSequences(x[tr], y[tr]),
        val=TensorSequences(x[va], y[va]),
        test=TensorSequences(x[te], y[te]),
        input_size=8,
        num_classes=10,
        timesteps=x.shape[1],
        class_names=[str(d) for d in range(10)],
    )
