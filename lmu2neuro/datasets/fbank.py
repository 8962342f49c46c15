"""Kaldi-style log-mel filterbank features in plain torch (what LMUFormer and AST feed their models).

Matches Kaldi's `compute-fbank-feats` defaults as used by those models: 25 ms frames every
10 ms with snip_edges (a 1 s clip at 16 kHz gives 98 frames), per-frame DC removal,
pre-emphasis 0.97, a symmetric Hanning window, FFT padded to the next power of two, power
spectrum, triangular filters on the Kaldi mel scale (1127 ln(1 + f/700)) from 20 Hz to Nyquist,
natural log floored at float32 epsilon, no dither, no energy term.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch

# Mean and std of AST/LMUFormer's Speech Commands fbank features (REFERENCE 1.2): the model
# sees (x - mean) / (2 * std).
SC_MEAN = -6.845978
SC_STD = 5.5654526


def _mel(f):
    return 1127.0 * torch.log1p(f / 700.0)


@lru_cache(maxsize=8)
def mel_banks(n_mels: int, n_fft: int, sample_rate: int, low_freq: float = 20.0) -> torch.Tensor:
    """Kaldi's triangular mel filters, shape (n_mels, n_fft // 2 + 1); the Nyquist column is zero."""
    n_bins = n_fft // 2
    mel_low, mel_high = _mel(torch.tensor(low_freq, dtype=torch.float64)), _mel(torch.tensor(sample_rate / 2.0, dtype=torch.float64))
    delta = (mel_high - mel_low) / (n_mels + 1)
    b = torch.arange(n_mels, dtype=torch.float64).unsqueeze(1)
    left, center, right = mel_low + b * delta, mel_low + (b + 1) * delta, mel_low + (b + 2) * delta
    mel = _mel(torch.arange(n_bins, dtype=torch.float64) * (sample_rate / n_fft)).unsqueeze(0)
    up = (mel - left) / (center - left)
    down = (right - mel) / (right - center)
    banks = torch.clamp(torch.minimum(up, down), min=0.0)
    return torch.nn.functional.pad(banks, (0, 1)).to(torch.float32)


def kaldi_fbank(wave: torch.Tensor, sample_rate: int = 16000, n_mels: int = 128,
                frame_length_ms: float = 25.0, frame_shift_ms: float = 10.0) -> torch.Tensor:
    """Log-mel filterbank of a mono waveform (float, about [-1, 1]) -> (frames, n_mels) float32.

    A clip shorter than one frame gives zero frames.
    """
    wave = wave.to(torch.float32).flatten()
    wave = wave - wave.mean()
    win = int(sample_rate * frame_length_ms / 1000)
    hop = int(sample_rate * frame_shift_ms / 1000)
    if wave.numel() < win:
        return torch.zeros(0, n_mels)
    frames = wave.unfold(0, win, hop)  # snip_edges: only whole frames
    frames = frames - frames.mean(dim=1, keepdim=True)
    previous = torch.cat([frames[:, :1], frames[:, :-1]], dim=1)
    frames = frames - 0.97 * previous
    frames = frames * torch.hann_window(win, periodic=False)
    n_fft = 1 << math.ceil(math.log2(win))
    power = torch.fft.rfft(frames, n=n_fft).abs().pow(2)
    energies = power @ mel_banks(n_mels, n_fft, sample_rate).T
    return torch.log(torch.clamp(energies, min=torch.finfo(torch.float32).eps))


def speech_features(wave: torch.Tensor, sample_rate: int = 16000, n_mels: int = 128,
                    target_length: int = 128) -> torch.Tensor:
    """LMUFormer's model input: fbank padded with zeros (or cut) to `target_length` frames, then
    normalised (x - SC_MEAN) / (2 * SC_STD), as the reference pipeline does -> (target_length, n_mels)."""
    fb = kaldi_fbank(wave, sample_rate, n_mels)
    if fb.shape[0] < target_length:
        fb = torch.nn.functional.pad(fb, (0, 0, 0, target_length - fb.shape[0]))
    fb = fb[:target_length]
    return (fb - SC_MEAN) / (2 * SC_STD)
