"""A spiking model as an ``IntNetwork`` (Loihi integers), and the model's integer mode.

``lower(model)`` reads the model's declared graph through ``models.quantize.quantize_graph`` (the
same quantization its QAT mode trains with) and writes the populations and projections. The
input size, input scale and ``max_len`` come from the LMUFormer's config, or from ``deployment()``
of a traced model (``models.trace.LoihiModel``: any model built from ``models.layers``).
``integer_forward(model, x)`` is the deployed network run by the one integer executor:
``core.executor.execute(lower(model), quantize_input(x))``.

Structure as projections:
- temporal conv of kernel k (causal, left padding) -> k taps, tap j = kernel[..., k-1-j];
- the real-valued residual stream r = sum of conv outputs (the last embedding conv, rpe conv,
  each block's BN(conv1x1(h)) and channel-mixer output conv) feeds every consumer (BN -> LIF)
  as one projection per contributor, with the consumer's BN folded in (linear, hence exact);
- the LMU memory m = sum_k H[:, k] u[t-k], H[:, k] = Abar^k Bbar, is a projection from the
  single neuron u with ``max_len`` taps, scaled by the folded BN(m) scale;
- the head is a readout population (see ``models.quantize``).

``Projection.origin`` (plain data for the NIR exporter and reports). Every origin has
``kind``, ``layer`` (the model's module path) and ``scale``: the float value of one integer
weight unit, so that ``weights * 2**weight_exp * scale`` is the float weight with the target's
batch norm folded in, before the neuron's input factor g (for LIF targets scale = theta / (vth g);
for the graded input the weight is per integer input unit, i.e. divided by input_scale; for the
readout scale = 1 / K and the float weight is the head's Linear weight).
- ``{"kind": "dense", ...}``: a 1-tap matrix (Linear or 1x1 conv).
- ``{"kind": "conv1d" | "conv2d", "layers": [...], ...}``: a convolutional projection
  (``Projection.conv``): the kernel of the per-frame convolution and pooling layers between two
  neuron layers, composed into one (``core.conv.compose``), stored once; ``ann_macs`` (when it
  differs from ``macs()``) counts only the convolution layers' own MACs (pooling none).
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

import numpy as np
import torch

from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core.errors import UserError
from lmu2neuro.core.executor import execute
from lmu2neuro.core.intnet import ALWAYS_ON, IntNetwork, Population, Projection
from lmu2neuro.models.quantize import quantize_graph


def deployment(model) -> dict:
    """What the lowering needs besides the graph: ``input_size``, ``input_scale``, ``max_len`` and
    the network's ``meta``. A model states them in ``deployment()`` (``models.trace.LoihiModel``);
    the LMUFormer in its config."""
    if callable(getattr(model, "deployment", None)) and hasattr(model, "graph"):
        return model.deployment()
    cfg = getattr(model, "cfg", None)
    if not getattr(cfg, "spiking", False) or not hasattr(model, "graph"):
        if cfg is None:
            raise UserError(f"model {type(model).__name__}: not a model lmu2neuro can lower; build it from "
                            "lmu2neuro.models.layers and wrap it in lmu2neuro.models.trace.LoihiModel")
        raise UserError("model config: only the spiking LMUFormer (spiking: true) can be lowered to Loihi")
    return {"input_size": cfg.input_size, "input_scale": cfg.input_scale, "max_len": cfg.max_len,
            "meta": {"model_config": cfg.to_dict()}}


@torch.no_grad()
def lower(model) -> IntNetwork:
    """The spiking model as an IntNetwork (see the module docstring)."""
    dep = deployment(model)
    pops, projs = [], []
    for qp in quantize_graph(model.graph(), dep["input_scale"], dep["max_len"]):
        spec = qp.spec
        meta = {"layer": spec.layer}
        if not spec.readout:
            meta["threshold"] = float(spec.neuron.threshold)
        kw = dict(du=qp.du, dv=qp.dv, bias_mant=qp.bias_mant.numpy().astype(np.int64), bias_exp=qp.bias_exp,
                  meta=meta, shape=spec.shape)
        pops.append(Population.readout_of(spec.name, spec.size, **kw) if spec.readout else Population(
            spec.name, spec.size, vth=qp.vth, reset=getattr(spec.neuron, "reset_mechanism", "zero"),
            refractory=int(getattr(spec.neuron, "refractory", 0)), **kw))
        for pr in qp.projs:
            origin = dict(pr.synapse.origin)
            origin["scale"] = float(pr.unit)
            if origin["kind"] == "lmu_fir":
                # weights[k, i, 0] * 2**exp ~= bn_scale[i] * H[i, k]
                per = spec.gain / float(spec.neuron.threshold) * qp.vth
                origin["bn_scale"] = [float(v) for v in (spec.scale * per)]
            projs.append(Projection(
                name=f"{spec.name}.{pr.synapse.name}", source=pr.synapse.source, target=spec.name,
                weights=pr.mant.numpy().astype(np.int64), weight_exp=pr.exp, origin=origin, conv=pr.synapse.conv,
            ))
    if any(s.source == ALWAYS_ON for s in projs):  # a bias into a synaptic current (models.quantize)
        pops.insert(0, Population.always_on())
    return IntNetwork(
        input_size=dep["input_size"], input_scale=float(dep["input_scale"]), populations=pops, projections=projs,
        output="readout", meta=dep["meta"],
    )


@torch.no_grad()
def integer_forward(model, x: torch.Tensor) -> dict:
    """The deployed integer network on float inputs x (B, T, F), run by the one integer executor:
    dict(scores (B, C) int64, spikes {population: (B, T, n) bool}, readout_trace (B, T, C) int64)."""
    if not hasattr(model, "check_deployable_input"):
        raise UserError("model config: integer_forward needs the spiking model (spiking: true)")
    model.check_deployable_input(x)
    x = x.reshape(x.shape[0], x.shape[1], -1)  # frames with a shape (channels, height, width) as vectors
    net = lower(model)
    r = execute(net, fx.quantize_input(x, net.input_scale))
    return {"scores": r.scores, "spikes": r.spikes, "readout_trace": r.readout_trace}
