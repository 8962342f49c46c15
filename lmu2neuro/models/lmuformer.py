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
synaptic input of the consuming neurons (see ``models.quantize``).

Neurons are ``models.neurons.LoihiLIF`` (snnTorch): SpikingJelly LIF with tau 2 (``v = 0.5 v + 0.5 x``),
hard reset to 0, sigmoid surrogate slope 4; the spike condition is Loihi's strict
``v > threshold`` (SpikingJelly fires at equality too, a difference on a set of measure zero).
Temporal convs are causal (left padding) by default, so the model streams and deploys;
``causal=False`` gives the paper's 'same' padding.

In QAT mode the BN statistics are frozen (the fold uses running statistics, as deployment
does), so train some epochs in float first.

Each model is written once, as its forward over whole sequences (``frame_forward``): torch code
whose synaptic inputs are term calls that state their own taps (``graph.temporal_conv``, the LMU
memory's ``graph.memory``, ``graph.dense_bn`` ...) and whose populations are body calls
(``graph.spiking`` ...). ``graph()`` is found by tracing that forward with the tracer of
``models.tracer`` (``trace_method``; ``graph.nodes_from_trace``), so frame-by-frame streaming, QAT
(``set_qat(True)``: BN folded with its running statistics, weights/biases/decays fake-quantized
exactly as the deployment quantizes them, straight-through gradients) and the lowering to Loihi
integers (``lmu2neuro.deploy``) run the structure the forward computes. The FFT form of the LMU
memory and the temporal convolutions' padding stay inside their term calls (one leaf each), so
nothing the tracer cannot follow is traced through.
"""

from __future__ import annotations

import torch
from torch import nn

from lmu2neuro.core.errors import UserError
from lmu2neuro.models.config import ModelConfig
from lmu2neuro.models.graph import (
    Node,
    activation,
    dense,
    dense_bn,
    identity,
    memory,
    nodes_from_trace,
    readout,
    run,
    spiking,
    temporal_conv,
)
from lmu2neuro.models.lmu import LMUMemory
from lmu2neuro.models.neurons import NEURON_MODULES, LoihiLIF
from lmu2neuro.models.quantize import run_qat
from lmu2neuro.models.tracer import trace_method


def running_mean_over_frames(y: torch.Tensor) -> torch.Tensor:
    """(B, T, C) -> running mean over the first t+1 frames, (B, T, C)."""
    steps = torch.arange(1, y.shape[1] + 1, dtype=y.dtype, device=y.device)
    return torch.cumsum(y, dim=1) / steps[None, :, None]


def check_input(cfg: ModelConfig, x: torch.Tensor) -> None:
    """UserError unless x is (batch, frames, input_size)."""
    if x.ndim != 3 or x.shape[2] != cfg.input_size:
        raise UserError(f"model input: expected shape (batch, frames, {cfg.input_size}), got {tuple(x.shape)}")


# (class, config) -> the traced fx graph of frame_forward: plain structure, the same for every instance
_TRACES: dict = {}


def _init_linear(module: nn.Module) -> None:
    # The official model initialises Linear layers with trunc_normal(std=0.02) and zero bias.
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class _Sequence(nn.Module):
    """What both LMUFormers share: the patch embedding's convs, the graph traced from
    ``frame_forward``, frames averaged for the logits."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        d, k = cfg.dim, cfg.kernel_size
        chans = [cfg.input_size] + [d] * cfg.embed_convs
        self.embed_convs = nn.ModuleList(nn.Conv1d(chans[i], d, k, bias=False) for i in range(cfg.embed_convs))
        self.embed_bns = nn.ModuleList(nn.BatchNorm1d(d) for _ in range(cfg.embed_convs))
        self.rpe_conv = nn.Conv1d(d, d, k, bias=False)

    def frame_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The model over whole sequences, x (B, T, F) -> head output on every frame (B, T, C), written
        with ``models.graph``'s term and body calls."""
        raise NotImplementedError

    def graph(self) -> list[Node]:
        """Populations in topological order, found by tracing ``frame_forward`` (bound to this model's
        modules on every call; the trace itself depends only on the class and the config)."""
        key = (type(self), repr(self.cfg))
        if key not in _TRACES:
            _TRACES[key] = trace_method(self, "frame_forward")
        return nodes_from_trace(self, _TRACES[key])

    def frame_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Head output on every frame: x (B, T, F) -> (B, T, C)."""
        check_input(self.cfg, x)
        return self.frame_forward(x)

    def per_step_logits(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C): the mean of the head outputs over the first t+1 frames (early exit)."""
        return running_mean_over_frames(self.frame_logits(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.frame_logits(x).mean(dim=1)


# -- the ANN -----------------------------------------------------------------------------------
class LMUFormer(_Sequence):
    """The non-spiking LMUFormer (ReLU/GELU, BN after the activation in the embedding)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        self.blocks = nn.ModuleList(_ANNBlock(cfg) for _ in range(cfg.depth))
        self.head = nn.Linear(cfg.dim, cfg.num_classes)
        _init_linear(self)

    def frame_forward(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        src = x
        for i, (conv, bn) in enumerate(zip(self.embed_convs, self.embed_bns)):
            src = activation(temporal_conv(src, conv, cfg.causal, name=f"conv{i}"), "relu", bn, name=f"embed{i}")
        x = activation(identity(src, name="skip") + temporal_conv(src, self.rpe_conv, cfg.causal, name="rpe"),
                       name="x")
        for b, blk in enumerate(self.blocks):
            p = f"block{b}"
            u = activation(dense(x, blk.w_u, name="w_u"), "relu", name=f"{p}.u")
            m = activation(memory(u, blk.memory, cfg.max_len, name="memory"), name=f"{p}.m")
            h = activation(dense([m, x], blk.w_h, [blk.memory.order, cfg.dim], name="w_h"), "relu", name=f"{p}.h")
            xb = activation(identity(x, name="skip") + dense_bn(h, blk.proj_conv, blk.proj_bn, name="proj"),
                            name=f"{p}.x")
            f1 = activation(dense_bn(xb, blk.fc1_conv, blk.fc1_bn, name="fc1"), "gelu", name=f"{p}.fc1")
            f2 = activation(dense_bn(f1, blk.fc2_conv, blk.fc2_bn, name="fc2"), "relu", name=f"{p}.fc2")
            x = activation(identity(xb, name="skip") + identity(f2, name="skip2"), name=f"{p}.out")
        return readout(dense(x, self.head, name="head"), name="readout")

    def set_qat(self, enabled: bool) -> None:
        if enabled:
            raise UserError("model config: QAT needs the spiking model (spiking: true); this is the ANN LMUFormer")


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


class SpikingLMUFormer(_Sequence):
    """The spiking LMUFormer with membrane shortcut (official ``slmu_rnn_ms_conv1d``)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__(cfg)
        d = cfg.dim
        self.embed_lifs = nn.ModuleList(
            LoihiLIF(0.0, cfg.beta, cfg.threshold, cfg.surrogate_slope) for _ in range(cfg.embed_convs)
        )
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

    def frame_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The real-valued residual stream r is a sum of term calls, never passed through a body of its
        own: every consumer (BN -> LIF) takes its contributions as its own synaptic inputs."""
        cfg, g = self.cfg, self.gain
        src, z = x, None
        for i, (conv, bn, lif) in enumerate(zip(self.embed_convs, self.embed_bns, self.embed_lifs)):
            z = temporal_conv(src, conv, cfg.causal, name=f"conv{i}")
            src = spiking(z, bn, lif, g, name=f"embed{i}")
        r = z + temporal_conv(src, self.rpe_conv, cfg.causal, name="rpe")
        for b, blk in enumerate(self.blocks):
            p = f"block{b}"
            a = spiking(r, blk.pre_bn, blk.pre_lif, g, name=f"{p}.pre")
            u = spiking(dense(a, blk.w_u, name="w_u"), blk.u_bn, blk.u_lif, g, name=f"{p}.u")
            m = spiking(memory(u, blk.memory, cfg.max_len, name="memory"), blk.m_bn, blk.m_lif, g, name=f"{p}.m")
            h = spiking(dense([m, a], blk.w_h, [blk.memory.order, cfg.dim], name="w_h", parts=["w_h_m", "w_h_x"]),
                        blk.h_bn, blk.h_lif, g, name=f"{p}.h")
            r = r + dense_bn(h, blk.proj_conv, blk.proj_bn, name=f"{p}.proj")
            f1 = spiking(r, blk.fc1_bn, blk.fc1_lif, g, name=f"{p}.fc1")
            f2 = spiking(dense(f1, blk.fc1_conv, name="fc1_conv"), blk.fc2_bn, blk.fc2_lif, g, name=f"{p}.fc2")
            r = r + dense(f2, blk.fc2_conv, name=f"{p}.fc2_conv")
        head = spiking(r, self.head_bn, self.head_lif, g, name="head")
        return readout(dense(head, self.head, name="head"), name="readout")

    def neurons(self) -> list[LoihiLIF]:
        return [m for m in self.modules() if isinstance(m, NEURON_MODULES)]

    def set_qat(self, enabled: bool) -> None:
        """Fake-quantized training: BN folded with running statistics, Loihi integers with STE."""
        self.qat = bool(enabled)
        for n in self.neurons():
            n.qat = self.qat

    def check_deployable_input(self, x: torch.Tensor) -> None:
        """UserError unless x fits the deployed network: the FIR memory covers ``max_len`` steps, so
        longer inputs would make the integer model and its float twin silently differ."""
        check_input(self.cfg, x)
        if x.shape[1] > self.cfg.max_len:
            raise UserError(
                f"model input: {x.shape[1]} frames exceed the deployed LMU's max_len {self.cfg.max_len} "
                "(raise max_len in the model config)"
            )

    def frame_logits(self, x: torch.Tensor) -> torch.Tensor:
        if self.qat:
            self.check_deployable_input(x)
            return run_qat(self.graph(), x, self.cfg.input_scale, self.cfg.max_len)
        return super().frame_logits(x)

    def frame_logits_float(self, x: torch.Tensor, spikes: dict | None = None) -> torch.Tensor:
        """Head output on every frame (B, T, C) of the float graph, whatever the QAT mode."""
        check_input(self.cfg, x)
        return run(self.graph(), x, spikes)

    def spikes(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every population's float spikes (B, T, n) of the float path."""
        out: dict[str, torch.Tensor] = {}
        self.frame_logits_float(x, out)
        return out
