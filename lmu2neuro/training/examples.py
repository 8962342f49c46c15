"""The documented training runs, stated once: the README, `lmu2neuro train --help`, the demo and
benchmarks/train_accuracy.py all run these options, so every accuracy quoted names the command
that produced it. Plain data (no torch), so the CLI can print them in --help at once.

Each entry holds ``TrainConfig`` fields (``lmu2neuro.training.recipe``); ``command(name, out)``
renders the same options as an `lmu2neuro train` command line.
"""

from __future__ import annotations

import json

EXAMPLES: dict[str, dict] = {
    # Spiking LMUFormer with Loihi QAT on the built-in 8x8 digits (T = 16): the demo's training.
    "digits": dict(dataset="digits", preset="digits-small", overrides={"dim": 64}, qat=True, epochs=20,
                   batch_size=32, lr=1e-2, lr_step=4),
    # Spiking LMUFormer with Loihi QAT on MNIST-1D (T = 40), generated locally.
    "mnist1d": dict(dataset="mnist1d", preset="mnist1d-small", qat=True, epochs=60, batch_size=64, lr=1e-2),
    # The non-spiking LMUFormer on MNIST-1D with the same options, for comparison.
    "mnist1d-ann": dict(dataset="mnist1d", preset="mnist1d-small", spiking=False, epochs=60, batch_size=64,
                        lr=1e-2),
}

# What each run reached, measured by benchmarks/train_accuracy.py (seed 0, CPU, one thread).
MEASURED: dict[str, str] = {
    "digits": "98.33 % test accuracy in Loihi integer mode (seed 0; 96.67 % with --seed 1)",
    "mnist1d": "95.7 % in Loihi integer mode, 95.0 % in float (seed 0); published CNN 94 %, GRU 91 %",
    "mnist1d-ann": "98.0 % test accuracy, non-spiking (seed 0)",
}

_FLAGS = {"dataset": "--dataset", "preset": "--preset", "epochs": "--epochs", "batch_size": "--batch-size",
          "lr": "--lr", "lr_step": "--lr-step", "recipe": "--recipe", "qat_warmup": "--qat-warmup", "seed": "--seed"}


def command(name: str, out: str, prefix: str = "lmu2neuro train") -> str:
    """The `lmu2neuro train` command line of example ``name`` writing to ``out``."""
    opts = EXAMPLES[name]
    parts = [prefix]
    for key, value in opts.items():
        if key in _FLAGS:
            parts += [_FLAGS[key], str(value)]
        elif key == "overrides":
            parts += [f"--set {k}={json.dumps(v)}" for k, v in value.items()]
        elif key == "dataset_options":
            parts += [f"--data-option {k}={json.dumps(v)}" for k, v in value.items()]
        elif key == "qat":
            parts.append("--qat" if value else "--no-qat")
        elif key == "spiking":
            if not value:
                parts.append("--no-spiking")
        else:
            raise KeyError(f"example {name}: option {key} has no command-line flag here")
    parts += ["--out", out]
    return " ".join(parts)
