"""The architectures lmu2neuro builds from a config; adding one is its models file and a line here."""

from __future__ import annotations

from torch import nn

from lmu2neuro.core.errors import UserError
from lmu2neuro.models.config import ModelConfig
from lmu2neuro.models.lmuformer import LMUFormer, SpikingLMUFormer

ARCHITECTURES: dict[str, type[nn.Module]] = {
    "LMUFormer": LMUFormer,
    "SpikingLMUFormer": SpikingLMUFormer,
}


def architecture_of(cfg: ModelConfig) -> str:
    """The registered architecture a config describes."""
    return "SpikingLMUFormer" if cfg.spiking else "LMUFormer"


def build_model(cfg: ModelConfig) -> nn.Module:
    """The model a config describes: SpikingLMUFormer if cfg.spiking else LMUFormer."""
    if not isinstance(cfg, ModelConfig):
        raise UserError(f"build_model: expected a ModelConfig, got {type(cfg).__name__}")
    return ARCHITECTURES[architecture_of(cfg)](cfg)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (the figure the paper reports)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
