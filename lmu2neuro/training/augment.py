"""The paper's training-time augmentation and loss, applied to a batch of feature sequences.

What the official LMUFormer data loader does for Speech Commands (REFERENCE 1.2; read for facts):
mixup with probability 0.6 per sample (partner drawn uniformly, weight lambda ~ Beta(10, 10), labels
mixed with the same weights), SpecAugment masks (torchaudio ``FrequencyMasking(48)`` and
``TimeMasking(48)`` on 128 mel bins x 128 frames: a width drawn uniformly below 48, a start drawn
uniformly in what is left, the band set to 0), then noise (``x + U(0,1) * u / 10`` with one u ~
U(0,1) per sample) and a time roll by an integer drawn from [-10, 10); the loss is binary
cross-entropy on the logits against the mixed label vectors.

Here, on the features our loaders return:
- mixup mixes feature sequences, not waveforms, and the partner is another sample of the same
  (shuffled) batch rather than any sample of the set;
- the mask widths scale with the input: at most 48/128 of the bins and 48/128 of the frames, so
  the paper's 128 x 128 input gets exactly 48 and 48; masks are set to 0 after our normalisation;
- SpecAugment, noise and roll apply to speech datasets only (``DatasetSplits.speech``): they are
  assumptions about spectrograms. Every dataset gets mixup and the BCE loss.

Every random number comes from a numpy generator seeded by (seed, epoch, batch), for the whole
global batch, so a batch is augmented the same whatever the number of processes that share it
and whatever device trains it, and a resumed run repeats it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

MIXUP_PROBABILITY = 0.6
MIXUP_BETA = 10.0  # lambda ~ Beta(10, 10)
MASK_FRACTION = 48 / 128  # SpecAugment: widths below 48 of 128 bins and of 128 frames
NOISE_SCALE = 0.1
ROLL_FRAMES = 10  # roll by an integer in [-10, 10)


@dataclass(frozen=True)
class Augmentation:
    """What one recipe does to a training batch."""

    mixup: float = 0.0  # probability that a sample is mixed with a partner
    spec_augment: bool = False  # frequency and time masks, noise and time roll (speech only)


def batch_rng(seed: int, epoch: int, batch: int) -> np.random.Generator:
    """The generator of one global batch: the same draws in every process and after a resume."""
    return np.random.default_rng([int(seed), int(epoch), int(batch), 0x6C6D75])


def augment(x: torch.Tensor, y: torch.Tensor, num_classes: int, aug: Augmentation,
            rng: np.random.Generator, speech: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(x (B, T, F), y (B,)) -> (augmented x, target (B, C) label weights summing to 1 per sample).

    Without mixup the target is the one-hot label. Runs on x's device; the draws come from ``rng``.
    """
    n, steps, feats = x.shape
    target = F.one_hot(y, num_classes).to(x.dtype)
    if n == 0:
        return x, target
    x = x.clone()
    if aug.mixup > 0:
        mixed = torch.from_numpy(rng.random(n) < aug.mixup).to(x.device)
        partner = torch.from_numpy(rng.integers(0, n, n)).to(x.device)
        lam = torch.from_numpy(rng.beta(MIXUP_BETA, MIXUP_BETA, n)).to(x.device, x.dtype)
        lam = torch.where(mixed, lam, torch.ones_like(lam))
        x = lam[:, None, None] * x + (1 - lam[:, None, None]) * x[partner]
        target = lam[:, None] * target + (1 - lam[:, None]) * target[partner]
    if aug.spec_augment and speech:
        x = x * _band_keep(rng, n, feats, x)[:, None, :]
        x = x * _band_keep(rng, n, steps, x)[:, :, None]
        noise = torch.from_numpy(rng.random((n, steps, feats))).to(x.device, x.dtype)
        level = torch.from_numpy(rng.random(n)).to(x.device, x.dtype)
        x = x + noise * level[:, None, None] * NOISE_SCALE
        shifts = torch.from_numpy(rng.integers(-ROLL_FRAMES, ROLL_FRAMES, n)).to(x.device)
        # torch.roll per sample: frame t takes frame (t - shift) mod T
        src = (torch.arange(steps, device=x.device)[None, :] - shifts[:, None]) % steps
        x = x.gather(1, src[:, :, None].expand(n, steps, feats))
    return x, target


def _band_keep(rng: np.random.Generator, n: int, size: int, like: torch.Tensor) -> torch.Tensor:
    """(n, size) of 1 with one masked band of 0 per sample (torchaudio's draw: width, then start)."""
    param = MASK_FRACTION * size
    width = rng.random(n) * param
    start = rng.random(n) * (size - width)
    lo, hi = start.astype(np.int64), (start + width).astype(np.int64)
    pos = np.arange(size)[None, :]
    keep = ~((pos >= lo[:, None]) & (pos < hi[:, None]))
    return torch.from_numpy(keep).to(like.device, like.dtype)


def soft_target_bce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the logits against the label weights, summed over the batch and
    averaged over classes (the paper's BCEWithLogitsLoss is the mean over both: divide by B)."""
    per = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return per.mean(dim=1).sum()
