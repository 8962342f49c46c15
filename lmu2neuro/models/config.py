"""Model presets and the config that rebuilds a model: plain data, no torch.

Kept apart from ``model`` so that the CLI can list presets and checkpoints can be validated
without importing torch.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from lmu2neuro.core.errors import UserError

# Presets: values may be {"ann": .., "spiking": ..} where the variants differ.
PRESETS: dict[str, dict[str, Any]] = {
    # The official SCv2 models: 1,621,796 (ANN) and 1,689,894 (spiking) trainable parameters.
    # Non-causal 'same' convs as in the paper, so this one is for comparison, not deployment.
    "scv2-paper": dict(
        input_size=128, num_classes=35, dim=256, depth=1, memory_order={"ann": 256, "spiking": 512},
        theta=128.0, max_len=128, kernel_size=3, embed_convs=4, mlp_ratio=4, causal=False,
    ),
    # The same sizes with causal convs: deployable and streamable.
    "scv2": dict(
        input_size=128, num_classes=35, dim=256, depth=1, memory_order={"ann": 256, "spiking": 512},
        theta=128.0, max_len=128, kernel_size=3, embed_convs=4, mlp_ratio=4, causal=True,
    ),
    # Keyword spotting on 128-frame mel features (speechcommands / synth-kws); trains on 2 CPU
    # cores in minutes.
    "kws-small": dict(
        input_size=40, num_classes=12, dim=48, depth=1, memory_order=32, theta=128.0, max_len=128,
        kernel_size=3, embed_convs=2, mlp_ratio=2, causal=True,
    ),
    # The built-in 8x8 digits, one row per frame held `repeat` (2) steps: T = 16, pixels in [0, 1].
    "digits-small": dict(
        input_size=8, num_classes=10, dim=32, depth=1, memory_order=16, theta=16.0, max_len=32,
        kernel_size=3, embed_convs=2, mlp_ratio=2, causal=True,
    ),
    # MNIST-1D (dataset mnist1d): 40 steps of one graded value (unit standard deviation; the
    # input scale maps +-4 standard deviations onto the 8-bit payload). The memory window covers
    # the whole sequence.
    "mnist1d-small": dict(
        input_size=1, num_classes=10, dim=64, depth=1, memory_order=32, theta=40.0, max_len=40,
        kernel_size=3, embed_convs=2, mlp_ratio=2, causal=True, input_scale=32.0,
    ),
    # Sequential / permuted MNIST: 784 steps of one pixel in [0, 1] (theta = 784 as the paper's
    # psMNIST setting, much narrower). Slow on a CPU: every step is a neuron update.
    "mnist-small": dict(
        input_size=1, num_classes=10, dim=32, depth=1, memory_order=64, theta=784.0, max_len=784,
        kernel_size=3, embed_convs=2, mlp_ratio=2, causal=True, input_scale=127.0,
    ),
}


@dataclass
class ModelConfig:
    """Everything that builds a model; ``to_dict`` goes into checkpoints."""

    input_size: int
    num_classes: int
    spiking: bool = True
    dim: int = 64
    depth: int = 1
    memory_order: int = 64
    theta: float = 64.0
    max_len: int = 128  # longest sequence the deployed LMU FIR covers (its number of taps)
    kernel_size: int = 3
    embed_convs: int = 4
    mlp_ratio: int = 4
    causal: bool = True
    threshold: float = 1.0
    lmu_threshold: float = 0.5  # the neuron before the LMU (SpikingJelly v_threshold=0.5)
    tau: float = 2.0  # SpikingJelly LIF: v = (1 - 1/tau) v + x / tau
    surrogate_slope: float = 4.0
    input_scale: float = 32.0  # deployed input: clip(round(x * input_scale), -128, 127)
    preset: str | None = None
    extra: dict = field(default_factory=dict)  # free notes (e.g. dataset frame rate)

    def __post_init__(self):
        ints = ["input_size", "num_classes", "dim", "depth", "memory_order", "max_len", "kernel_size",
                "embed_convs", "mlp_ratio"]
        for name in ints:
            val = getattr(self, name)
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise UserError(f"model config: field '{name}' must be a positive integer, got {val!r}")
        if self.num_classes < 2:
            raise UserError(f"model config: field 'num_classes' must be >= 2, got {self.num_classes}")
        for name in ["theta", "threshold", "lmu_threshold", "surrogate_slope", "input_scale"]:
            val = getattr(self, name)
            if isinstance(val, bool) or not isinstance(val, (int, float)) or not val > 0 or not math.isfinite(val):
                raise UserError(f"model config: field '{name}' must be a positive number, got {val!r}")
            setattr(self, name, float(val))
        if not isinstance(self.tau, (int, float)) or not self.tau >= 1.0:
            raise UserError(f"model config: field 'tau' must be a number >= 1, got {self.tau!r}")
        self.tau = float(self.tau)
        if self.preset is not None and not isinstance(self.preset, str):
            raise UserError(f"model config: field 'preset' must be a preset name or null, got {self.preset!r}")
        if not isinstance(self.extra, dict):
            raise UserError(f"model config: field 'extra' must be a mapping, got {self.extra!r}")
        for name in ["spiking", "causal"]:
            if not isinstance(getattr(self, name), bool):
                raise UserError(f"model config: field '{name}' must be true or false, got {getattr(self, name)!r}")

    @property
    def beta(self) -> float:
        """Voltage keep factor per step."""
        return 1.0 - 1.0 / self.tau

    @classmethod
    def from_preset(
        cls, name: str, input_size: int | None = None, num_classes: int | None = None, spiking: bool = True,
        **overrides,
    ) -> "ModelConfig":
        """A preset's config; input_size/num_classes (if given) and overrides replace its values."""
        if name not in PRESETS:
            raise UserError(f"model preset '{name}' is unknown; expected one of {', '.join(PRESETS)}")
        values = {}
        for key, val in PRESETS[name].items():
            values[key] = val[("spiking" if spiking else "ann")] if isinstance(val, dict) else val
        if input_size is not None:
            values["input_size"] = input_size
        if num_classes is not None:
            values["num_classes"] = num_classes
        values.update(overrides)
        values["spiking"] = spiking
        values["preset"] = name
        return cls.from_dict(values)

    def to_dict(self) -> dict:
        """Plain, JSON-able dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        """Inverse of to_dict; unknown or missing fields raise UserError naming them."""
        if not isinstance(d, dict):
            raise UserError(f"model config: expected a mapping, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UserError(f"model config: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        for req in ("input_size", "num_classes"):
            if d.get(req) is None:
                raise UserError(f"model config: field '{req}' is required")
        return cls(**d)
