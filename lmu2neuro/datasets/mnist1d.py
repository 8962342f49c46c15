"""MNIST-1D (Greydanus 2020, arXiv 2011.14439): 10 classes of 40-step 1-D signals, generated here.

The `mnist1d` package (Apache-2.0) makes the data with its own generator,
``mnist1d.data.make_dataset(get_dataset_args())``: 5,000 sequences from ten templates (padded,
dilated, scaled, translated, noised, sheared and resampled to 40 points, seed 42), the first
4,000 for training and the last 1,000 for testing. Its ``get_dataset`` would download a pickle
from GitHub (and unpickle it); this loader never calls it, so nothing is downloaded or unpickled.
Published test accuracies on this split: logistic regression 32 %, MLP 68 %, GRU 91 %, CNN 94 %,
human expert 96 % (the paper's Table 1).

Framing: one signal point per frame (F = 1), each held for `repeat` consecutive steps (default 1:
T = 40) so that LIF neurons can see a point for more than one step if wanted. The generator
centres the whole set and scales it to unit standard deviation. The validation split is a
stratified 10 % of the 4,000 training sequences; the test split is the package's 1,000.
"""

from __future__ import annotations

import functools
import random

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from lmu2neuro.core.errors import UserError
from lmu2neuro.datasets.sequences import DatasetSplits, TensorSequences

# Greydanus 2020, Table 1 (test accuracy on the 1,000 test sequences of the default set).
PUBLISHED_BASELINES = {"logistic regression": 0.32, "MLP": 0.68, "GRU": 0.91, "CNN": 0.94, "human expert": 0.96}


def generate() -> dict[str, np.ndarray]:
    """The default MNIST-1D set from the package's generator: x (4000, 40), y (4000,), x_test, y_test
    (copies of the set made once per process: it takes about two seconds)."""
    return {k: v.copy() for k, v in _generated().items()}


@functools.lru_cache(maxsize=1)
def _generated() -> dict[str, np.ndarray]:
    """The generator reseeds numpy's and Python's global generators (seed 42); their states are put
    back afterwards so that loading the data does not change a training run's randomness."""
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as exc:
        raise UserError(f"dataset 'mnist1d' needs the mnist1d package ({exc}); pip install mnist1d") from None
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    return {k: np.asarray(data[k]) for k in ("x", "y", "x_test", "y_test")}


def load_mnist1d_splits(repeat: int = 1, seed: int = 0, val_fraction: float = 0.1) -> DatasetSplits:
    """Train/val/test splits of MNIST-1D as (T = 40 * repeat, 1) sequences; identical for the same seed."""
    if isinstance(repeat, bool) or not isinstance(repeat, int) or repeat < 1:
        raise UserError(f"mnist1d option repeat={repeat!r}: expected an integer >= 1")
    if not isinstance(val_fraction, (int, float)) or not 0.0 < val_fraction < 1.0:
        raise UserError(f"mnist1d option val_fraction={val_fraction!r}: expected a number between 0 and 1")
    data = generate()
    x = torch.from_numpy(data["x"].astype(np.float32))[:, :, None].repeat_interleave(repeat, dim=1)
    y = torch.from_numpy(data["y"].astype(np.int64))
    x_test = torch.from_numpy(data["x_test"].astype(np.float32))[:, :, None].repeat_interleave(repeat, dim=1)
    y_test = torch.from_numpy(data["y_test"].astype(np.int64))
    # the test split is the package's own, so only validation is carved out of the training part
    tr, va = train_test_split(np.arange(len(y)), test_size=val_fraction, stratify=y.numpy(), random_state=seed)
    tr, va = np.sort(tr), np.sort(va)
    return DatasetSplits(
        train=TensorSequences(x[tr], y[tr]),
        val=TensorSequences(x[va], y[va]),
        test=TensorSequences(x_test, y_test),
        input_size=1,
        num_classes=10,
        timesteps=x.shape[1],
        class_names=[str(d) for d in range(10)],
    )


__all__ = ["generate", "load_mnist1d_splits", "PUBLISHED_BASELINES"]
