"""The deployed network as integers: the artifact that every back end agrees on.

A NIR graph (ours, or a third party's once quantized) lowers to an ``IntNetwork``: populations
of Loihi CUBA LIF neurons and projections between them. A projection carries an integer weight
tensor with one slice per synaptic delay ("tap"), so temporal convolutions, the LMU memory
(as a finite impulse response of the spiking input u) and plain dense layers are one concept.
A projection is dense (a matrix per tap) or convolutional (a kernel per tap, stored once, with
its ``core.conv.ConvGeometry``); pooling is a depthwise convolution and Flatten is the identity
(populations are flat vectors in C order of their frame, ``Population.shape``). Consumers ask the
projection (``fan_out``, ``fan_in``, ``synapses``, ``pairs``, ``dense``, ``macs``), never its
weight layout.
Real-valued streams of the model (membrane shortcut, batch norm) are already folded into
projection weights and neuron biases here.

Semantics (time step t of one sample, every population starts at zero state):
    a_P[t] = sum over projections S into P of  shift(sum_j W_S[j] @ x_src[t - j], exp_S)
    (u, v, spikes) of P at t = fixed_point.lif_step(u, v, a_P[t], du, dv, vth, bias, reset, refractory)
    (the step of P's neuron kind, ``Population.kind`` in ``core/neurons``; the above is the default,
    Loihi's CUBA LIF; a graded kind such as sigma_delta sends integer payloads instead of 0/1 spikes)
where x_src is the source's spikes (0/1), or the graded integer input for the input node, and
shift is Dense's weight exponent (left shift, or arithmetic right shift). A projection from a
population to itself (recurrence, as in snnTorch's RLeaky) must have a zero tap 0: its spikes
act from the next step on. There is no latency:
Lava's one step per connection is compensated by the Lava builder, not here.
A network may instead take its input as a bias (``IntNetwork.bias_input``, lava-dl's way into a netx
input layer with neurons): then the input at step t is the bias mantissa of that one population's
neurons, ``bias_P[t] = x[t] << bias_exp_P`` in place of its own bias, and nothing takes the input
as a current (no projection from the input node; the population's ``a_in`` is left unconnected).
``reset_interval`` N (with an offset o, 0 <= o < N), where a run asks for it, zeroes every
population's state (u, v, refractory count) before each step t > 0 with (t - o) % N == 0, as
lava-dl's ``reset_interval`` does (its layer k resets k steps later, at the step its latency makes
the same); synaptic delay lines are not reset, in Lava neither.
A readout population integrates (du = 4095, dv = 0) and never spikes. The output score after
step t is the output population's voltage if it is a readout, else its spike count so far;
argmax after the last step is the prediction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core import neurons
from lmu2neuro.core.conv import ConvGeometry


# The helper population that spikes on every step: its synapses put a constant into their targets'
# synaptic current, which Loihi's neuron bias (a voltage term) cannot (``Population.always_on``).
ALWAYS_ON = "always_on"


class IntNetworkError(ValueError):
    """A network that breaks a Loihi limit or is not well formed; the message names the part."""


@dataclass(frozen=True)
class BiasInput:
    """The input drives population ``target`` through its bias: x[t] is its neurons' bias mantissa
    at step t (lava-dl: ``in_layer.neuron.bias_mant = frame``). ``weight`` and ``bias`` are the
    transform a netx file states for its input layer (SLAYER's Input block), which the user's data
    pipeline applies to a raw frame first: mantissa = int(weight * x + bias), truncated toward zero
    as the int32 cast of lava-dl's PilotNet dataset does."""

    target: str
    weight: float = 1.0
    bias: float = 0.0

    def transform(self, x) -> np.ndarray:
        """A raw frame (any shape) -> bias mantissas, int64 (range not checked: ``check``)."""
        x = np.asarray(x, dtype=np.float64)
        if not np.all(np.isfinite(x)):
            raise ValueError("input holds NaN or infinite values; expected finite numbers")
        return np.trunc(self.weight * x + self.bias).astype(np.int64)

    @staticmethod
    def check(mant, what: str) -> np.ndarray:
        """Bias mantissas as int64, or a ValueError naming ``what`` when one is fractional or outside
        Loihi's 13-bit signed range."""
        m = np.asarray(mant)
        if m.dtype.kind == "f":
            if not np.all(np.isfinite(m)) or np.any(m != np.round(m)):
                raise ValueError(f"{what}: holds fractions or NaN; expected integer bias mantissas "
                                 f"in [{fx.BIAS_MANT_MIN}, {fx.BIAS_MANT_MAX}]")
        elif m.dtype.kind not in "biu":
            raise ValueError(f"{what}: dtype {m.dtype}; expected integer bias mantissas")
        if m.size and (m.min() < fx.BIAS_MANT_MIN or m.max() > fx.BIAS_MANT_MAX):
            bad = m.reshape(-1)[np.argmax(np.abs(m.reshape(-1).astype(np.float64)))]
            raise ValueError(f"{what}: bias mantissa {int(bad)} overflows Loihi's 13-bit signed range "
                             f"[{fx.BIAS_MANT_MIN}, {fx.BIAS_MANT_MAX}]")
        return m.astype(np.int64)


def check_reset_interval(interval, offset, what: str = "--reset-interval") -> tuple[int | None, int]:
    """(interval, offset) checked: None (no reset) or an integer >= 1 with 0 <= offset < interval;
    anything else a ValueError naming ``what``."""
    if interval is None:
        return None, 0
    if isinstance(interval, bool) or not isinstance(interval, (int, np.integer)) or interval < 1:
        raise ValueError(f"{what} {interval}: expected a whole number of steps >= 1")
    if isinstance(offset, bool) or not isinstance(offset, (int, np.integer)) or not 0 <= offset < interval:
        raise ValueError(f"{what} {interval} with offset {offset}: expected an offset in [0, {interval - 1}]")
    return int(interval), int(offset)


def reset_steps(steps: int, interval: int | None, offset: int = 0) -> np.ndarray:
    """(steps,) bool: before which steps every population's state is zeroed (step 0 starts from
    zero anyway)."""
    t = np.arange(steps)
    if interval is None:
        return np.zeros(steps, dtype=bool)
    return (t > 0) & ((t - offset) % interval == 0)


@dataclass
class Population:
    name: str
    size: int
    du: int  # current decay, Lava convention: keeps 4096 - (du + 1) parts
    dv: int  # voltage decay: keeps 4096 - dv parts
    vth: int  # threshold mantissa; spike when v > vth << 6
    bias_mant: np.ndarray  # (size,) int, 13-bit signed
    bias_exp: int = 0
    readout: bool = False
    meta: dict = field(default_factory=dict)
    reset: str = "zero"  # fixed_point.RESETS; "subtract" is Loihi 2 only
    shape: tuple[int, ...] | None = None  # the frame its neurons form, (C, L) or (C, H, W), if any
    refractory: int = 0  # steps held after a spike (fixed_point.lif_step); netx refDelay - 1
    kind: str = neurons.DEFAULT  # the neuron kind (core/neurons): its step, limits, Lava process, counting
    kind_params: dict = field(default_factory=dict)  # what that kind adds (sigma_delta: its exponents, stage)

    # (du, dv) of an integrator: keeps all its current and all its voltage
    INTEGRATOR = (fx.DECAY_UNITY - 1, 0)

    @classmethod
    def readout_of(cls, name: str, size: int, du: int = INTEGRATOR[0], dv: int = INTEGRATOR[1],
                   bias_mant: np.ndarray | None = None, bias_exp: int = 0, meta: dict | None = None,
                   shape: tuple[int, ...] | None = None) -> Population:
        """A readout: its voltage is the score, so it never spikes (vth = VTH_MAX), and a spike's
        reset and refractory period do not apply (zero reset, 0 steps); an integrator unless the
        source states other decays."""
        return cls(name, int(size), du=int(du), dv=int(dv), vth=fx.VTH_MAX,
                   bias_mant=np.zeros(int(size), dtype=np.int64) if bias_mant is None else bias_mant,
                   bias_exp=bias_exp, readout=True, meta={} if meta is None else meta, reset="zero",
                   shape=shape, refractory=0)

    @classmethod
    def always_on(cls, name: str = ALWAYS_ON) -> Population:
        """One neuron that spikes on every step from the first (threshold 0, bias 1, its voltage
        kept 1 part in 4096), a helper a conversion adds (``meta['helper']``): a bias that a model
        adds to a synaptic current every step (snnTorch's Synaptic fed by a biased Linear or Conv)
        is its synapse into that current, exact where a neuron bias, which enters the voltage, is
        not. Its current never receives input (du = 0 keeps it at zero), and its state after
        every spike is zero again, so it fires every step in every back end."""
        return cls(name, 1, du=0, dv=fx.DECAY_UNITY - 1, vth=0, bias_mant=np.ones(1, dtype=np.int64),
                   bias_exp=0, meta={"helper": "bias source"})

    @property
    def helper(self) -> str | None:
        """What a conversion added this population for (e.g. "bias source"), or None: the model's own."""
        return self.meta.get("helper") or None

    @property
    def is_integrator(self) -> bool:
        return (self.du, self.dv) == self.INTEGRATOR

    @property
    def bias(self) -> np.ndarray:
        return self.bias_mant.astype(np.int64) << self.bias_exp


@dataclass
class Projection:
    name: str
    source: str  # a population name or IntNetwork.input_name
    target: str
    # dense: (taps, target size, source size); conv: (taps, C_out, C_in // groups, *kernel).
    # Integers; tap j delays by j steps.
    weights: np.ndarray
    weight_exp: int = 0
    # Plain data describing what the weights came from, for export and reports:
    # kind in {"dense", "conv", "lmu_fir", ...} and whatever that kind needs to be rebuilt;
    # "ann_macs": the source layers' own multiply-accumulates per step, where they differ from
    # this projection's (a pooling folded into a convolution).
    origin: dict = field(default_factory=dict)
    conv: ConvGeometry | None = None  # None: dense

    @property
    def helper(self) -> str | None:
        """What a conversion added this projection for ("reset self connection", "spike-count
        readout", "bias source"), or None: a synapse of the model as its author wrote it."""
        return self.origin.get("helper") or None

    def __post_init__(self):
        # the one place "ann_macs" is kept only where it differs: readers and the tracer state it always
        macs = self.origin.get("ann_macs")
        if isinstance(macs, (int, np.integer)) and (  # a kernel that does not fit: validate refuses it
                self.conv is None or self.conv.problem(np.shape(self.weights)) is None) and int(macs) == self.macs():
            self.origin = {k: v for k, v in self.origin.items() if k != "ann_macs"}

    @property
    def taps(self) -> int:
        return int(self.weights.shape[0])

    @property
    def out_shape(self) -> tuple[int, ...] | None:
        return None if self.conv is None else self.conv.out_shape(self.weights.shape)

    def fan_out(self) -> np.ndarray:
        """(source size,) int64: nonzero synapses of each source neuron over all taps and targets."""
        if self.conv is not None:
            return self.conv.fan_out(self.weights)
        return np.count_nonzero(np.asarray(self.weights), axis=(0, 1)).astype(np.int64)

    def fan_in(self) -> np.ndarray:
        """(target size,) int64: nonzero synapses into each target neuron over all taps."""
        if self.conv is not None:
            return self.conv.fan_in(self.weights)
        return np.count_nonzero(np.asarray(self.weights), axis=(0, 2)).astype(np.int64)

    def synapses(self) -> int:
        """Nonzero (tap, target, source) connections: the synapses a chip without weight sharing
        stores, and the events one spike of every source would cause."""
        return int(self.fan_out().sum())

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(target, source) index arrays of the pairs joined by a nonzero weight on some tap."""
        if self.conv is not None:
            tgt, src, _ = self.conv.pairs(self.weights, f"projection '{self.name}'")
            return tgt, src
        tgt, src = np.nonzero(np.any(np.asarray(self.weights) != 0, axis=0))
        return tgt.astype(np.int64), src.astype(np.int64)

    def connections(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(target, source, synapses) int64 of each pair ``pairs`` gives: synapses = the taps on
        which the pair's weight is nonzero (each its own synapse on a chip)."""
        if self.taps == 1:
            tgt, src = self.pairs()
            return tgt, src, np.ones(tgt.size, dtype=np.int64)
        tgt, src, w = self._pair_weights()
        return tgt, src, np.count_nonzero(w, axis=0).astype(np.int64)

    def synapse_list(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(tap, target, source, weight) of every nonzero synapse, tap by tap, each tap's in the
        order of ``pairs``."""
        tgt, src, w = self._pair_weights()
        tap, i = np.nonzero(w)
        return tap.astype(np.int64), tgt[i], src[i], w[tap, i]

    def channel_synapses(self) -> np.ndarray:
        """A convolution's (C_out,) nonzero kernel entries of each output channel over all taps:
        what a core holding neurons of that channel stores once where kernels are shared."""
        w = np.asarray(self.weights)
        return np.count_nonzero(w.reshape(w.shape[0], w.shape[1], -1), axis=(0, 2)).astype(np.int64)

    def _pair_weights(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``pairs`` and their weights (taps, pairs), from the kernel or the matrix: never a
        convolution's dense matrix."""
        w = np.asarray(self.weights)
        if self.conv is not None:
            tgt, src, k = self.conv.pairs(w, f"projection '{self.name}'")
            return tgt, src, w.reshape(w.shape[0], -1)[:, k]
        tgt, src = self.pairs()
        return tgt, src, w[:, tgt, src]

    def dense(self) -> np.ndarray:
        """(taps, target size, source size): the full matrix; a convolution's is refused above the
        element limit (``ConvGeometry.dense``), so a caller that can do without checks
        ``dense_elements`` first."""
        if self.conv is None:
            return np.asarray(self.weights)
        return self.conv.dense(self.weights, f"projection '{self.name}'")

    def dense_elements(self) -> int:
        if self.conv is None:
            return int(np.asarray(self.weights).size)
        return self.taps * int(np.prod(self.out_shape)) * self.conv.in_size

    def stored_weights(self) -> int:
        """Weights actually stored: the kernel for a convolution, the matrix otherwise."""
        return int(np.asarray(self.weights).size)

    def macs(self) -> int:
        """Multiply-accumulates of one evaluation, NeuroBench's Dense count of the projection as
        one layer: a matrix's every entry (all taps, zeros included); a convolution's kernel at
        every output position where it meets a real source (``ConvGeometry.macs``: padding adds
        nothing). ``origin["ann_macs"]`` overrides it where the source layers differ (a folded
        pooling)."""
        return self.conv.macs(self.weights.shape) if self.conv is not None else int(np.asarray(self.weights).size)


@dataclass
class IntNetwork:
    input_size: int
    input_scale: float  # float input x -> clip(round(x * input_scale), -128, 127)
    populations: list[Population]
    projections: list[Projection]
    output: str
    input_name: str = "input"
    dt: float | None = None  # seconds per step, when known
    meta: dict = field(default_factory=dict)
    bias_input: BiasInput | None = None  # the input sets this population's bias (module docstring)

    def __post_init__(self):
        self.validate()

    # -- lookups -------------------------------------------------------------------------
    def population(self, name: str) -> Population:
        for p in self.populations:
            if p.name == name:
                return p
        raise KeyError(name)

    def size_of(self, name: str) -> int:
        return self.input_size if name == self.input_name else self.population(name).size

    def on_chip(self) -> tuple[list[Population], list[Projection]]:
        """The populations and projections a chip would run: without a readout that a reader added
        only to count a spiking output (``meta['added_by_tool']``), which the host does instead."""
        added = {p.name for p in self.populations if p.meta.get("added_by_tool")}
        return ([p for p in self.populations if p.name not in added],
                [s for s in self.projections if s.target not in added])

    def projections_into(self, name: str) -> list[Projection]:
        return [s for s in self.projections if s.target == name]

    def population_summary(self) -> list[dict]:
        """Each population as plain data, with what its incoming projections hold (what ``inspect``
        prints for any network file; a convolution answers from its kernel, never a dense matrix)."""
        rows = []
        for p in self.populations:
            into = self.projections_into(p.name)
            rows.append({"name": p.name, "size": p.size, "kind": p.kind, **({"kind_params": dict(p.kind_params)}
                                                                            if p.kind_params else {}),
                         "du": p.du, "dv": p.dv, "vth": p.vth,
                         "bias_exp": p.bias_exp, "readout": p.readout, "reset": p.reset,
                         "refractory": p.refractory, "incoming_taps": sum(s.taps for s in into),
                         "incoming_stored_weights": sum(s.stored_weights() for s in into),
                         "incoming_synapses": sum(s.synapses() for s in into),
                         "incoming_conv": any(s.conv is not None for s in into)})
        return rows

    def is_graded(self, proj: Projection) -> bool:
        """Whether the projection's inputs are graded payloads (the input, or a graded neuron kind's
        messages): its synaptic ops are then MACs, not ACs."""
        return proj.source == self.input_name or neurons.kind(self.population(proj.source).kind).graded

    def max_taps(self) -> int:
        return max((s.taps for s in self.projections), default=1)

    def bias_driven(self, pop_name: str) -> bool:
        return self.bias_input is not None and self.bias_input.target == pop_name

    def quantize_input(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if not np.all(np.isfinite(x)):
            raise ValueError("input holds NaN or infinite values; Loihi inputs are finite integers")
        q = np.round(x * self.input_scale)
        return np.clip(q, -128, 127).astype(np.int64)

    # -- validation: every Loihi limit in one place ----------------------------------------
    def validate(self) -> None:
        names = [self.input_name]
        for p in self.populations:
            where = f"population '{p.name}'"
            if p.name in names:
                raise IntNetworkError(f"{where}: duplicate name")
            names.append(p.name)
            if p.kind not in neurons.KINDS:
                raise IntNetworkError(f"{where}: kind '{p.kind}', expected one of {', '.join(neurons.KINDS)}")
            if p.shape is not None and int(np.prod(p.shape)) != p.size:
                raise IntNetworkError(f"{where}: shape {tuple(p.shape)} holds {int(np.prod(p.shape))} neurons, "
                                      f"the population has {p.size}")
            bm = np.asarray(p.bias_mant)
            if bm.shape != (p.size,):
                raise IntNetworkError(f"{where}: bias_mant shape {bm.shape}, expected ({p.size},)")
            problem = neurons.kind(p.kind).check(p)
            if problem:
                raise IntNetworkError(f"{where}: {problem}")
        if self.output not in names[1:]:
            raise IntNetworkError(f"output '{self.output}' is not a population")
        if self.bias_input is not None:
            target = self.bias_input.target
            if target not in names[1:]:
                raise IntNetworkError(f"bias input: '{target}' is not a population")
            if self.population(target).size != self.input_size:
                raise IntNetworkError(f"bias input: '{target}' has {self.population(target).size} neurons, the input "
                                      f"{self.input_size} values (one bias mantissa per neuron)")
            if any(s.source == self.input_name for s in self.projections):
                raise IntNetworkError("bias input: the input drives a bias, so no projection may take it as a current")
        order = {n: i for i, n in enumerate(names)}
        for s in self.projections:
            where = f"projection '{s.name}'"
            for end in (s.source, s.target):
                if end not in order:
                    raise IntNetworkError(f"{where}: unknown population '{end}'")
            if s.target == self.input_name:
                raise IntNetworkError(f"{where}: the input cannot be a target")
            w = np.asarray(s.weights)
            if s.source == s.target and neurons.kind(self.population(s.target).kind).graded:
                raise IntNetworkError(f"{where}: a recurrent projection onto a graded ({self.population(s.target).kind}) "
                                      "population is not supported")
            if s.source == s.target:
                if w.ndim >= 3 and np.any(w[:1]):
                    raise IntNetworkError(f"{where}: a recurrent projection needs a delay of at least one "
                                          "step (its tap 0 must be zero)")
            elif order[s.source] >= order[s.target]:
                raise IntNetworkError(
                    f"{where}: '{s.source}' must come before '{s.target}' (populations are in "
                    "topological order; recurrence is supported only within a population, where "
                    "Lava can deliver it in time)"
                )
            expect = (self.size_of(s.target), self.size_of(s.source))
            if s.conv is not None:
                problem = s.conv.problem(w.shape)
                if problem:
                    raise IntNetworkError(f"{where}: convolution: {problem}")
                sizes = (int(np.prod(s.out_shape)), s.conv.in_size)
                if sizes != expect:
                    raise IntNetworkError(f"{where}: convolution maps {sizes[1]} source neurons (frame "
                                          f"{s.conv.in_shape}) to {sizes[0]} (frame {s.out_shape}); "
                                          f"'{s.source}' has {expect[1]}, '{s.target}' has {expect[0]}")
            elif w.ndim != 3 or w.shape[1:] != expect:
                raise IntNetworkError(f"{where}: weights shape {w.shape}, expected (taps, {expect[0]}, {expect[1]})")
            if w.size and (w.min() < fx.WEIGHT_MIN or w.max() > fx.WEIGHT_MAX):
                bad = int(w.flat[np.argmax(np.abs(w))])
                raise IntNetworkError(
                    f"{where}: weight {bad} outside Loihi's 8-bit range [{fx.WEIGHT_MIN}, {fx.WEIGHT_MAX}]"
                )
            if w.size and np.any(w % 2):
                raise IntNetworkError(f"{where}: odd weight mantissa; 8-bit mixed-sign weights are even")
            if not -8 <= s.weight_exp <= 7:
                raise IntNetworkError(f"{where}: weight_exp {s.weight_exp} outside [-8, 7]")
