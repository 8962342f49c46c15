"""Operation counts per layer from a traffic record and the deployed IntNetwork.

Definitions follow NeuroBench (Yik et al. 2023/2025) where it has one:
- Dense: NeuroBench's "Dense" synaptic operations (neurobench/metrics/workload/synaptic_operations.py
  with metrics/utils/layers/macs.py: every Linear / Conv layer is run once per time step as a copy
  with all-one weights on an all-one input, bias excluded, and its outputs summed), so per step:
  ``Projection.macs`` (a dense projection's weights incl. zeros, all delay taps; a convolution's
  kernel at every output position, padded positions excluded as zero padding adds zeros:
  ``core.conv.ConvGeometry.macs``, the one definition), or for a projection folded from several
  layers (a pooling after a convolution) the source layers' own MACs (``origin["ann_macs"]``,
  counted by the same rule, whichever path lowered them); times T steps. A projection made only
  of pooling, or an identity skip, has ``ann_macs`` 0 (NeuroBench counts no MACs for pooling and
  none for a connection that is no layer), so per projection Dense can be below the effective
  (spike-driven) count.
- ANN baseline: the same network without spikes, as an ANN runs it: one pass per distinct input
  frame, so ONE pass for a static input presented for T steps (the traffic's ``static`` flag:
  every step's input identical) in a network without recurrence; T passes otherwise (a varying
  input, or a projection from a population to itself, whose state an ANN must also step T
  times).
- Effective MACs / ACs: synaptic operations with a nonzero input and a nonzero weight. A
  projection counts as ACs only if all its inputs are binary spikes; graded inputs (the analog
  first layer, a graded LMU memory) count as MACs, but an input whose every value is 0 or 1
  (the traffic's `binary` flag on the input layer) is spikes, so ACs. Bias is not counted.
- Activation sparsity: 1 - spikes / (neurons x steps) over the spiking populations.
- Footprint: bytes of the weights actually stored (a convolution's kernel once, all taps, incl.
  zeros) and bias mantissas at their stored widths.
Beyond NeuroBench, per layer: neuron updates (neurons x steps), spikes sent, firing rate.
Every figure is per inference (one sample of `timesteps` frames): traffic totals / samples.

Two kinds of count, kept apart (docs/counting.md):
(a) the model's own compute, as its author wrote it (``Counts.neurobench``, NeuroBench's key names):
    a synapse or population a conversion added (``Projection.helper`` / ``Population.helper``: a
    reset self connection, a spike-count readout, a bias source) counts nothing here, and a pooling
    folded into a matrix counts as the pooling (``origin["ann_macs"]``). Dense and the ANN baseline
    are (a); conventional baselines use them.
(b) the chip's work: every synaptic event the deployed network performs, helpers included and
    named (``ProjectionCount.helper``, ``totals["helper_synaptic_ops"]``). Loihi energy and time use (b).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core.errors import UserError
from lmu2neuro.core.intnet import IntNetwork
from lmu2neuro.analysis.traffic import check_traffic_matches, required_field

BIAS_BITS = 13  # Loihi bias mantissa


@dataclass
class ProjectionCount:
    name: str
    source: str
    target: str
    graded: bool
    taps: int
    weights: int  # stored: a convolution's kernel once, all entries incl. zeros and taps
    nonzero_weights: int
    weight_bits: int
    synaptic_ops: float  # per inference: nonzero input x nonzero fan-out
    dense_macs: float  # per inference: NeuroBench Dense per step x steps
    ops_per_step: list[float]  # per inference, by frame (sums to synaptic_ops)
    synapses: int = 0  # nonzero connections over taps (a convolution's at every position)
    ann_macs_per_step: float = 0.0  # NeuroBench Dense of one step (0 for a helper)
    helper: str | None = None  # what a conversion added it for; None: the model's own
    model_weights: int = 0  # the author's layer weights it holds (0 for a helper or a pooling)
    nonzero_model_weights: int = 0
    model_biases: int = 0  # the author's layers' bias parameters, where the tracer recorded them


@dataclass
class LayerCount:
    name: str
    kind: str  # "lif" or "readout"
    neurons: int
    steps: int
    neuron_updates: float  # per inference
    spikes: float  # per inference, spikes sent
    firing_rate: float  # spikes per neuron per step
    acs: float  # per inference, into this layer
    macs: float
    dense_macs: float
    footprint_bytes: int
    spikes_per_step: list[float]  # per inference, by frame
    helper: str | None = None  # a population a conversion added (e.g. "bias source")

    @property
    def synaptic_ops(self) -> float:
        return self.acs + self.macs


@dataclass
class Counts:
    samples: int
    timesteps: int
    layers: list[LayerCount]
    projections: list[ProjectionCount]
    input_nonzero_per_step: list[float] = field(default_factory=list)
    static_input: bool = False  # every step's input identical (the traffic's input flag)
    recurrent: bool = False  # some projection's source is its target: an ANN steps it T times too

    def layer(self, name: str) -> LayerCount:
        for lay in self.layers:
            if lay.name == name:
                return lay
        raise KeyError(name)

    @property
    def totals(self) -> dict:
        """NeuroBench-style totals per inference."""
        spiking = [lay for lay in self.layers if lay.kind != "readout"]
        slots = sum(lay.neurons * lay.steps for lay in spiking)
        spikes = sum(lay.spikes for lay in spiking)
        per_step = sum(p.ann_macs_per_step for p in self.projections)
        passes = 1 if self.static_input and not self.recurrent else self.timesteps
        return {
            "dense": sum(p.dense_macs for p in self.projections),
            "ann_passes": passes,
            "ann_baseline_macs": per_step * passes,
            "effective_macs": sum(p.synaptic_ops for p in self.projections if p.graded),
            "effective_acs": sum(p.synaptic_ops for p in self.projections if not p.graded),
            "neuron_updates": sum(lay.neuron_updates for lay in self.layers),
            "spikes": sum(lay.spikes for lay in self.layers),
            "activation_sparsity": 1.0 - spikes / slots if slots else None,
            "footprint_bytes": sum(lay.footprint_bytes for lay in self.layers),
            # (b) the chip's work: every synaptic event, and the part of it helpers cause
            "chip_synaptic_ops": sum(p.synaptic_ops for p in self.projections),
            "helper_synaptic_ops": sum(p.synaptic_ops for p in self.projections if p.helper),
            "helper_synaptic_ops_by_kind": _by_helper(self.projections),
        }

    @property
    def neurobench(self) -> dict:
        """(a) The model's own compute per inference under NeuroBench's names (neurobench 2.3;
        docs/counting.md says where each differs from running neurobench on the float model)."""
        own = [p for p in self.projections if not p.helper]
        spiking = [lay for lay in self.layers if lay.kind != "readout" and not lay.helper]
        slots = sum(lay.neurons * lay.steps for lay in spiking)
        spikes = sum(lay.spikes for lay in spiking)
        # a recurrent layer acts on the step before: a spike in the last step feeds no call of it
        eff = {p.name: p.synaptic_ops - (p.ops_per_step[-1] if p.source == p.target and p.ops_per_step else 0.0)
               for p in own if p.ann_macs_per_step > 0}
        layers = [p for p in own if p.ann_macs_per_step > 0]  # NeuroBench's connection layers
        weights = sum(p.model_weights for p in layers)
        biases = sum(p.model_biases for p in layers)
        return {
            "SynapticOperations": {
                "Effective_MACs": sum(eff[p.name] for p in layers if p.graded),
                "Effective_ACs": sum(eff[p.name] for p in layers if not p.graded),
                "Dense": sum(p.dense_macs for p in own),
            },
            "ActivationSparsity": 1.0 - spikes / slots if slots else 0.0,
            "MembraneUpdates": float(slots),
            "ParameterCount": weights + biases,
            "ConnectionSparsity": 1.0 - sum(p.nonzero_model_weights for p in layers) / weights if weights else 0.0,
            "Footprint": sum(lay.footprint_bytes for lay in self.layers if not lay.helper),
        }

    def to_dict(self) -> dict:
        return {"samples": self.samples, "timesteps": self.timesteps, "static_input": self.static_input,
                "recurrent": self.recurrent,
                "neurobench": self.neurobench,
                "totals": self.totals,
                "layers": [asdict(x) for x in self.layers], "projections": [asdict(p) for p in self.projections]}


def count_operations(traffic: dict, net: IntNetwork, source: str = "traffic") -> Counts:
    """Per-layer and per-projection operation counts per inference (see the module docstring).

    Spike-driven synaptic ops are recomputed from the traffic's per-neuron spike counts and the
    network's fan-out and checked against the traffic's own `synaptic_events`; ops driven by the
    graded input come from the traffic (they need per-input nonzero counts, which only it has).
    """
    check_traffic_matches(traffic, net, source)
    samples = int(required_field(traffic, "samples", "traffic", source))
    steps = int(required_field(traffic, "timesteps", "traffic", source))
    if samples < 1 or steps < 1:
        raise UserError(f"{source}: fields 'samples' and 'timesteps' must be positive, got {samples}, {steps}")
    tl = {lay["name"]: lay for lay in traffic["layers"]}
    tp = {p["name"]: p for p in traffic["projections"]}

    def per_step(lay: dict, key: str) -> np.ndarray:
        v = lay.get(key)
        if v is None or len(v) != steps:
            raise UserError(f"{source}: field 'layers.{lay['name']}.{key}' missing or not {steps} values")
        return np.asarray(v, dtype=np.float64) / samples

    inp = tl.get(net.input_name, {"name": net.input_name})
    input_steps = per_step(inp, "nonzero_inputs_per_step") if "nonzero_inputs_per_step" in inp else np.zeros(steps)

    pops, projs = net.on_chip()
    projections: list[ProjectionCount] = []
    for proj in projs:
        t = tp[proj.name]
        # The simulator knows whether the input was graded: trust its flag, except for an input of
        # binary spikes (every value 0 or 1), whose ops NeuroBench counts as ACs.
        graded = bool(t.get("graded", net.is_graded(proj)))
        if proj.source == net.input_name and inp.get("binary") is True:
            graded = False
        fo = proj.fan_out()
        if proj.source == net.input_name:
            ops_total = float(required_field(t, "synaptic_events", f"projections.{proj.name}", source))
            src_steps = input_steps
        else:
            counts = np.asarray(required_field(tl[proj.source], "spike_counts", f"layers.{proj.source}", source), dtype=np.float64)
            if counts.shape != fo.shape:
                raise UserError(f"{source}: field 'layers.{proj.source}.spike_counts' has {counts.size} values, "
                                f"expected {fo.size}")
            ops_total = float(counts @ fo)
            if "synaptic_events" in t and not math.isclose(ops_total, float(t["synaptic_events"]), rel_tol=1e-9, abs_tol=0.5):
                raise UserError(f"{source}: field 'projections.{proj.name}.synaptic_events' is {t['synaptic_events']}, "
                                f"but spike counts x the model's fan-out give {ops_total:.0f} (traffic from a different model?)")
            src_steps = per_step(tl[proj.source], "spikes_per_step")
        # Per-frame split: the source's events at each frame times its mean fan-out per event.
        # Exact in total; per frame it assumes every source neuron fires alike.
        denom = src_steps.sum()
        scale = ops_total / samples / denom if denom else 0.0
        own, own_nz = model_weights(proj)
        projections.append(ProjectionCount(
            name=proj.name, source=proj.source, target=proj.target, graded=graded, taps=proj.taps,
            weights=proj.stored_weights(), nonzero_weights=int(np.count_nonzero(proj.weights)),
            weight_bits=int(t.get("weight_bits", fx.WEIGHT_BITS)),
            synaptic_ops=ops_total / samples, dense_macs=float(dense_per_step(proj)) * steps,
            ops_per_step=(src_steps * scale).tolist(), synapses=int(fo.sum()),
            ann_macs_per_step=float(dense_per_step(proj)), helper=proj.helper,
            model_weights=own, nonzero_model_weights=own_nz,
            model_biases=0 if proj.helper else int(proj.origin.get("ann_biases", 0)),
        ))

    layers: list[LayerCount] = []
    for pop in pops:
        lay = tl[pop.name]
        into = [p for p in projections if p.target == pop.name]
        spikes = 0.0 if pop.readout else float(lay.get("spikes", 0)) / samples
        sps = np.zeros(steps) if pop.readout else per_step(lay, "spikes_per_step")
        weight_bits = sum(p.weights * p.weight_bits for p in into)
        layers.append(LayerCount(
            name=pop.name, kind="readout" if pop.readout else "lif", neurons=pop.size, steps=steps,
            neuron_updates=float(pop.size * steps), spikes=spikes,
            firing_rate=spikes / (pop.size * steps),
            acs=sum(p.synaptic_ops for p in into if not p.graded),
            macs=sum(p.synaptic_ops for p in into if p.graded),
            dense_macs=sum(p.dense_macs for p in into),
            footprint_bytes=math.ceil((weight_bits + pop.size * BIAS_BITS) / 8),
            spikes_per_step=sps.tolist(), helper=pop.helper,
        ))
    return Counts(samples=samples, timesteps=steps, layers=layers, projections=projections,
                  input_nonzero_per_step=input_steps.tolist(), static_input=inp.get("static") is True,
                  recurrent=any(p.source == p.target for p in projs))


def dense_per_step(proj) -> int:
    """NeuroBench's Dense synaptic operations of one step of a projection (module docstring):
    the source layers' own count where the lowering recorded one, else ``Projection.macs``;
    0 for a helper a conversion added (no layer of the model)."""
    if proj.helper:
        return 0
    return int(proj.origin.get("ann_macs", proj.macs()))


def model_weights(proj) -> tuple[int, int]:
    """(weights, nonzero weights) of the model's own layers that a projection holds: the layers'
    own count where the lowering recorded one (``origin["ann_weights"]``: a Linear after a pooling
    folded into a larger matrix), else one tap's matrix or kernel (the taps of a recurrence or a
    delay line share the layer); (0, 0) for a helper. Nonzero: of the deployed integers, per tap
    where the layer's count is recorded (a folded pooling repeats each weight, zero stays zero)."""
    if proj.helper:
        return 0, 0
    w = np.asarray(proj.weights)
    nonzero_taps = [t for t in range(w.shape[0]) if np.any(w[t])]
    per_tap = w[0].size
    nz = int(max((np.count_nonzero(w[t]) for t in nonzero_taps), default=0))
    if "ann_weights" in proj.origin:
        n = int(proj.origin["ann_weights"])
        return n, min(n, round(nz * n / per_tap)) if per_tap else 0
    return (per_tap if len(nonzero_taps) <= 1 else int(w.size)), (nz if len(nonzero_taps) <= 1 else int(np.count_nonzero(w)))


def _by_helper(projections: list[ProjectionCount]) -> dict[str, float]:
    out: dict[str, float] = {}
    for p in projections:
        if p.helper:
            out[p.helper] = out.get(p.helper, 0.0) + p.synaptic_ops
    return out
