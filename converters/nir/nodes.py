"""The NIR node kinds we read, declared once.

Every NIR node type this project understands has one ``NodeKind`` here: the fields a file must carry
for it, its role, whether it keeps state between steps, whether it spikes, its numeric parameters,
and, for a stateless node, its float per-step function. The file checks (``read.read_graph``), the
float executor (``float_executor.NIRTorch``), the integer lowering (``lower``) and ``lmu2neuro
inspect`` all derive what they accept from ``KINDS``; no other module keeps its own list of node
types (they name a type only where they treat it specially, e.g. the lowering's closed form for Linear).

Roles:
- ``"io"``: Input / Output, the identity (inside an inlined subgraph a pass-through);
- ``"synapse"``: between neurons. A stateless synapse must be linear (``y = A x + c``): the integer
  lowering composes it into a projection by applying its ``step`` to the zero input and to the
  identity basis, so a nonlinear one would be lowered wrongly (it needs its own role). A stateful
  synapse (Delay) is stepped by the float executor itself and becomes delay taps in the lowering;
- ``"neuron"``: a population; its dynamics are declared here (``float_update``, run by the float
  executor's ``NIRTorch._step``) with its declared mapping onto Loihi's CUBA LIF (``loihi``: tau -> Loihi decays, gain and bias), which
  the lowering (``converters.nir.lower``) applies;
- ``"graph"``: a nested NIRGraph, inlined by ``graph.flatten_graph`` before anything runs.

Adding a stateless linear synapse node kind: one declaration below and its step function, nothing
else. A neuron node kind declares here its float dynamics (``float_update``, which the float executor
runs) and its forward-Euler mapping onto Loihi (``loihi``, which the lowering applies); a stateful
synapse needs its dynamics in ``float_executor.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from lmu2neuro.core import fixed_point as fx

ROLES = ("io", "synapse", "neuron", "graph")

# a stateless node's float step: (this step's input (batch, *shape), prepare()'s parameters) -> output
Step = Callable[[torch.Tensor, dict], torch.Tensor]


@dataclass(frozen=True)
class NodeKind:
    name: str  # the nir class name, as stored in the file's 'type' field
    required: tuple[str, ...]  # fields each node must carry in the file (what nir.read passes to the constructor)
    role: str  # one of ROLES
    params: tuple[str, ...] = ()  # numeric parameter arrays (per neuron for a neuron), optional ones included
    stateful: bool = False  # keeps state between steps: a loop through it is well defined, read one step late
    spiking: bool = False  # emits 0/1 spikes (``v > threshold``)
    options: Callable[[Any], dict] | None = None  # non-array settings (stride, kernel, dims), read once
    step: Step | None = None  # float per-step function of a stateless node
    # a neuron node's mapping onto Loihi's CUBA LIF (the cuba_lif kind of lmu2neuro.core.neurons),
    # forward Euler at step dt: (node, dt, arr) -> (n, du, dv, gain, bias), arr(node, field, n=None)
    # reading a parameter as one float64 per neuron
    loihi: Callable[[Any, float, Callable], tuple] | None = None
    # a stateful neuron node's float update of its voltage, before the spike and reset (the float
    # executor's): (v, x, params, state, dt, leaky) -> v, leaky(v, tau, target) one step of decay
    float_update: Callable[..., torch.Tensor] | None = None

    def __post_init__(self):
        assert self.role in ROLES, self.role
        # the float executor steps every stateless node through its declared function
        assert (self.step is not None) == (not self.stateful and self.role != "graph"), self.name
        assert (self.loihi is not None) == (self.role == "neuron"), self.name
        assert (self.float_update is not None) == (self.role == "neuron" and self.stateful), self.name


# -- the float per-step functions of the stateless nodes ---------------------------------------------
def pair(v) -> tuple[int, int]:
    """A NIR 2-d setting (one value or two) as a pair of ints."""
    a = np.asarray(v).reshape(-1)
    return (int(a[0]), int(a[0])) if a.size == 1 else (int(a[0]), int(a[1]))


def _first(v) -> int:
    return int(np.asarray(v).reshape(-1)[0])


def _identity(x, p):
    return x


def _linear(x, p):
    return x @ p["weight"].T


def _affine(x, p):
    return x @ p["weight"].T + p["bias"]


def _scale(x, p):
    return x * p["scale"]


def _threshold(x, p):
    return (x > p["threshold"]).to(x.dtype)


def _flatten_options(node) -> dict:
    return {"start": int(node.start_dim), "end": int(node.end_dim)}


def _flatten(x, p):
    # NIR's dims exclude the batch: shift non-negative ones past it, negative ones count from the end
    start = p["start"] + 1 if p["start"] >= 0 else p["start"]
    end = p["end"] + 1 if p["end"] >= 0 else p["end"]
    return torch.flatten(x, start, end)


def _conv_options(node) -> dict:
    return {"stride": node.stride, "dilation": node.dilation, "groups": int(np.asarray(node.groups)),
            "padding": node.padding}


def _conv1d(x, p):
    pad = p["padding"] if isinstance(p["padding"], str) else _first(p["padding"])
    return F.conv1d(x, p["weight"], p.get("bias"), _first(p["stride"]), pad, _first(p["dilation"]), p["groups"])


def _conv2d(x, p):
    pad = p["padding"] if isinstance(p["padding"], str) else pair(p["padding"])
    return F.conv2d(x, p["weight"], p.get("bias"), pair(p["stride"]), pad, pair(p["dilation"]), p["groups"])


def _pool_options(node) -> dict:
    return {"kernel": pair(node.kernel_size), "stride": pair(node.stride), "padding": pair(node.padding)}


def _avg_pool(x, p):
    return F.avg_pool2d(x, p["kernel"], p["stride"], p["padding"], count_include_pad=True)


def _sum_pool(x, p):
    return _avg_pool(x, p) * (p["kernel"][0] * p["kernel"][1])


# -- the registry ---------------------------------------------------------------------------------------
_CONV = ("weight", "stride", "padding", "dilation", "groups", "bias")
_POOL = ("kernel_size", "stride", "padding")

# -- the neuron nodes onto Loihi's CUBA LIF (lower.py builds the populations from these) ------------
# du of a neuron without a current state: the current keeps 1/4096 of itself (truncated to zero),
# so the whole input reaches the voltage in its step
NO_CURRENT_STATE = fx.DECAY_UNITY - 1


def _leaky_loihi(node, dt, arr):  # LIF, LI
    tau = arr(node, "tau")
    n = tau.size
    k = dt / tau
    r, vl = arr(node, "r", n), arr(node, "v_leak", n)
    return n, np.full(n, NO_CURRENT_STATE), fx.dv_from_removed(k), k * r, k * vl


def _cuba_loihi(node, dt, arr):  # CubaLIF, CubaLI
    tm = arr(node, "tau_mem")
    n = tm.size
    ts = arr(node, "tau_syn", n)
    ks, km = dt / ts, dt / tm
    r, vl, w_in = arr(node, "r", n), arr(node, "v_leak", n), arr(node, "w_in", n)
    du = fx.du_from_removed(ks)
    return n, du, fx.dv_from_removed(km), km * r * ks * w_in, km * vl


def _integrator_loihi(node, dt, arr):  # IF, I
    r = arr(node, "r")
    n = r.size
    return n, np.full(n, NO_CURRENT_STATE), np.zeros(n, dtype=np.int64), dt * r, np.zeros(n)


def _threshold_loihi(node, dt, arr):
    # Stateless: the shortest memory Loihi has (both decays 4095 keep 1/4096 of the last
    # step, truncated toward zero) and the whole input every step, independent of dt.
    n = arr(node, "threshold").size
    du = dv = np.full(n, NO_CURRENT_STATE)
    return n, du, dv, np.ones(n), np.zeros(n)


def _integrator_float(v, x, p, st, dt, leaky):  # I, IF
    return v + dt * p["r"] * x


def _leaky_float(v, x, p, st, dt, leaky):  # LI, LIF
    return leaky(v, p["tau"], p["v_leak"] + p["r"] * x)


def _cuba_float(v, x, p, st, dt, leaky):  # CubaLI, CubaLIF: the current first, then v from the new current
    cur = leaky(st.get("i", torch.zeros_like(x)), p["tau_syn"], p["w_in"] * x)
    st["i"] = cur
    return leaky(v, p["tau_mem"], p["v_leak"] + p["r"] * cur)


KINDS: dict[str, NodeKind] = {k.name: k for k in (
    NodeKind("Input", ("shape",), "io", step=_identity),
    NodeKind("Output", ("shape",), "io", step=_identity),
    NodeKind("Affine", ("weight", "bias"), "synapse", params=("weight", "bias"), step=_affine),
    NodeKind("Linear", ("weight",), "synapse", params=("weight",), step=_linear),
    NodeKind("Scale", ("scale",), "synapse", params=("scale",), step=_scale),
    NodeKind("Conv1d", _CONV, "synapse", params=("weight", "bias"), options=_conv_options, step=_conv1d),
    NodeKind("Conv2d", _CONV, "synapse", params=("weight", "bias"), options=_conv_options, step=_conv2d),
    NodeKind("SumPool2d", _POOL, "synapse", options=_pool_options, step=_sum_pool),
    NodeKind("AvgPool2d", _POOL, "synapse", options=_pool_options, step=_avg_pool),
    NodeKind("Delay", ("delay",), "synapse", params=("delay",), stateful=True),
    NodeKind("Flatten", ("start_dim", "end_dim"), "synapse", options=_flatten_options, step=_flatten),
    # stateless: the input compared with the threshold every step
    NodeKind("Threshold", ("threshold",), "neuron", params=("threshold",), spiking=True, step=_threshold,
             loihi=_threshold_loihi),
    NodeKind("I", ("r",), "neuron", params=("r",), stateful=True, loihi=_integrator_loihi,
             float_update=_integrator_float),
    NodeKind("IF", ("r", "v_threshold"), "neuron", params=("r", "v_threshold", "v_reset"), stateful=True,
             spiking=True, loihi=_integrator_loihi, float_update=_integrator_float),
    NodeKind("LI", ("tau", "r", "v_leak"), "neuron", params=("tau", "r", "v_leak"), stateful=True,
             loihi=_leaky_loihi, float_update=_leaky_float),
    NodeKind("LIF", ("tau", "r", "v_leak", "v_threshold"), "neuron",
             params=("tau", "r", "v_leak", "v_threshold", "v_reset"), stateful=True, spiking=True,
             loihi=_leaky_loihi, float_update=_leaky_float),
    NodeKind("CubaLI", ("tau_syn", "tau_mem", "r", "v_leak", "w_in"), "neuron",
             params=("tau_syn", "tau_mem", "r", "v_leak", "w_in"), stateful=True, loihi=_cuba_loihi,
             float_update=_cuba_float),
    NodeKind("CubaLIF", ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "w_in"), "neuron",
             params=("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "v_reset", "w_in"), stateful=True,
             spiking=True, loihi=_cuba_loihi, float_update=_cuba_float),
    NodeKind("NIRGraph", ("nodes", "edges"), "graph"),
)}


def _names(pred) -> tuple[str, ...]:
    return tuple(k.name for k in KINDS.values() if pred(k))


# What each reader derives from the registry (in declaration order).
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {k.name: k.required for k in KINDS.values()}
IO_TYPES = _names(lambda k: k.role == "io")
SYNAPSE_TYPES = _names(lambda k: k.role == "synapse")  # what the lowering composes into one projection
NEURON_TYPES = _names(lambda k: k.role == "neuron")
SPIKING_TYPES = _names(lambda k: k.spiking)
STATEFUL_TYPES = _names(lambda k: k.stateful)
# what the integer network / Lava build takes: every declared kind (a nested graph is inlined)
INTNET_TYPES = tuple(KINDS)
# what the float executor runs: every kind but the nested graph, which it inlines first
FLOAT_TYPES = _names(lambda k: k.role != "graph")
# every numeric parameter field of any kind (what inspect counts)
PARAM_FIELDS = tuple(dict.fromkeys(f for k in KINDS.values() for f in k.params))


def prepare(node, dtype=torch.float64) -> dict:
    """A node's parameters as tensors of ``dtype`` and its settings, once, for ``float_step``."""
    kind = KINDS[type(node).__name__]
    p: dict = {}
    for f in kind.params:
        v = getattr(node, f, None)
        if v is not None and not isinstance(v, str):
            p[f] = torch.as_tensor(np.asarray(v, dtype=np.float64), dtype=dtype)
    if kind.options is not None:
        p.update(kind.options(node))
    return p


def float_step(type_name: str, x: torch.Tensor, params: dict) -> torch.Tensor:
    """One step of the stateless node kind ``type_name`` on ``x`` (batch first), with ``prepare``'s params."""
    step = KINDS[type_name].step
    if step is None:
        raise ValueError(f"{type_name} keeps state between steps; it has no stateless step")
    return step(x, params)


__all__ = ["NodeKind", "KINDS", "ROLES", "REQUIRED_FIELDS", "IO_TYPES", "SYNAPSE_TYPES", "NEURON_TYPES",
           "SPIKING_TYPES", "STATEFUL_TYPES", "INTNET_TYPES", "FLOAT_TYPES", "PARAM_FIELDS", "prepare",
           "float_step", "pair"]
