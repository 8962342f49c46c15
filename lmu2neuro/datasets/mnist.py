"""MNIST from local IDX files as a pixel sequence (sequential or permuted MNIST).

Reads `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`,
`t10k-labels-idx1-ubyte` (each also accepted gzip-compressed with a `.gz` suffix, and with
`.idx` spelled with a dot as some mirrors do). Each image is 784 steps of 1 feature in [0, 1];
`permuted=True` applies one fixed permutation of the pixels drawn from `permute_seed` (psMNIST).
Validation is a stratified, seeded slice of the training file.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

from lmu2neuro.datasets.sequences import DatasetSplits, TensorSequences
from lmu2neuro.core.errors import UserError

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def _find(root: Path, stem: str) -> Path:
    dotted = stem.replace("-idx", ".idx")
    for name in (stem, stem + ".gz", dotted, dotted + ".gz"):
        if (root / name).is_file():
            return root / name
    raise UserError(f"{root}: MNIST file {stem} (or {stem}.gz) not found; expected the four IDX files "
                    f"{', '.join(FILES.values())}")


def read_idx(path: str | Path, expected_ndim: int) -> np.ndarray:
    """Read one IDX file of unsigned bytes with `expected_ndim` dimensions; UserError if malformed."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as exc:
        raise UserError(f"{path}: cannot read ({exc}); expected an IDX file"
                        f"{' (gzip)' if path.suffix == '.gz' else ''}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise UserError(f"{path}: bad IDX header: expected magic bytes 00 00 08 {expected_ndim:02x}")
    dtype_code, ndim = data[2], data[3]
    if dtype_code != 0x08 or ndim != expected_ndim:
        raise UserError(f"{path}: bad IDX header {data[:4].hex(' ')}: expected 00 00 08 {expected_ndim:02x} "
                        f"(unsigned bytes, {expected_ndim} dimensions)")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise UserError(f"{path}: truncated IDX header: expected {ndim} dimension sizes")
    dims = struct.unpack(f">{ndim}I", data[4:header_len])
    count = int(np.prod(dims))
    if len(data) - header_len != count:
        raise UserError(f"{path}: IDX body has {len(data) - header_len} bytes, expected {count} "
                        f"for shape {tuple(dims)}")
    return np.frombuffer(data, dtype=np.uint8, offset=header_len).reshape(dims)


def _load_pair(root: Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    images_path = _find(root, FILES[f"{part}_images"])
    labels_path = _find(root, FILES[f"{part}_labels"])
    images = read_idx(images_path, 3)
    labels = read_idx(labels_path, 1)
    if len(images) != len(labels):
        raise UserError(f"{labels_path}: {len(labels)} labels, expected {len(images)} to match {images_path.name}")
    if labels.size and labels.max() > 9:
        raise UserError(f"{labels_path}: label {int(labels.max())} found, expected digits 0-9")
    return images, labels


def load_mnist_splits(root, permuted: bool = False, permute_seed: int = 0, seed: int = 0,
                      val_fraction: float = 0.1, limit: int | None = None) -> DatasetSplits:
    """Sequential (784 x 1) or permuted MNIST from the IDX files in `root`.

    `limit` keeps only the first `limit` training and test images (for quick experiments).
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: not a folder; expected a folder holding the MNIST IDX files")
    tr_img, tr_lab = _load_pair(root, "train")
    te_img, te_lab = _load_pair(root, "test")
    if limit is not None:
        tr_img, tr_lab, te_img, te_lab = tr_img[:limit], tr_lab[:limit], te_img[:limit], te_lab[:limit]
    steps = int(np.prod(tr_img.shape[1:]))
    order = np.arange(steps)
    if permuted:
        order = np.random.default_rng(permute_seed).permutation(steps)

    def frames(images: np.ndarray) -> torch.Tensor:
        flat = images.reshape(len(images), -1)[:, order].astype(np.float32) / 255.0
        return torch.from_numpy(flat).unsqueeze(-1)

    x, y = frames(tr_img), torch.from_numpy(tr_lab.astype(np.int64))
    # Stratify when every class can be split; tiny subsets fall back to a seeded shuffle.
    n_val = max(1, int(round(val_fraction * len(y))))
    idx = np.arange(len(y))
    counts = np.bincount(tr_lab, minlength=10)
    if counts.min() >= 2 and n_val >= 10 and len(y) - n_val >= 10:
        from sklearn.model_selection import train_test_split

        tr, va = train_test_split(idx, test_size=n_val, stratify=tr_lab, random_state=seed)
    else:
        perm = np.random.default_rng(seed).permutation(len(y))
        va, tr = perm[:n_val], perm[n_val:]
    tr, va = np.sort(tr), np.sort(va)
    return DatasetSplits(
        train=TensorSequences(x[tr], y[tr]),
        val=TensorSequences(x[va], y[va]),
        test=TensorSequences(frames(te_img), torch.from_numpy(te_lab.astype(np.int64))),
        input_size=1,
        num_classes=10,
        timesteps=steps,
        class_names=[str(d) for d in range(10)],
    )
