"""Lower the spiking LMUFormer to an ``IntNetwork`` (Loihi integers), and the shared quantization.

One description of the deployable model serves three users, so they cannot drift apart:
``synapse_plan(model)`` lists, per LIF population in topological order, its synaptic inputs
("terms": a source population or the graded input, float weights with one slice per delay tap,
a bias) and the batch norm in front of the neuron. ``quantize_plan`` turns that into Loihi
integers (weights as even 8-bit mantissas with a per-projection exponent, 13-bit bias mantissa
with a 3-bit exponent, a 17-bit threshold mantissa per population, 12-bit decays). Then
``run_plan_qat`` (the fake-quantized float forward with straight-through gradients),
``run_plan_integer`` (``model.integer_forward``: integer arithmetic from ``fixed_point``) and
``lower`` (the ``IntNetwork``) all read the same quantized plan.

Folding, for a population with threshold theta, BN scale s and shift t (running statistics),
neuron input factor g = 1/tau (SpikingJelly's ``v = (1 - g) v + g x``):
    integer weight (float before rounding) = g * s * W / theta * vth   [/ input_scale for the input]
    integer bias (voltage units)           = g * (s * sum(b) + t) / theta * vth * 64
so the integer voltage is ``v_float / theta * vth * 64`` and the spike condition ``v > vth << 6``
is the float ``v > theta``. vth is 1024 (2**17 / vth = 128x headroom for the 24-bit current and
voltage), raised (up to 8192) when a projection's weights are too small for the lowest weight
exponent -8 to keep 8 mantissa bits, and lowered when a weight or the bias would not fit Loihi's
ranges; if no vth >= 1 fits, ``IntNetworkError`` names the population, the value and the limit.

Structure as projections:
- temporal conv of kernel k (causal, left padding) -> k taps, tap j = kernel[..., k-1-j];
- the real-valued residual stream r = sum of conv outputs (the last embedding conv, rpe conv,
  each block's BN(conv1x1(h)) and channel-mixer output conv) feeds every consumer (BN -> LIF)
  as one projection per contributor, with the consumer's BN folded in (linear, hence exact);
- the LMU memory m = sum_k H[:, k] u[t-k], H[:, k] = Abar^k Bbar, is a projection from the
  single neuron u with ``max_len`` taps, scaled by the folded BN(m) scale;
- the head is a readout population (du = 4095, dv = 0, vth = VTH_MAX) that integrates
  Linear(spikes) + bias, scaled by K chosen so that ``max_len`` steps of the largest possible
  input cannot reach the threshold; argmax of its last voltage is argmax of the mean logits.

``Projection.origin`` (plain data for the NIR exporter and reports). Every origin has
``kind``, ``layer`` (the model's module path) and ``scale``: the float value of one integer
weight unit, so that ``weights * 2**weight_exp * scale`` is the float weight with the target's
batch norm folded in, before the neuron's input factor g (for LIF targets scale = theta / (vth g);
for the graded input the weight is per integer input unit, i.e. divided by input_scale; for the
readout scale = 1 / K and the float weight is the head's Linear weight).
- ``{"kind": "dense", ...}``: a 1-tap matrix (Linear or 1x1 conv).
- ``{"kind": "conv", "kernel": k, "causal": true, ...}``: taps = k.
- ``{"kind": "lmu_fir", "order": d, "theta": theta, "dt": 1.0, "taps": max_len,
  "bn_scale": [d floats], ...}``: ``weights[k, i, 0] * 2**weight_exp ~= bn_scale[i] * H[i, k]``
  with H = ``lmu.impulse_response(order, theta, taps)``; the continuous-time memory is
  ``theta dm/dt = A m + B u`` (``lmu.lmu_state_space``), sampled by zero-order hold at dt = 1 step.
Population ``meta`` holds ``{"threshold": theta, "layer": ...}``.

Inputs longer than ``max_len`` steps: the float model's memory covers the whole sequence, the
deployed FIR only ``max_len`` steps back; ``integer_forward`` and QAT mode refuse such inputs
(UserError) so that the integer model and its float twin never silently differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core.errors import UserError
from lmu2neuro.core.intnet import IntNetwork, IntNetworkError, Population, Projection
from lmu2neuro.models.neurons import LoihiLIF, fake_quantize_weights, quantize_bias, ste_round

VTH_TARGET = 1024
# Raised up to this when a projection's weights are so small that their exponent would have to
# go below Lava's -8 (the mantissa would lose bits); 2**17 / 8192 = 16x headroom remains.
VTH_RESOLUTION_MAX = 8192
READOUT_MARGIN = 0.9  # of the readout threshold that the worst-case input may reach


@dataclass
class Term:
    """One synaptic input of a population: weight (taps, out, in), tap j delays by j steps."""

    name: str
    source: str
    weight: torch.Tensor
    bias: torch.Tensor | None
    origin: dict


@dataclass
class PopSpec:
    name: str
    size: int
    terms: list[Term]
    scale: torch.Tensor  # BN scale (size,)
    shift: torch.Tensor  # BN shift (size,)
    neuron: LoihiLIF | None  # None: the readout
    layer: str = ""

    @property
    def readout(self) -> bool:
        return self.neuron is None


@dataclass
class QuantProj:
    term: Term
    w_q: torch.Tensor  # mant * 2**exp with straight-through gradient, integer-current units
    mant: torch.Tensor  # int64 (taps, out, in)
    exp: int
    unit: float  # float value of one integer current unit (see `scale` in the module docstring)


@dataclass
class QuantPop:
    spec: PopSpec
    vth: int
    du: int
    dv: int
    bias_q: torch.Tensor  # bias in integer voltage units, STE
    bias_mant: torch.Tensor
    bias_exp: int
    projs: list[QuantProj] = field(default_factory=list)
    volt_unit: float = 1.0  # float value of one integer voltage unit (theta / (64 vth), or 1 / (64 K))


# -- the plan ----------------------------------------------------------------------------------
def _bn_fold(bn) -> tuple[torch.Tensor, torch.Tensor]:
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


def _conv_taps(conv) -> torch.Tensor:
    """Conv1d weight (out, in, k) -> causal taps (k, out, in), tap j = kernel[..., k-1-j]."""
    return conv.weight.flip(-1).permute(2, 0, 1)


def _dense(w: torch.Tensor) -> torch.Tensor:
    return w.reshape(w.shape[0], -1)[None]


def synapse_plan(model) -> list[PopSpec]:
    """The deployable model as populations and their synaptic terms (float, differentiable)."""
    cfg = model.cfg
    if not cfg.causal:
        raise UserError(
            "model config: field 'causal' is false: the temporal convolutions use 'same' padding and need "
            "future frames; only causal models (causal: true) can be deployed"
        )
    k = cfg.kernel_size
    pops: list[PopSpec] = []
    ones = lambda n: torch.ones(n, dtype=torch.float32)  # noqa: E731

    def conv_term(name, src, conv, layer):
        bias = conv.bias if conv.bias is not None else None
        return Term(name, src, _conv_taps(conv), bias, {"kind": "conv", "kernel": conv.kernel_size[0],
                                                         "causal": True, "layer": layer})

    def lif_pop(name, terms, bn, neuron, layer):
        s, t = _bn_fold(bn)
        pops.append(PopSpec(name, s.shape[0], terms, s, t, neuron, layer))

    src = "input"
    n = len(model.embed_convs)
    last_term = None
    for i in range(n):
        term = conv_term(f"conv{i}", src, model.embed_convs[i], f"embed_convs.{i}")
        lif_pop(f"embed{i}", [term], model.embed_bns[i], model.embed_lifs[i], f"embed_lifs.{i}")
        last_term, src = term, f"embed{i}"
    stream = [last_term, conv_term("rpe", src, model.rpe_conv, "rpe_conv")]
    for b, blk in enumerate(model.blocks):
        p = f"block{b}"
        lif_pop(f"{p}.pre", list(stream), blk.pre_bn, blk.pre_lif, f"blocks.{b}.pre_lif")
        lif_pop(
            f"{p}.u",
            [Term("w_u", f"{p}.pre", _dense(blk.w_u.weight), blk.w_u.bias,
                  {"kind": "dense", "layer": f"blocks.{b}.w_u"})],
            blk.u_bn, blk.u_lif, f"blocks.{b}.u_lif",
        )
        h = blk.memory.impulse(cfg.max_len).to(torch.float32)  # (d, taps)
        lif_pop(
            f"{p}.m",
            [Term("memory", f"{p}.u", h.T[:, :, None], None,
                  {"kind": "lmu_fir", "order": blk.memory.order, "theta": blk.memory.theta, "dt": 1.0,
                   "taps": cfg.max_len, "layer": f"blocks.{b}.memory"})],
            blk.m_bn, blk.m_lif, f"blocks.{b}.m_lif",
        )
        order = blk.memory.order
        wh = blk.w_h.weight
        lif_pop(
            f"{p}.h",
            [Term("w_h_m", f"{p}.m", wh[:, :order][None], blk.w_h.bias, {"kind": "dense", "layer": f"blocks.{b}.w_h"}),
             Term("w_h_x", f"{p}.pre", wh[:, order:][None], None, {"kind": "dense", "layer": f"blocks.{b}.w_h"})],
            blk.h_bn, blk.h_lif, f"blocks.{b}.h_lif",
        )
        ps, pt = _bn_fold(blk.proj_bn)
        stream.append(Term(f"{p}.proj", f"{p}.h", ps[None, :, None] * _dense(blk.proj_conv.weight),
                           ps * blk.proj_conv.bias + pt, {"kind": "dense", "layer": f"blocks.{b}.proj_conv"}))
        lif_pop(f"{p}.fc1", list(stream), blk.fc1_bn, blk.fc1_lif, f"blocks.{b}.fc1_lif")
        lif_pop(
            f"{p}.fc2",
            [Term("fc1_conv", f"{p}.fc1", _dense(blk.fc1_conv.weight), blk.fc1_conv.bias,
                  {"kind": "dense", "layer": f"blocks.{b}.fc1_conv"})],
            blk.fc2_bn, blk.fc2_lif, f"blocks.{b}.fc2_lif",
        )
        stream.append(Term(f"{p}.fc2_conv", f"{p}.fc2", _dense(blk.fc2_conv.weight), blk.fc2_conv.bias,
                           {"kind": "dense", "layer": f"blocks.{b}.fc2_conv"}))
    lif_pop("head", list(stream), model.head_bn, model.head_lif, "head_lif")
    c = cfg.num_classes
    pops.append(PopSpec(
        "readout", c,
        [Term("head", "head", model.head.weight[None], model.head.bias, {"kind": "dense", "layer": "head"})],
        ones(c), torch.zeros(c), None, "head",
    ))
    return pops


# -- quantization ------------------------------------------------------------------------------
def _term_name(pop: PopSpec, term: Term) -> str:
    return f"{pop.name}.{term.name}"


def quantize_plan(model, plan: list[PopSpec] | None = None, quantized: bool = True) -> list[QuantPop]:
    """Loihi integers for every population; the float tensors keep straight-through gradients.

    ``quantized=False`` leaves the float tensors unrounded (the folded float model, for checks).
    """
    cfg = model.cfg
    plan = synapse_plan(model) if plan is None else plan
    g = 1.0 - cfg.beta
    out = []
    for pop in plan:
        # Everything in "per unit of the integer source" and in units of the firing threshold.
        if pop.readout:
            per = 1.0
        else:
            per = g / float(pop.neuron.threshold)
        ws = []
        bias = pop.shift.clone()
        for term in pop.terms:
            w = pop.scale[None, :, None] * term.weight * per
            if term.source == "input":
                w = w / cfg.input_scale
            ws.append(w)
            if term.bias is not None:
                bias = bias + pop.scale * term.bias
        bias = bias * per
        peaks = [float(w.detach().abs().max()) for w in ws]
        bpeak = float(bias.detach().abs().max())
        wlim = fx.WEIGHT_MAX * 2.0 ** 7
        blim = fx.BIAS_MANT_MAX * 2.0 ** fx.BIAS_EXP_MAX
        if pop.readout:
            # K: integer current units per logit; max_len steps of the largest input stay below vth.
            worst = float(sum(w.detach().abs().sum(dim=(0, 2)) for w in ws).add(bias.detach().abs()).max())
            cands = [fx.VTH_MAX * READOUT_MARGIN / (cfg.max_len * max(worst, 1e-30))]
        else:
            smallest = min((p for p in peaks if p > 0), default=0.0)
            want = fx.WEIGHT_MAX * 2.0**-8 / smallest if smallest > 0 else 0.0
            cands = [float(min(max(VTH_TARGET, want), VTH_RESOLUTION_MAX))]
        for term, peak in zip(pop.terms, peaks):
            if peak > 0:
                cands.append(wlim / peak)
        if bpeak > 0:
            cands.append(blim / (64 * bpeak))
        k = min(cands)
        if pop.readout:
            vth = fx.VTH_MAX
        else:
            vth = int(math.floor(k))
            if vth < 1:
                _raise_range(pop, peaks, bpeak, wlim, blim)
            k = float(vth)
        projs = []
        volt_unit = 1.0 / (64.0 * k)
        unit = 1.0 / k
        if not pop.readout:
            theta = float(pop.neuron.threshold)
            volt_unit *= theta
            unit = theta / (k * g)
        for term, w in zip(pop.terms, ws):
            w_q, mant, exp = fake_quantize_weights(w * k)
            if not quantized:
                w_q = w * k
            projs.append(QuantProj(term, w_q, mant, exp, unit))
        b_q, b_mant, b_exp = quantize_bias(bias * k * 64)
        if not quantized:
            b_q = bias * k * 64
        if pop.readout:
            du, dv = fx.DECAY_UNITY - 1, 0
        else:
            du, dv = pop.neuron.du, pop.neuron.dv
        out.append(QuantPop(pop, vth, du, dv, b_q, b_mant, b_exp, projs, volt_unit))
    return out


def _raise_range(pop: PopSpec, peaks: list[float], bpeak: float, wlim: float, blim: float) -> None:
    """IntNetworkError naming the weight or bias that no threshold mantissa >= 1 can hold."""
    limits = [(wlim / p, i) for i, p in enumerate(peaks) if p > 0]
    w_k, w_i = min(limits) if limits else (math.inf, -1)
    if bpeak > 0 and blim / (64 * bpeak) <= w_k:
        raise IntNetworkError(
            f"population '{pop.name}' ({pop.layer}): folded bias of {bpeak:.4g} thresholds per step does not fit the "
            f"bias limit {int(blim)} (13-bit mantissa << 7) at any threshold mantissa >= 1"
        )
    raise IntNetworkError(
        f"projection '{_term_name(pop, pop.terms[w_i])}': folded weight of {peaks[w_i]:.4g} thresholds per "
        f"input unit does not fit the weight limit {int(wlim)} (8-bit mantissa << 7) at any threshold mantissa >= 1"
    )


# -- shared execution helpers ------------------------------------------------------------------
def temporal_conv(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """y[b, t] = sum_j w[j] @ x[b, t - j] for x (B, T, in), w (taps, out, in) -> (B, T, out)."""
    steps = x.shape[1]
    taps = min(w.shape[0], steps)
    w = w[:taps]
    if taps == 1:
        return x @ w[0].T
    kernel = w.flip(0).permute(1, 2, 0)  # (out, in, taps), cross-correlation order
    return F.conv1d(F.pad(x.transpose(1, 2), (taps - 1, 0)), kernel).transpose(1, 2)


def integer_projection(x_int: torch.Tensor, mant: torch.Tensor, exp: int) -> torch.Tensor:
    """Dense/DelayDense in fixed point: shift(sum_j W[j] @ x[t-j], exp), exact in float64."""
    acc = temporal_conv(x_int.to(torch.float64), mant.to(torch.float64))
    return fx.shift_by_exp(acc.round().to(torch.int64), exp)


def quantize_input_int(cfg, x: torch.Tensor) -> torch.Tensor:
    """The deployed input: clip(round(x * input_scale), -128, 127) as int64 (IntNetwork.quantize_input)."""
    return torch.clamp(torch.round(x.to(torch.float64) * cfg.input_scale), -128, 127).to(torch.int64)


def _check_len(model, x):
    from lmu2neuro.models.lmuformer import _check_input

    _check_input(model.cfg, x)
    if x.shape[1] > model.cfg.max_len:
        raise UserError(
            f"model input: {x.shape[1]} frames exceed the deployed LMU's max_len {model.cfg.max_len} "
            "(raise max_len in the model config)"
        )


def run_plan_qat(model, x: torch.Tensor, quantized: bool = True, spikes: dict | None = None) -> torch.Tensor:
    """The fake-quantized float forward: head output per frame (B, T, C), straight-through grads.

    ``quantized=False`` runs the BN-folded float plan instead (no rounding anywhere), which must
    match the layer-by-layer float model in eval mode; ``spikes`` collects each population's spikes.
    """
    _check_len(model, x)
    cfg = model.cfg
    if quantized:
        xq = torch.clamp(ste_round(x * cfg.input_scale), -128, 127)
    else:
        xq = x * cfg.input_scale
    signals = {"input": xq}
    frame = None
    for qp in quantize_plan(model, quantized=quantized):
        acc = 0.0
        for pr in qp.projs:
            acc = acc + temporal_conv(signals[pr.term.source], pr.w_q)
        # Integer current a -> voltage a * 64 units; bias already in voltage units.
        drive = (acc * 64.0 + qp.bias_q) * qp.volt_unit
        if qp.spec.readout:
            frame = drive
        else:
            signals[qp.spec.name] = qp.spec.neuron(drive)
            if spikes is not None:
                spikes[qp.spec.name] = signals[qp.spec.name]
    assert frame is not None
    return frame


@torch.no_grad()
def run_plan_integer(model, x: torch.Tensor) -> dict:
    """model.integer_forward: each population's integer input from fixed-point projections, then
    Lava's bit-accurate LIF (the neuron's integer mode). Scores = readout voltage after the last step."""
    _check_len(model, x)
    signals = {"input": quantize_input_int(model.cfg, x)}
    spikes: dict[str, torch.Tensor] = {}
    scores = trace = None
    for qp in quantize_plan(model):
        a_in = 0
        for pr in qp.projs:
            a_in = a_in + integer_projection(signals[pr.term.source], pr.mant, pr.exp)
        bias = qp.bias_mant.to(torch.int64) << qp.bias_exp
        if qp.spec.readout:
            u = torch.zeros(x.shape[0], qp.spec.size, dtype=torch.int64)
            v = torch.zeros_like(u)
            vs = []
            for t in range(x.shape[1]):
                r = fx.lif_step(u, v, a_in[:, t], qp.du, qp.dv, qp.vth, bias)
                u, v = r.u, r.v
                vs.append(v)
            trace = torch.stack(vs, dim=1)
            scores = trace[:, -1]
            spikes[qp.spec.name] = torch.zeros(trace.shape, dtype=torch.bool)
        else:
            s, _ = qp.spec.neuron.integer_forward(a_in, qp.vth, bias)
            spikes[qp.spec.name] = s
            signals[qp.spec.name] = s.to(torch.int64)
    return {"scores": scores, "spikes": spikes, "readout_trace": trace}


# -- lowering ----------------------------------------------------------------------------------
@torch.no_grad()
def lower(model) -> IntNetwork:
    """The spiking model as an IntNetwork; ``integer_forward(x) == reference.simulate(net, quantize(x))``."""
    from lmu2neuro.models.lmuformer import SpikingLMUFormer

    if not isinstance(model, SpikingLMUFormer):
        raise UserError("model config: only the spiking LMUFormer (spiking: true) can be lowered to Loihi")
    cfg = model.cfg
    pops, projs = [], []
    g = 1.0 - cfg.beta
    for qp in quantize_plan(model):
        spec = qp.spec
        meta = {"layer": spec.layer}
        if not spec.readout:
            meta["threshold"] = float(spec.neuron.threshold)
        pops.append(Population(
            name=spec.name, size=spec.size, du=qp.du, dv=qp.dv, vth=qp.vth,
            bias_mant=qp.bias_mant.numpy().astype(np.int64), bias_exp=qp.bias_exp,
            readout=spec.readout, meta=meta,
        ))
        for pr in qp.projs:
            origin = dict(pr.term.origin)
            origin["scale"] = float(pr.unit)
            if origin["kind"] == "lmu_fir":
                # weights[k, i, 0] * 2**exp ~= bn_scale[i] * H[i, k]
                per = g / float(spec.neuron.threshold) * qp.vth
                origin["bn_scale"] = [float(v) for v in (spec.scale * per)]
            projs.append(Projection(
                name=f"{spec.name}.{pr.term.name}", source=pr.term.source, target=spec.name,
                weights=pr.mant.numpy().astype(np.int64), weight_exp=pr.exp, origin=origin,
            ))
    return IntNetwork(
        input_size=cfg.input_size, input_scale=cfg.input_scale, populations=pops, projections=projs,
        output="readout", meta={"model_config": cfg.to_dict()},
    )
