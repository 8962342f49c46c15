"""LMUFormer and Spiking LMUFormer (Liu et al., ICLR 2024), configurable, with presets.

Layer by layer as the official code (read for facts; see ../shared/REFERENCE.md 1.2):

LMUFormer (ANN): patch embedding of ``embed_convs`` temporal convs (no bias), each followed by
ReLU then BN, plus a residual temporal conv ("rpe"): ``x = x + rpe(x)``. Per block: token mixer
``u = relu(W_u x)`` (one scalar per step), LMU memory m (order d, window theta),
``h = relu(W_h [m; x])``, 1x1 conv + BN, residual add; channel mixer 1x1 conv D->4D + BN + GELU,
1x1 conv 4D->D + BN + ReLU, residual add. Head: Linear on every frame, mean over frames.

Spiking LMUFormer (membrane shortcut): embedding ``conv0 -> BN -> LIF -> conv1 -> ... ->
conv_last = z``, ``r = z + rpe(LIF(BN(z)))``. Per block: ``a = LIF_0.5(BN(r))``,
``u = LIF(BN(W_u a))``, m = memory(u), ``h = LIF(BN(W_h [LIF(BN(m)); a]))``,
``r = r + BN(conv1x1(h))``; ``r = r + conv(LIF(BN(conv(LIF(BN(r))))))``. Head
``Linear(LIF(BN(r)))`` on every frame, mean over frames. The residual stream r and the memory m
stay real-valued and are consumed only through BN -> LIF, so at deployment they become extra
synaptic input of the consuming neurons (see ``lowering``).

Neurons are ``qat.LoihiLIF`` (snnTorch): SpikingJelly LIF with tau 2 (``v = 0.5 v + 0.5 x``),
hard reset to 0, sigmoid surrogate slope 4; the spike condition is Loihi's strict
``v > threshold`` (SpikingJelly fires at equality too, a difference on a set of measure zero).
Temporal convs are causal (left padding) by default, so the model streams and deploys;
``causal=False`` gives the paper's 'same' padding.

In QAT mode the BN statistics are frozen (the fold uses running statistics, as deployment
does), so train some epochs in float first.

Three ways to run the spiking model: float (training), QAT (``set_qat(True)``: BN folded with
its running statistics, weights/biases/decays fake-quantized exactly as ``lowering.lower``
quantizes them, straight-through gradients) and ``integer_forward`` (the deployed integers).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lmu2neuro.models.config import PRESETS, ModelConfig  # noqa: F401  (re-exported: model.ModelConfig)
from lmu2neuro.core.errors import UserError
from lmu2neuro.models.lmu import LMUMemory
from lmu2neuro.models.neurons import LoihiLIF


# -- helpers -----------------------------------------------------------------------------------
def conv_time(conv: nn.Conv1d, x: torch.Tensor, causal: bool) -> torch.Tensor:
    """A temporal Conv1d on x (B, T, C): causal (left padding k-1) or 'same' (the paper's)."""
    k = conv.kernel_size[0]
    xt = x.transpose(1, 2)
    if causal:
        xt = F.pad(xt, (k - 1, 0))
    else:
        left = (k - 1) // 2
        xt = F.pad(xt, (left, k - 1 - left))
    return conv(xt).transpose(1, 2)


def bn_time(bn: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm1d over channels of x (B, T, C) (statistics over batch and time, as Conv1d BN)."""
    return bn(x.transpose(1, 2)).transpose(1, 2)


def running_mean_over_frames(y: torch.Tensor) -> torch.Tensor:
    """(B, T, C) -> running mean over the first t+1 frames, (B, T, C)."""
    steps = torch.arange(1, y.shape[1] + 1, dtype=y.dtype, device=y.device)
    return torch.cumsum(y, dim=1) / steps[None, :, None]


def _init_linear(module: nn.Module) -> None:
    # The official model initialises Linear layers with trunc_normal(std=0.02) and zero bias.
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


# -- the ANN -----------------------------------------------------------------------------------
class LMUFormer(nn.Module):
    """The non-spiking LMUFormer (ReLU/GELU, BN after the activation in the embedding)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        d, k = cfg.dim, cfg.kernel_size
        chans = [cfg.input_size] + [d] * cfg.embed_convs
        self.embed_convs = nn.ModuleList(nn.Conv1d(chans[i], d, k, bias=False) for i in range(cfg.embed_convs))
        self.embed_bns = nn.ModuleList(nn.BatchNorm1d(d) for _ in range(cfg.embed_convs))
        self.rpe_conv = nn.Conv1d(d, d, k, bias=False)
        self.blocks = nn.ModuleList(_ANNBlock(cfg) for _ in range(cfg.depth))
        self.head = nn.Linear(d, cfg.num_classes)
        _init_linear(self)

    def frame_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Head output on every frame: x (B, T, F) -> (B, T, C)."""
        _check_input(self.cfg, x)
        for conv, bn in zip(self.embed_convs, self.embed_bns):
            x = bn_time(bn, F.relu(conv_time(conv, x, self.cfg.causal)))
        x = x + conv_time(self.rpe_conv, x, self.cfg.causal)
        for blk in self.blocks:
            x = blk(x)
        return self.head(x)

    def per_step_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C): the mean of the head outputs over the first t+1 frames."""
        return running_mean_over_frames(self.frame_logits(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.frame_logits(x).mean(dim=1)

    def set_qat(self, enabled: bool) -> None:
        if enabled:
            raise UserError("model config: QAT needs the spiking model (spiking: true); this is the ANN LMUFormer")

    def integer_forward(self, x):
        raise UserError("model config: integer_forward needs the spiking model (spiking: true)")


class _ANNBlock(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d, order, hidden = cfg.dim, cfg.memory_order, cfg.dim * cfg.mlp_ratio
        self.w_u = nn.Linear(d, 1)
        self.memory = LMUMemory(order, cfg.theta, cfg.max_len)
        self.w_h = nn.Linear(order + d, d)
        self.proj_conv = nn.Conv1d(d, d, 1)
        self.proj_bn = nn.BatchNorm1d(d)
        self.fc1_conv = nn.Conv1d(d, hidden, 1)
        self.fc1_bn = nn.BatchNorm1d(hidden)
        self.fc2_conv = nn.Conv1d(hidden, d, 1)
        self.fc2_bn = nn.BatchNorm1d(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = F.relu(self.w_u(x))[..., 0]
        m = self.memory(u)
        h = F.relu(self.w_h(torch.cat([m, x], dim=-1)))
        x = x + bn_time(self.proj_bn, conv_time(self.proj_conv, h, True))
        y = F.gelu(bn_time(self.fc1_bn, conv_time(self.fc1_conv, x, True)))
        y = F.relu(bn_time(self.fc2_bn, conv_time(self.fc2_conv, y, True)))
        return x + y


def _check_input(cfg: ModelConfig, x: torch.Tensor) -> None:
    if x.ndim != 3 or x.shape[2] != cfg.input_size:
        raise UserError(f"model input: expected shape (batch, frames, {cfg.input_size}), got {tuple(x.shape)}")


# -- the spiking model ---------------------------------------------------------------------------
class _SpikingBlock(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d, order, hidden = cfg.dim, cfg.memory_order, cfg.dim * cfg.mlp_ratio
        lif = lambda th=cfg.threshold: LoihiLIF(0.0, cfg.beta, th, cfg.surrogate_slope)  # noqa: E731
        self.pre_bn, self.pre_lif = nn.BatchNorm1d(d), lif(cfg.lmu_threshold)
        self.w_u = nn.Linear(d, 1)
        self.u_bn, self.u_lif = nn.BatchNorm1d(1), lif()
        self.memory = LMUMemory(order, cfg.theta, cfg.max_len)
        self.m_bn, self.m_lif = nn.BatchNorm1d(order), lif()
        self.w_h = nn.Linear(order + d, d)
        self.h_bn, self.h_lif = nn.BatchNorm1d(d), lif()
        self.proj_conv = nn.Conv1d(d, d, 1)
        self.proj_bn = nn.BatchNorm1d(d)
        self.fc1_bn, self.fc1_lif = nn.BatchNorm1d(d), lif()
        self.fc1_conv = nn.Conv1d(d, hidden, 1)
        self.fc2_bn, self.fc2_lif = nn.BatchNorm1d(hidden), lif()
        self.fc2_conv = nn.Conv1d(hidden, d, 1)

    def forward(self, r: torch.Tensor, gain: float, spikes: dict, prefix: str) -> torch.Tensor:
        a = self.pre_lif(gain * bn_time(self.pre_bn, r))
        u = self.u_lif(gain * bn_time(self.u_bn, self.w_u(a)))
        m = self.memory(u[..., 0])
        ms = self.m_lif(gain * bn_time(self.m_bn, m))
        h = self.h_lif(gain * bn_time(self.h_bn, self.w_h(torch.cat([ms, a], dim=-1))))
        r = r + bn_time(self.proj_bn, conv_time(self.proj_conv, h, True))
        y1 = self.fc1_lif(gain * bn_time(self.fc1_bn, r))
        y2 = self.fc2_lif(gain * bn_time(self.fc2_bn, conv_time(self.fc1_conv, y1, True)))
        for name, s in (("pre", a), ("u", u), ("m", ms), ("h", h), ("fc1", y1), ("fc2", y2)):
            spikes[f"{prefix}.{name}"] = s
        return r + conv_time(self.fc2_conv, y2, True)


class SpikingLMUFormer(nn.Module):
    """The spiking LMUFormer with membrane shortcut (official ``slmu_rnn_ms_conv1d``)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        d, k = cfg.dim, cfg.kernel_size
        chans = [cfg.input_size] + [d] * cfg.embed_convs
        self.embed_convs = nn.ModuleList(nn.Conv1d(chans[i], d, k, bias=False) for i in range(cfg.embed_convs))
        self.embed_bns = nn.ModuleList(nn.BatchNorm1d(d) for _ in range(cfg.embed_convs))
        self.embed_lifs = nn.ModuleList(
            LoihiLIF(0.0, cfg.beta, cfg.threshold, cfg.surrogate_slope) for _ in range(cfg.embed_convs)
        )
        self.rpe_conv = nn.Conv1d(d, d, k, bias=False)
        self.blocks = nn.ModuleList(_SpikingBlock(cfg) for _ in range(cfg.depth))
        self.head_bn = nn.BatchNorm1d(d)
        self.head_lif = LoihiLIF(0.0, cfg.beta, cfg.threshold, cfg.surrogate_slope)
        self.head = nn.Linear(d, cfg.num_classes)
        self.qat = False
        _init_linear(self)

    @property
    def gain(self) -> float:
        """SpikingJelly's input factor 1/tau (v = (1 - 1/tau) v + x / tau)."""
        return 1.0 - self.cfg.beta

    def neurons(self) -> list[LoihiLIF]:
        return [m for m in self.modules() if isinstance(m, LoihiLIF)]

    def set_qat(self, enabled: bool) -> None:
        """Fake-quantized training: BN folded with running statistics, Loihi integers with STE."""
        self.qat = bool(enabled)
        for n in self.neurons():
            n.qat = self.qat

    # -- float path (training) -------------------------------------------------------------
    def frame_logits_float(self, x: torch.Tensor, spikes: dict | None = None) -> torch.Tensor:
        """Head output on every frame (B, T, C), the paper's layer-by-layer float computation."""
        _check_input(self.cfg, x)
        spikes = {} if spikes is None else spikes
        causal, g = self.cfg.causal, self.gain
        s = x
        n = len(self.embed_convs)
        z = None
        for i in range(n):
            z = conv_time(self.embed_convs[i], s, causal)
            s = self.embed_lifs[i](g * bn_time(self.embed_bns[i], z))
            spikes[f"embed{i}"] = s
        r = z + conv_time(self.rpe_conv, s, causal)
        for b, blk in enumerate(self.blocks):
            r = blk(r, g, spikes, f"block{b}")
        hs = self.head_lif(g * bn_time(self.head_bn, r))
        spikes["head"] = hs
        return self.head(hs)

    def frame_logits(self, x: torch.Tensor) -> torch.Tensor:
        if self.qat:
            from lmu2neuro.deploy.lowering import run_plan_qat

            return run_plan_qat(self, x)
        return self.frame_logits_float(x)

    def per_step_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C): the mean of the head outputs over the first t+1 frames (early exit)."""
        return running_mean_over_frames(self.frame_logits(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.frame_logits(x).mean(dim=1)

    def spikes(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every population's float spikes (B, T, n) of the float path."""
        out: dict[str, torch.Tensor] = {}
        self.frame_logits_float(x, out)
        return out

    # -- deployed integers -------------------------------------------------------------------
    @torch.no_grad()
    def integer_forward(self, x: torch.Tensor) -> dict:
        """The deployed integer network, module by module: dict(scores (B, C) int64,
        spikes {population: (B, T, n) bool}, readout_trace (B, T, C) int64)."""
        from lmu2neuro.deploy.lowering import run_plan_integer

        return run_plan_integer(self, x)


def build_model(cfg: ModelConfig) -> nn.Module:
    """The model a config describes: SpikingLMUFormer if cfg.spiking else LMUFormer."""
    if not isinstance(cfg, ModelConfig):
        raise UserError(f"build_model: expected a ModelConfig, got {type(cfg).__name__}")
    return SpikingLMUFormer(cfg) if cfg.spiking else LMUFormer(cfg)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (the figure the paper reports)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
