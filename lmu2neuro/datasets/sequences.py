"""The in-memory form every loader returns: splits of (x (T, F) float32, y int) sequences."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.utils.data import Dataset


@dataclass
class DatasetSplits:
    """Train/validation/test splits plus the shape facts a model is built from."""

    train: Dataset
    val: Dataset
    test: Dataset
    input_size: int
    num_classes: int
    timesteps: int
    class_names: list[str] = field(default_factory=list)
    # spectrogram frames of speech: the paper's recipe adds SpecAugment, noise and a time roll
    speech: bool = False
    # the shape of one frame before flattening to input_size values (own arrays: e.g. (C, H, W))
    frame_shape: tuple[int, ...] = ()


class TensorSequences(Dataset):
    """Frames held in memory: x (N, T, F) float32, y (N,) int64."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise ValueError(f"expected x (N, T, F) and y (N,), got {tuple(x.shape)} and {tuple(y.shape)}")
        self.x = x.to(torch.float32).contiguous()
        self.y = y.to(torch.int64).contiguous()

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], int(self.y[i])
