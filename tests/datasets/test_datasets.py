"""Datasets: shapes, determinism, the Speech Commands layout, Kaldi fbank facts, bad input."""

import gzip
import math
import struct
import wave

import numpy as np
import pytest
import torch

from lmu2neuro.datasets import get_dataset
from lmu2neuro.datasets.fbank import SC_MEAN, SC_STD, kaldi_fbank, mel_banks, speech_features
from lmu2neuro.datasets.mnist import read_idx
from lmu2neuro.datasets.speechcommands import read_wav
from lmu2neuro.core.errors import UserError


# ---------- digits ----------

def test_digits_framing_and_stratified_deterministic_split():
    a = get_dataset("digits")
    b = get_dataset("digits")
    assert (a.input_size, a.num_classes, a.timesteps) == (8, 10, 16)
    assert len(a.train) + len(a.val) + len(a.test) == 1797
    x, y = a.test[0]
    assert x.shape == (16, 8) and x.dtype == torch.float32 and 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    # each image row is held for `repeat` consecutive steps
    assert torch.equal(x[0], x[1]) and torch.equal(x[2], x[3]) and not torch.equal(x[1], x[2])
    assert torch.equal(a.test.x, b.test.x) and torch.equal(a.train.y, b.train.y)
    # stratified: every class in every split, in proportion
    for split in (a.train, a.val, a.test):
        counts = torch.bincount(split.y, minlength=10).float()
        assert counts.min() > 0 and counts.max() / counts.min() < 1.5
    assert len(a.test) == 360 and len(a.val) == 180  # 20 % test, 10 % validation
    other = get_dataset("digits", seed=1, repeat=3)
    assert other.timesteps == 24 and not torch.equal(other.test.y, a.test.y)


def test_unknown_dataset_and_bad_options():
    with pytest.raises(UserError, match="expected one of digits"):
        get_dataset("cifar")
    with pytest.raises(UserError, match="repeat"):
        get_dataset("digits", repeat=0)
    with pytest.raises(UserError, match="unexpected keyword"):
        get_dataset("digits", colour=True)
    with pytest.raises(UserError, match="--data-root"):
        get_dataset("mnist")


# ---------- mnist (IDX) ----------

def _write_idx(path, array, gz=False):
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def _mnist_folder(root, n_train=40, n_test=10, gz=False):
    rng = np.random.default_rng(0)
    root.mkdir(exist_ok=True)
    _write_idx(root / "train-images-idx3-ubyte", rng.integers(0, 256, (n_train, 28, 28)), gz)
    _write_idx(root / "train-labels-idx1-ubyte", np.arange(n_train) % 10, gz)
    _write_idx(root / "t10k-images-idx3-ubyte", rng.integers(0, 256, (n_test, 28, 28)), gz)
    _write_idx(root / "t10k-labels-idx1-ubyte", np.arange(n_test) % 10, gz)
    return root


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_sequential_and_permuted(tmp_path, gz):
    root = _mnist_folder(tmp_path / "mnist", gz=gz)
    seq = get_dataset("mnist", root=root)
    assert (seq.input_size, seq.timesteps, seq.num_classes) == (1, 784, 10)
    assert len(seq.train) + len(seq.val) == 40 and len(seq.test) == 10
    images = read_idx(next(root.glob("t10k-images*")), 3)
    x0, y0 = seq.test[0]
    assert x0.shape == (784, 1) and y0 == 0
    assert torch.allclose(x0[:, 0], torch.from_numpy(images[0].reshape(-1) / 255.0).float())
    perm = get_dataset("mnist", root=root, permuted=True, permute_seed=3)
    xp, _ = perm.test[0]
    order = np.random.default_rng(3).permutation(784)
    assert torch.equal(xp[:, 0], x0[order, 0]) and not torch.equal(xp, x0)


def test_mnist_bad_header_names_file(tmp_path):
    root = _mnist_folder(tmp_path / "mnist")
    bad = root / "train-labels-idx1-ubyte"
    bad.write_bytes(bytes([0, 0, 8, 3]) + struct.pack(">3I", 1, 1, 1) + b"\0")
    with pytest.raises(UserError, match=r"train-labels-idx1-ubyte: bad IDX header .*expected 00 00 08 01"):
        get_dataset("mnist", root=root)
    bad.write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 40) + b"\0" * 10)
    with pytest.raises(UserError, match="body has 10 bytes, expected 40"):
        get_dataset("mnist", root=root)
    _write_idx(bad, np.arange(40) % 10)
    assert len(get_dataset("mnist", root=root).test) == 10
    (root / "t10k-images-idx3-ubyte").unlink()
    with pytest.raises(UserError, match="t10k-images-idx3-ubyte"):
        get_dataset("mnist", root=root)
    with pytest.raises(UserError, match="not a folder"):
        get_dataset("mnist", root=tmp_path / "nowhere")


# ---------- fbank ----------

def test_fbank_frame_count_and_tone_lands_in_its_mel_bin():
    sr = 16000
    t = torch.arange(sr) / sr
    f0 = 1000.0
    fb = kaldi_fbank(0.5 * torch.sin(2 * math.pi * f0 * t), sr, n_mels=40)
    assert fb.shape == (98, 40)  # 1 + (16000 - 400) // 160
    mel = lambda f: 1127 * math.log(1 + f / 700)
    lo, hi = mel(20), mel(8000)
    expected_bin = round((mel(f0) - lo) / ((hi - lo) / 41)) - 1
    assert abs(int(fb[50].argmax()) - expected_bin) <= 1
    # log floor: digital silence gives log(float32 eps), not -inf
    silent = kaldi_fbank(torch.zeros(sr), sr, n_mels=40)
    assert torch.allclose(silent, torch.full_like(silent, math.log(torch.finfo(torch.float32).eps)))


def test_mel_banks_are_kaldi_triangles():
    banks = mel_banks(23, 512, 16000)
    assert banks.shape == (23, 257) and torch.all(banks[:, -1] == 0)
    assert float(banks.max()) <= 1.0 and float(banks.min()) == 0.0
    peaks = banks.argmax(dim=1)
    assert torch.all(peaks[1:] > peaks[:-1])  # centres rise with the bin index


def test_speech_features_pad_then_normalise():
    x = speech_features(0.1 * torch.randn(8000), n_mels=32, target_length=60)
    assert x.shape == (60, 32)
    # 0.5 s -> 48 frames; the zero-padded tail is normalised like the reference pipeline
    assert torch.allclose(x[48:], torch.full((12, 32), (0 - SC_MEAN) / (2 * SC_STD)))
    assert speech_features(torch.randn(16000), n_mels=32, target_length=50).shape == (50, 32)


# ---------- speech commands layout ----------

def _wav(path, samples, rate=16000, channels=1, width=2):
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(np.asarray(samples, dtype="<i2").tobytes())


def _sc_folder(root):
    rng = np.random.default_rng(0)
    for word in ("cat", "dog", "bird"):
        for spk in ("aa", "bb", "cc", "dd"):
            _wav(root / word / f"{spk}_nohash_0.wav", rng.integers(-3000, 3000, 16000))
    _wav(root / "_background_noise_" / "white.wav", rng.integers(-3000, 3000, 32000))
    (root / "validation_list.txt").write_text("cat/bb_nohash_0.wav\ndog/bb_nohash_0.wav\nbird/bb_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("cat/cc_nohash_0.wav\ndog/cc_nohash_0.wav\nbird/cc_nohash_0.wav\n"
                                           "sheep/cc_nohash_0.wav\n")
    return root


def test_speechcommands_layout_lists_and_words(tmp_path):
    root = _sc_folder(tmp_path / "sc")
    d = get_dataset("speechcommands", root=root, n_mels=16, target_length=100)
    assert d.class_names == ["bird", "cat", "dog"] and d.num_classes == 3
    assert (len(d.train), len(d.val), len(d.test)) == (6, 3, 3)  # background noise excluded
    assert all("_bb_" not in f.name and "_cc_" not in f.name for f in d.train.files)
    x, y = d.val[1]
    assert x.shape == (100, 16) and d.class_names[y] == "cat"
    expected = speech_features(read_wav(root / "cat" / "bb_nohash_0.wav"), 16000, 16, 100)
    assert torch.equal(x, expected)
    sub = get_dataset("speechcommands", root=root, words="dog,cat", n_mels=16)
    assert sub.class_names == ["cat", "dog"] and len(sub.train) == 4
    synth = get_dataset("synth-kws", root=root, n_mels=16)
    assert synth.class_names == d.class_names


def test_speechcommands_bad_input(tmp_path):
    root = _sc_folder(tmp_path / "sc")
    with pytest.raises(UserError, match="words .*'frog'"):
        get_dataset("speechcommands", root=root, words=["frog"])
    (root / "testing_list.txt").unlink()
    with pytest.raises(UserError, match=r"testing_list.txt: split list not found"):
        get_dataset("speechcommands", root=root)
    with pytest.raises(UserError, match="no word folders"):
        get_dataset("speechcommands", root=tmp_path)
    with pytest.raises(UserError, match="not a folder"):
        get_dataset("speechcommands", root=tmp_path / "missing")


def test_corrupt_and_wrong_format_wavs_name_the_file(tmp_path):
    root = _sc_folder(tmp_path / "sc")
    corrupt = root / "cat" / "aa_nohash_0.wav"
    corrupt.write_bytes(b"RIFF\x00\x00garbage")
    d = get_dataset("speechcommands", root=root, n_mels=16)
    idx = d.train.files.index(corrupt)
    with pytest.raises(UserError, match=r"aa_nohash_0.wav: not a readable wav file.*16-bit PCM mono"):
        d.train[idx]
    _wav(corrupt, np.zeros(16000), rate=8000)
    with pytest.raises(UserError, match=r"8000 Hz; expected 1 channel, 16-bit, 16000 Hz"):
        read_wav(corrupt)


def test_dataset_command_summarises_splits(capsys):
    from lmu2neuro.cli import main

    assert main(["dataset", "digits"]) == 0
    out = capsys.readouterr().out
    assert "train 1257, val 180, test 360" in out and "16 steps x 8 features" in out
    assert main(["dataset", "speechcommands", "--data-root", "/nonexistent/sc"]) == 2
    assert "/nonexistent/sc: not a folder" in capsys.readouterr().err
