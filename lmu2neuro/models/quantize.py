"""A spiking model graph as Loihi integers: batch norm folded, threshold chosen, everything quantized.

``quantize_graph(nodes, ...)`` turns a model's declared graph (``models.graph``) into one
``QuantPop`` per population: weights as even 8-bit mantissas with a per-projection exponent,
13-bit bias mantissa with a 3-bit exponent, a 17-bit threshold mantissa, 12-bit decays, all by the
core's rules (``core.fixed_point``), while the float tensors keep straight-through gradients.
Two users read it, so they cannot drift apart: ``run_qat`` (the fake-quantized float forward the
model trains with in QAT mode) and ``lmu2neuro.deploy.lower`` (the IntNetwork). The integer mode
is the one integer executor run on the lowered network (``lmu2neuro.deploy.integer_forward``).

Folding, for a population with threshold theta, BN scale s and shift t (running statistics),
neuron input factor g = 1/tau (SpikingJelly's ``v = (1 - g) v + g x``):
    integer weight (float before rounding) = g * s * W / theta * vth   [/ input_scale for the input]
    integer bias (voltage units)           = g * (s * sum(b) + t) / theta * vth * 64
so the integer voltage is ``v_float / theta * vth * 64`` and the spike condition ``v > vth << 6``
is the float ``v > theta``. vth is 1024 (2**17 / vth = 128x headroom for the 24-bit current and
voltage), raised (up to 8192) when a projection's weights are too small for the lowest weight
exponent -8 to keep 8 mantissa bits, and lowered when a weight or the bias would not fit Loihi's
ranges; if no vth >= 1 fits, ``IntNetworkError`` names the population, the value and the limit.
A population fed back its own spikes (a recurrent projection, taps [0, W, ...]) is scanned step by
step in QAT (``_scan_recurrent``), as the executor does.
A synapse whose term states a convolution (``Op.geometry``) keeps its kernel (taps, C_out,
C_in // groups, *k): the same fold (per output channel), the same weight exponent rule (the kernel's
largest weight is the matrix's, unless it only ever meets padding), and in QAT the quantized kernel is
applied as a convolution
(``synaptic_sum``), so QAT, the lowered conv projection and the executor see the same integers.
The readout (the head) is a population (du = 4095, dv = 0, vth = VTH_MAX) that integrates its
input, scaled by K chosen so that ``max_len`` steps of the largest possible input cannot reach the
threshold; argmax of its last voltage is argmax of the mean logits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core.conv import ConvGeometry
from lmu2neuro.core.executor import conv_tap_sum, tap_sum
from lmu2neuro.core.intnet import ALWAYS_ON, IntNetworkError, Population
from lmu2neuro.models.graph import INPUT, Node, bn_fold
from lmu2neuro.models.neurons import LoihiLIF

VTH_TARGET = 1024
# Raised up to this when a projection's weights are so small that their exponent would have to
# go below Lava's -8 (the mantissa would lose bits); 2**17 / 8192 = 16x headroom remains.
VTH_RESOLUTION_MAX = 8192
READOUT_MARGIN = 0.9  # of the readout threshold that the worst-case input may reach


# -- fake quantization: the core's rules with a straight-through gradient ---------------------------
def ste_round(x: torch.Tensor) -> torch.Tensor:
    """round() in the forward pass, identity in the backward pass."""
    return x + (torch.round(x) - x).detach()


def fake_quantize_weights(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Float weights in integer-current units -> (mantissa * 2**exp with a straight-through gradient,
    integer mantissa, exp), the mantissa and exp being exactly ``fixed_point.quantize_weights``."""
    mant, exp = fx.quantize_weights(w.detach())
    q = mant.to(w.dtype) * (2.0**exp)
    return w + (q - w).detach(), mant, exp


def fake_quantize_bias(b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Float bias in voltage units (already x 64) -> (mant << exp as float with STE, mant, exp),
    mant and exp being exactly ``fixed_point.quantize_bias``."""
    mant, exp = fx.quantize_bias(b.detach().cpu().numpy())
    mant = torch.from_numpy(mant)
    q = mant.to(b.dtype) * (2.0**exp)
    return b + (q - b).detach(), mant, exp


def fake_quantize_input(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``fixed_point.quantize_input`` with a straight-through gradient."""
    return torch.clamp(ste_round(x * scale), fx.INPUT_MIN, fx.INPUT_MAX)


# -- the graph as populations and their synaptic inputs ------------------------------------------------
@dataclass
class Synapse:
    """One projection into a population: weight (taps, out, in), or with ``conv`` the kernel (taps,
    C_out, C_in // groups, *k); tap j delays by j steps."""

    name: str
    source: str
    weight: torch.Tensor
    bias: torch.Tensor | None
    origin: dict
    conv: ConvGeometry | None = None

    @property
    def size(self) -> int:
        """Target neurons."""
        if self.conv is None:
            return int(self.weight.shape[1])
        return math.prod(self.conv.out_shape(tuple(self.weight.shape)))


# -- a synapse's weights applied: a matrix per tap, or a kernel per tap -------------------------------------
def apply_tap(x: torch.Tensor, w: torch.Tensor, conv: ConvGeometry | None) -> torch.Tensor:
    """One tap on frames x (N, in) -> (N, out): ``x @ w.T``, or the convolution of the kernel w
    (C_out, C_in // groups, *k) over x's frames (differentiable; float)."""
    if conv is None:
        return x @ w.T
    frames = x.reshape(x.shape[0], *conv.in_shape)
    fn = F.conv1d if conv.dims == 1 else F.conv2d
    y = fn(frames, w.to(x.dtype), None, conv.stride, conv.padding, conv.dilation, conv.groups)
    return y.reshape(x.shape[0], -1)


def synaptic_sum(x: torch.Tensor, w: torch.Tensor, conv: ConvGeometry | None) -> torch.Tensor:
    """``executor.tap_sum`` for a dense synapse; for a convolution the same delayed sum over taps
    (``executor.conv_tap_sum``), every tap by a differentiable convolution, x (B, T, in) -> (B, T, out)."""
    if conv is None:
        return tap_sum(x, w)
    return conv_tap_sum(x, range(w.shape[0]), lambda j, frames: apply_tap(frames, w[j], conv),
                        math.prod(conv.out_shape(tuple(w.shape))))


def _per_target(scale: torch.Tensor, w: torch.Tensor, conv: ConvGeometry | None, where: str) -> torch.Tensor:
    """w with each target neuron's row scaled (the folded batch norm); a kernel by output channel,
    which needs one scale for all positions of a channel."""
    if conv is None:
        return scale[None, :, None] * w
    per_channel = scale.reshape(w.shape[1], -1)
    if not bool((per_channel == per_channel[:, :1]).all()):
        raise IntNetworkError(f"projection '{where}': the target's batch norm scale differs between positions of "
                              "one channel; only a per-channel scale folds into a convolution kernel")
    return per_channel[:, 0].reshape(1, -1, *([1] * (w.ndim - 2))) * w


def _row_abs_sums(w: torch.Tensor, conv: ConvGeometry | None) -> torch.Tensor:
    """(targets,): sum of |weights| into each target neuron over all taps (borders exact)."""
    if conv is None:
        return w.abs().sum(dim=(0, 2))
    return conv.row_sums(w.abs().sum(dim=0))


@dataclass
class PopSpec:
    name: str
    size: int
    synapses: list[Synapse]
    scale: torch.Tensor  # folded BN scale (size,)
    shift: torch.Tensor  # folded BN shift (size,)
    neuron: torch.nn.Module | None  # LoihiLIF; None: the readout
    gain: float  # the neuron's input factor g
    layer: str = ""
    shape: tuple[int, ...] | None = None  # the frame the neurons form: (C, L) or (C, H, W), else None

    @property
    def readout(self) -> bool:
        return self.neuron is None


def population_specs(nodes: list[Node]) -> list[PopSpec]:
    """Every node of a spiking graph as a Loihi population with its float synapses (differentiable)."""
    specs = []
    taps: dict[int, tuple] = {}  # a term feeding several nodes is folded once (one autograd path)
    for node in nodes:
        if not (node.body.spiking or node.body.readout):
            raise IntNetworkError(f"node '{node.name}' ({node.layer}): a graded, non-spiking value cannot be a "
                                  "Loihi population; only spiking nodes and the readout deploy")
        synapses = []
        for term in node.terms:
            if id(term) not in taps:
                taps[id(term)] = term.op.taps()
            weights, bias, origin = taps[id(term)]
            convs = term.op.geometry() or [None] * len(weights)
            # a term with convolution parts states each part's own origin (kind, ann_macs)
            each = origin.get("parts") or [{}] * len(weights)
            common = {k: v for k, v in origin.items() if k != "parts"}
            for i, (part, src, w, conv) in enumerate(zip(term.part_names(), term.sources, weights, convs)):
                synapses.append(Synapse(part, src, w, bias if i == 0 else None,
                                        {**common, **each[i], "layer": node.term_layers.get(id(term), "")}, conv))
        size = synapses[0].size
        shape = _frame(node.shape, synapses, size)
        if node.body.spiking:
            bn = node.body.bn
            dev = synapses[0].weight.device
            scale, shift = (torch.ones(size, device=dev), torch.zeros(size, device=dev)) if bn is None else bn_fold(bn)
            specs.append(PopSpec(node.name, size, synapses, scale, shift, node.body.neuron, node.body.gain, node.layer,
                                 shape))
        else:
            specs.append(PopSpec(node.name, size, synapses, torch.ones(size), torch.zeros(size), None, 1.0,
                                 node.layer, shape))
    return specs


def _frame(shape, synapses: list[Synapse], size: int) -> tuple[int, ...] | None:
    """The population's frame: the node's own when it is (C, L) or (C, H, W), else (a flattened
    convolution output, Flatten being the identity) the frame its first convolution makes."""
    if shape is not None and len(shape) in (2, 3) and math.prod(shape) == size:
        return tuple(int(v) for v in shape)
    for syn in synapses:
        if syn.conv is not None:
            return tuple(int(v) for v in syn.conv.out_shape(tuple(syn.weight.shape)))
    return None


# -- quantization ------------------------------------------------------------------------------
@dataclass
class QuantProj:
    synapse: Synapse
    w_q: torch.Tensor  # mant * 2**exp with straight-through gradient, integer-current units
    mant: torch.Tensor  # int64 (taps, out, in), or the kernel's shape
    exp: int
    unit: float  # float value of one integer weight unit (``origin['scale']``: see deploy.lowering)


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


def quantize_graph(nodes: list[Node], input_scale: float, max_len: int, quantized: bool = True) -> list[QuantPop]:
    """Loihi integers for every population; the float tensors keep straight-through gradients.

    ``quantized=False`` leaves the float tensors unrounded (the folded float model, for checks).
    """
    out = []
    for pop in population_specs(nodes):
        # Everything in "per unit of the integer source" and in units of the firing threshold.
        per = 1.0 if pop.readout else pop.gain / float(pop.neuron.threshold)
        ws = []
        bias = pop.shift.clone()
        for syn in pop.synapses:
            w = _per_target(pop.scale, syn.weight, syn.conv, f"{pop.name}.{syn.name}") * per
            if syn.source == INPUT:
                w = w / input_scale
            ws.append(w)
            if syn.bias is not None:
                bias = bias + pop.scale * syn.bias
        bias = bias * per
        synapses = list(pop.synapses)
        if _bias_in_current(pop, bias):
            # the model adds its bias to the synaptic current every step (it decays there with alpha);
            # Loihi's bias enters the voltage: it comes as a synapse from the always-on neuron instead
            synapses.append(Synapse("bias", ALWAYS_ON, bias.reshape(1, -1, 1), None,
                                    {"kind": "dense", "helper": "bias source", "layer": pop.layer}))
            ws.append(bias.reshape(1, -1, 1))
            bias = torch.zeros_like(bias)
        peaks = [float(w.detach().abs().max()) for w in ws]
        bpeak = float(bias.detach().abs().max())
        wlim = fx.WEIGHT_MAX * 2.0 ** 7
        blim = fx.BIAS_MANT_MAX * 2.0 ** fx.BIAS_EXP_MAX
        if pop.readout:
            # K: integer current units per logit; max_len steps of the largest input stay below vth.
            worst = float(sum(_row_abs_sums(w.detach(), syn.conv) for w, syn in zip(ws, synapses))
                          .add(bias.detach().abs()).max())
            cands = [fx.VTH_MAX * READOUT_MARGIN / (max_len * max(worst, 1e-30))]
        else:
            smallest = min((p for p in peaks if p > 0), default=0.0)
            want = fx.WEIGHT_MAX * 2.0**-8 / smallest if smallest > 0 else 0.0
            cands = [float(min(max(VTH_TARGET, want), VTH_RESOLUTION_MAX))]
        for peak in peaks:
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
                _raise_range(pop, synapses, peaks, bpeak, wlim, blim)
            k = float(vth)
        volt_unit = 1.0 / (64.0 * k)
        unit = 1.0 / k
        if not pop.readout:
            theta = float(pop.neuron.threshold)
            volt_unit *= theta
            unit = theta / (k * pop.gain)
        projs = []
        for syn, w in zip(synapses, ws):
            w_q, mant, exp = fake_quantize_weights(w * k)
            projs.append(QuantProj(syn, w_q if quantized else w * k, mant, exp, unit))
        b_q, b_mant, b_exp = fake_quantize_bias(bias * k * 64)
        if not quantized:
            b_q = bias * k * 64
        du, dv = Population.INTEGRATOR if pop.readout else (pop.neuron.du, pop.neuron.dv)
        out.append(QuantPop(pop, vth, du, dv, b_q, b_mant, b_exp, projs, volt_unit))
    return out


def _bias_in_current(pop: PopSpec, bias: torch.Tensor) -> bool:
    """A spiking population whose current keeps part of itself from step to step (alpha > 0, Lava
    du < 4095) and that has a bias: the bias accumulates in the current, worth up to 1 / (1 - alpha)
    times a voltage bias. Without a kept current (du = 4095) both are the same input, and the bias
    stays the neuron's own (13-bit, no helper)."""
    return (not pop.readout and pop.neuron.du != fx.DECAY_UNITY - 1
            and bool((bias.detach() != 0).any()))


def _raise_range(pop: PopSpec, synapses: list[Synapse], peaks: list[float], bpeak: float, wlim: float, blim: float) -> None:
    """IntNetworkError naming the weight or bias that no threshold mantissa >= 1 can hold."""
    limits = [(wlim / p, i) for i, p in enumerate(peaks) if p > 0]
    w_k, w_i = min(limits) if limits else (math.inf, -1)
    if bpeak > 0 and blim / (64 * bpeak) <= w_k:
        raise IntNetworkError(
            f"population '{pop.name}' ({pop.layer}): folded bias of {bpeak:.4g} thresholds per step does not fit the "
            f"bias limit {int(blim)} (13-bit mantissa << 7) at any threshold mantissa >= 1"
        )
    raise IntNetworkError(
        f"projection '{pop.name}.{synapses[w_i].name}': folded weight of {peaks[w_i]:.4g} thresholds per "
        f"input unit does not fit the weight limit {int(wlim)} (8-bit mantissa << 7) at any threshold mantissa >= 1"
    )


def run_qat(nodes: list[Node], x: torch.Tensor, input_scale: float, max_len: int, quantized: bool = True,
            spikes: dict | None = None, voltages: dict | None = None,
            sources: dict | None = None) -> torch.Tensor:
    """The fake-quantized float forward: head output per frame (B, T, C), straight-through grads.

    ``quantized=False`` runs the BN-folded float graph instead (no rounding anywhere), which must
    match the layer-by-layer float model in eval mode; ``spikes`` collects each population's spikes;
    ``voltages`` each spiking population's voltage after every step (B, T, n), in the model's own
    units (its threshold's), every population then stepped (the same spikes as the fused scan);
    ``sources`` {population: spikes (B, T, n)} feeds the populations after it those spikes instead
    of its own (each layer measured on given inputs).
    """
    signals = {INPUT: fake_quantize_input(x, input_scale) if quantized else x * input_scale,
               ALWAYS_ON: x.new_ones(x.shape[0], x.shape[1], 1)}
    frame = None
    for qp in quantize_graph(nodes, input_scale, max_len, quantized=quantized):
        acc = 0.0
        recurrent = []
        for pr in qp.projs:
            if pr.synapse.source == qp.spec.name:
                recurrent.append(pr)
            else:
                src = (sources or {}).get(pr.synapse.source, signals[pr.synapse.source])
                acc = acc + synaptic_sum(src, pr.w_q, pr.synapse.conv)
        # Integer current a -> voltage a * 64 units; bias already in voltage units.
        if qp.spec.readout and not recurrent:
            frame = (acc * 64.0 + qp.bias_q) * qp.volt_unit
            continue
        if recurrent or voltages is not None:
            signals[qp.spec.name] = _scan_recurrent(qp, acc, recurrent, x, voltages)
        else:
            # the whole-sequence scan of any Loihi neuron layer (a layer's own forward takes no bias)
            signals[qp.spec.name] = LoihiLIF.forward(qp.spec.neuron, *_neuron_input(qp, acc))
        if spikes is not None:
            spikes[qp.spec.name] = signals[qp.spec.name]
    assert frame is not None
    return frame


def _neuron_input(qp: QuantPop, acc) -> tuple:
    """(current, voltage bias) of a population as the deployed neuron takes them: its bias enters the
    voltage, as Loihi's does (a bias the model adds to a kept current comes through the always-on
    source instead, ``_bias_in_current``). Where the current keeps nothing (du = 4095) both are the
    same input, and the bias rides on the current: the float operations QAT has always trained with."""
    if qp.du == fx.DECAY_UNITY - 1:
        return (acc * 64.0 + qp.bias_q) * qp.volt_unit, 0.0
    return acc * 64.0 * qp.volt_unit, qp.bias_q * qp.volt_unit


def _scan_recurrent(qp: QuantPop, acc, recurrent: list[QuantProj], x: torch.Tensor,
                    voltages: dict | None = None) -> torch.Tensor:
    """A population fed back its own spikes (tap j acts j steps late, tap 0 is zero), step by step
    with the neuron's ``step``: the float twin of the executor's recurrent loop (``voltages``: its
    voltage after each step is recorded there)."""
    if qp.spec.readout:
        raise IntNetworkError(f"population '{qp.spec.name}': a readout cannot feed itself back")
    steps, n = x.shape[1], qp.spec.size
    if not isinstance(acc, torch.Tensor):
        acc = x.new_zeros(x.shape[0], steps, n)
    neuron = qp.spec.neuron
    state = neuron.init_state(acc[:, 0])
    out: list[torch.Tensor] = []
    volts: list[torch.Tensor] = []
    for t in range(steps):
        a_t = acc[:, t]
        for pr in recurrent:
            for j in range(1, min(pr.w_q.shape[0], t + 1)):
                a_t = a_t + apply_tap(out[t - j], pr.w_q[j], pr.synapse.conv)
        current, bias = _neuron_input(qp, a_t)
        spk, state = neuron.step(current, state, bias)
        out.append(spk)
        volts.append(state[1])
    if voltages is not None:
        voltages[qp.spec.name] = torch.stack(volts, dim=1)
    return torch.stack(out, dim=1)
