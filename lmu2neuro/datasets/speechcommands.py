"""Speech Commands V2 (or a folder in its layout, e.g. one made by `lmu2neuro synth-kws`).

Layout: `<root>/<word>/<speaker>_nohash_<n>.wav` (16 kHz mono PCM), `<root>/validation_list.txt`
and `<root>/testing_list.txt` listing relative paths (`word/file.wav`); train is every other wav
outside `_background_noise_`. Features are LMUFormer's (see `fbank.speech_features`), computed on
first access and kept in memory for the life of the dataset object.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from lmu2neuro.datasets.sequences import DatasetSplits
from lmu2neuro.datasets.fbank import speech_features
from lmu2neuro.core.errors import UserError

SAMPLE_RATE = 16000
BACKGROUND = "_background_noise_"
LISTS = {"val": "validation_list.txt", "test": "testing_list.txt"}


def read_wav(path: str | Path, expected_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """Read a mono 16-bit PCM wav as float32 in [-1, 1); UserError naming the file if it is not one."""
    path = Path(path)
    try:
        with wave.open(str(path), "rb") as w:
            channels, width, rate, n = w.getnchannels(), w.getsampwidth(), w.getframerate(), w.getnframes()
            raw = w.readframes(n)
    except (wave.Error, EOFError, OSError) as exc:
        raise UserError(f"{path}: not a readable wav file ({exc}); expected 16-bit PCM mono "
                        f"{expected_rate} Hz") from None
    if channels != 1 or width != 2 or rate != expected_rate:
        raise UserError(f"{path}: wav is {channels} channel(s), {8 * width}-bit, {rate} Hz; expected "
                        f"1 channel, 16-bit, {expected_rate} Hz")
    if len(raw) != 2 * n:
        raise UserError(f"{path}: wav data is truncated ({len(raw) // 2} of {n} samples)")
    return torch.from_numpy(np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0)


class SpeechClips(Dataset):
    """Wav files with labels; `(features (T, n_mels) float32, label int)` per item, cached."""

    def __init__(self, files: list[Path], labels: list[int], n_mels: int = 128, target_length: int = 128):
        self.files, self.labels = list(files), list(labels)
        self.n_mels, self.target_length = n_mels, target_length
        self._cache: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i):
        x = self._cache.get(i)
        if x is None:
            x = speech_features(read_wav(self.files[i]), SAMPLE_RATE, self.n_mels, self.target_length)
            self._cache[i] = x
        return x, self.labels[i]


def _read_list(root: Path, name: str) -> set[str]:
    path = root / name
    if not path.is_file():
        raise UserError(f"{path}: split list not found; expected a Speech Commands folder with "
                        f"{LISTS['val']} and {LISTS['test']} (relative paths word/file.wav)")
    entries = set()
    for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if line.count("/") != 1 or not line.endswith(".wav"):
            raise UserError(f"{path}:{lineno}: {line!r} is not a relative path word/file.wav")
        entries.add(line)
    return entries


def load_speechcommands_splits(root, words=None, n_mels: int = 128, target_length: int = 128) -> DatasetSplits:
    """Splits of a Speech Commands-layout folder. `words` (list or comma-separated string) keeps a
    subset of the word folders; class indices follow the sorted word names."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: not a folder; expected a Speech Commands folder (<word>/<file>.wav, "
                        f"{LISTS['val']}, {LISTS['test']})")
    present = sorted(p.name for p in root.iterdir()
                     if p.is_dir() and p.name != BACKGROUND and not p.name.startswith(".") and any(p.glob("*.wav")))
    if not present:
        raise UserError(f"{root}: no word folders with .wav files; expected <root>/<word>/<speaker>_nohash_<n>.wav")
    if words is not None:
        wanted = [w.strip() for w in words.split(",")] if isinstance(words, str) else [str(w) for w in words]
        wanted = [w for w in wanted if w]
        missing = [w for w in wanted if w not in present]
        if missing or not wanted:
            raise UserError(f"{root}: words {missing or wanted} not found; expected some of {', '.join(present)}")
        present = sorted(set(wanted))
    val_list, test_list = _read_list(root, LISTS["val"]), _read_list(root, LISTS["test"])
    overlap = val_list & test_list
    if overlap:
        raise UserError(f"{root / LISTS['test']}: {sorted(overlap)[0]} is also in {LISTS['val']}; "
                        f"expected disjoint lists")
    parts: dict[str, tuple[list[Path], list[int]]] = {k: ([], []) for k in ("train", "val", "test")}
    for label, word in enumerate(present):
        for f in sorted((root / word).glob("*.wav")):
            rel = f"{word}/{f.name}"
            part = "val" if rel in val_list else "test" if rel in test_list else "train"
            parts[part][0].append(f)
            parts[part][1].append(label)
    for part, (files, _) in parts.items():
        if not files:
            raise UserError(f"{root}: the {part} split is empty for words {', '.join(present)}; "
                            f"expected {LISTS['val']}/{LISTS['test']} to list some but not all files")
    return DatasetSplits(
        *(SpeechClips(files, labels, n_mels, target_length) for files, labels in parts.values()),
        input_size=n_mels,
        num_classes=len(present),
        timesteps=target_length,
        class_names=present,
        speech=True,
    )
