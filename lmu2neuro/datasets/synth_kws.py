"""A synthetic keyword-spotting set in the Speech Commands layout, spoken by espeak-ng.

Why: the real Speech Commands V2 is 2.3 GB and cannot be fetched everywhere; this makes a small
set with the same folder layout so the whole speech path (fbank, training, export) runs end to
end. Each "speaker" is one espeak-ng voice + variant + speed + pitch combination and says every
word once; sox resamples to 16 kHz mono 16-bit; the clip is trimmed of silence, given a random
gain and placed at a random offset inside 1 s, and Gaussian noise at a random SNR is added.
Validation and test lists hold disjoint sets of speakers, as in the real dataset.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lmu2neuro.core.atomic import atomic_path, write_text
from lmu2neuro.core.errors import UserError

SAMPLE_RATE = 16000
DEFAULT_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd")
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "croak")


@dataclass(frozen=True)
class Speaker:
    voice: str
    variant: str
    speed: int  # words per minute
    pitch: int  # 0..99
    snr_db: float

    @property
    def id(self) -> str:
        key = f"{self.voice}+{self.variant}/{self.speed}/{self.pitch}/{self.snr_db:.1f}"
        return hashlib.sha1(key.encode()).hexdigest()[:8]


def require_tools() -> None:
    """UserError naming the missing program if espeak-ng or sox is not on PATH."""
    for tool, package in (("espeak-ng", "espeak-ng"), ("sox", "sox")):
        if shutil.which(tool) is None:
            raise UserError(f"{tool}: program not found on PATH; install it (e.g. apt-get install {package})")


def make_speakers(n: int, seed: int) -> list[Speaker]:
    """`n` distinct speakers drawn from `seed`."""
    rng = np.random.default_rng(seed)
    speakers: dict[str, Speaker] = {}
    while len(speakers) < n:
        s = Speaker(str(rng.choice(VOICES)), str(rng.choice(VARIANTS)), int(rng.integers(120, 201)),
                    int(rng.integers(25, 76)), float(np.round(rng.uniform(10.0, 30.0), 1)))
        speakers.setdefault(s.id, s)
    return list(speakers.values())


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        raise UserError(f"{cmd[0]} failed (exit {done.returncode}) on {cmd[-1]}: {last}")


def speak(word: str, speaker: Speaker, workdir: Path) -> np.ndarray:
    """The word spoken by `speaker`, resampled by sox to 16 kHz mono, float32 in [-1, 1]."""
    raw, resampled = workdir / "raw.wav", workdir / "16k.wav"
    _run(["espeak-ng", "-v", f"{speaker.voice}+{speaker.variant}", "-s", str(speaker.speed),
          "-p", str(speaker.pitch), "-w", str(raw), word])
    _run(["sox", "-D", "-R", str(raw), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", str(resampled)])
    with wave.open(str(resampled), "rb") as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return data.astype(np.float32) / 32768.0


def place_in_second(audio: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Trim silence, apply a random gain, put the word at a random offset in 1 s and add noise."""
    loud = np.flatnonzero(np.abs(audio) > 0.02 * (np.abs(audio).max() + 1e-9))
    if loud.size:
        audio = audio[loud[0]: loud[-1] + 1]
    audio = audio[:SAMPLE_RATE] * rng.uniform(0.3, 1.0) / (np.abs(audio).max() + 1e-9)
    clip = np.zeros(SAMPLE_RATE, dtype=np.float32)
    offset = int(rng.integers(0, SAMPLE_RATE - len(audio) + 1))
    clip[offset: offset + len(audio)] = audio
    signal_power = float(np.mean(audio**2)) if audio.size else 0.0
    noise_std = np.sqrt(signal_power / (10 ** (snr_db / 10))) if signal_power > 0 else 1e-3
    clip += rng.normal(0.0, noise_std, SAMPLE_RATE).astype(np.float32)
    return np.clip(clip, -1.0, 32767 / 32768)


def write_wav(path: Path, audio: np.ndarray) -> None:
    """16-bit PCM mono 16 kHz wav, written atomically."""
    pcm = np.round(audio * 32768.0).clip(-32768, 32767).astype("<i2")
    with atomic_path(path) as tmp:
        with wave.open(str(tmp), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(SAMPLE_RATE)
            w.writeframes(pcm.tobytes())


def split_speakers(speakers: list[Speaker], seed: int, fraction: float = 0.1):
    """(train, val, test) lists of speaker ids; val and test get at least one speaker each when
    there are 3 or more speakers."""
    ids = [s.id for s in speakers]
    order = list(np.random.default_rng(seed + 1).permutation(len(ids)))
    n_held = max(1, int(round(fraction * len(ids)))) if len(ids) >= 3 else 0
    val = [ids[i] for i in order[:n_held]]
    test = [ids[i] for i in order[n_held: 2 * n_held]]
    train = [ids[i] for i in order[2 * n_held:]]
    return train, val, test


def generate(out, words=DEFAULT_WORDS, per_word: int = 30, seed: int = 0, progress: bool = True) -> dict:
    """Write the set into `out` (created); returns a summary dict (counts per split).

    Each word gets `per_word` clips, one per speaker; speakers are split ~80/10/10 into
    train/validation/test. Deterministic for the same arguments and tool versions.
    """
    require_tools()
    words = [w.strip().lower() for w in words if w and w.strip()]
    bad = [w for w in words if not w.replace("-", "").replace("_", "").isalnum() or w == "_background_noise_"]
    if not words or bad or len(set(words)) != len(words):
        raise UserError(f"--words {','.join(words)}: expected distinct words of letters/digits")
    if per_word < 3:
        raise UserError(f"--per-word {per_word}: expected at least 3 (one speaker each for train, validation, test)")
    from lmu2neuro.core.outdir import LOCK_NAME

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(p.name != LOCK_NAME for p in out.iterdir())):
        # Clips left from an earlier run would silently join the new set.
        raise UserError(f"{out}: exists and is not an empty folder; expected a new --out folder")
    out.mkdir(parents=True, exist_ok=True)
    speakers = make_speakers(per_word, seed)
    _, val_ids, test_ids = split_speakers(speakers, seed)
    val_ids, test_ids = set(val_ids), set(test_ids)
    rng = np.random.default_rng(seed + 2)
    val_list, test_list = [], []
    jobs = [(w, s) for s in speakers for w in words]
    with tempfile.TemporaryDirectory(prefix="synth-kws-") as tmp:
        for word, speaker in tqdm(jobs, desc="synth-kws", unit="clip", disable=None if progress else True):
            rel = f"{word}/{speaker.id}_nohash_0.wav"
            audio = place_in_second(speak(word, speaker, Path(tmp)), speaker.snr_db, rng)
            write_wav(out / rel, audio)
            if speaker.id in val_ids:
                val_list.append(rel)
            elif speaker.id in test_ids:
                test_list.append(rel)
    write_text(out / "validation_list.txt", "".join(f"{r}\n" for r in sorted(val_list)))
    write_text(out / "testing_list.txt", "".join(f"{r}\n" for r in sorted(test_list)))
    return {"out": str(out), "words": words, "clips": len(jobs), "speakers": len(speakers),
            "validation": len(val_list), "testing": len(test_list),
            "training": len(jobs) - len(val_list) - len(test_list)}
