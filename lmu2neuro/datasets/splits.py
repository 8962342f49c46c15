"""Deterministic stratified splitting shared by the in-memory datasets."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split


def stratified_indices(labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int):
    """Split indices 0..N-1 into (train, val, test), stratified by label, fixed by `seed`."""
    idx = np.arange(len(labels))
    rest, test = train_test_split(idx, test_size=test_fraction, stratify=labels, random_state=seed)
    val_of_rest = val_fraction / (1.0 - test_fraction)
    train, val = train_test_split(rest, test_size=val_of_rest, stratify=labels[rest], random_state=seed + 1)
    return np.sort(train), np.sort(val), np.sort(test)


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int):
    """Split indices 0..N-1 into (kept, held out), stratified by label, fixed by `seed`."""
    idx = np.arange(len(labels))
    kept, held = train_test_split(idx, test_size=fraction, stratify=labels, random_state=seed)
    return np.sort(kept), np.sort(held)
