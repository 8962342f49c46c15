"""Any NIR graph -> an executable torch model, stepped at a stated dt.

Our own reader, independent of nirtorch and snnTorch's importer, so that third-party graphs and
our exports can be run and compared without trusting either.

Time. ``forward(x)`` takes ``x`` of shape (batch, T, *input_shape) and runs T steps of ``dt``
seconds. Within a step the nodes run in dependency order; an edge that closes a cycle carries
its source's value from the previous step (zero at the first), and every cycle must pass through
a stateful node (a neuron or a Delay). Edges into one node are summed. Spikes are 0/1 per step
(a spike is one unit of input for one step, as in Norse, snnTorch and the NIR paper's backends).

Discretisation (``method``):
- ``"euler"`` (default; forward Euler, what the NIR paper's backends use): for
  ``tau dv/dt = (v_leak - v) + r I``: ``v += dt / tau * (v_leak - v + r I)``;
  CubaLI/CubaLIF update the current first, ``I += dt / tau_syn * (w_in S - I)``, then v from the new
  I; I/IF: ``v += dt r I``.
- ``"exact"``: each equation solved exactly with its input held over the step (exponential
  Euler): ``v = v_inf + (v - v_inf) exp(-dt / tau)`` with ``v_inf = v_leak + r I``; I/IF as Euler
  (exact for a held input). A linear loop, an I or LI node fed back through one Linear/Affine
  (the LMU memory ``I`` with its recurrent ``Linear(A/theta)``), is stepped as one linear system
  by its zero-order-hold solution (matrix exponential): the discrete memory the model was trained
  with, and stable at any dt (forward Euler on A/theta diverges once dt |eig| > 2, which the LMU's
  A reaches at the model's own step: |eig(A/theta)| = 3.5 for order 16 / theta 8, 104 for 512 / 128).
Spiking nodes (IF, LIF, CubaLIF, Threshold) emit ``v > v_threshold`` after the update, and IF/LIF/
CubaLIF then reset in the same step (``reset``): ``"zero"`` sets ``v = v_reset`` (what NIR states),
``"subtract"`` sets ``v = v - v_threshold``, the rule of ``fixed_point.lif_step(reset="subtract")``.
``reset=None`` takes each node's reset from our metadata (files of ``export_nir``), else "zero".
snnTorch 1.0's Leaky with ``reset_mechanism="subtract"`` (default ``reset_delay=True``) subtracts the
threshold one step later, from the decayed voltage: ``v[t] = beta v[t-1] + I[t] - thr [v[t-1] > thr]``,
where this rule gives ``beta (v[t-1] - thr) + I[t]``, i.e. ``beta thr`` instead of ``thr`` is taken off
(the spikes of step t itself are the same; the two differ by ``(1 - beta) thr`` per spike from the
next step on). With ``reset_delay=False`` snnTorch subtracts in the firing step, as here, but only
while the voltage after a reset stays below threshold: in the step after a spike it adds back the
delayed reset it took off ("avoid double reset"), so a voltage left above threshold does not fire
there (inputs 2.2, -0.1, 0, 0 at threshold 1, beta 1: 1, 0, 0, 0 there, 1, 1, 0, 0 here; the equal
case is tested in tests/converters/nir/test_nir_reset.py). Its zero reset (reset_delay=True zeroes v[t-1] before the
update) equals the same-step zero reset here. Delay nodes delay by ``round(delay / dt)`` steps per element.
Conv1d/Conv2d/pooling/Flatten act on each step's tensor (no batch dimension in NIR shapes).
"""

from __future__ import annotations

import os

import numpy as np
import torch

from converters.nir.graph import execution_order, flatten_graph, node_type
from converters.nir.metadata import META_KEY, decode_meta
from converters.nir.nodes import FLOAT_TYPES, KINDS, float_step, prepare
from converters.nir.read import read_graph
from lmu2neuro.core.errors import UserError
from lmu2neuro.core.fixed_point import check_reset

SUPPORTED = FLOAT_TYPES  # every declared node kind; a nested NIRGraph is inlined first
METHODS = ("euler", "exact")


def _stated_reset(node) -> str:
    """A node's reset as our metadata states it (files of export_nir), else NIR's: to v_reset."""
    md = getattr(node, "metadata", None) or {}
    try:
        return str(decode_meta(md[META_KEY]).get("reset", "zero")) if META_KEY in md else "zero"
    except (ValueError, TypeError, AttributeError):
        return "zero"


class NIRTorch(torch.nn.Module):
    """A NIR graph as a torch module; see the module docstring for the time semantics."""

    def __init__(self, graph, dt: float, method: str = "euler", dtype=torch.float64, where: str = "graph",
                 reset: str | None = None, refractory: int = 0):
        super().__init__()
        if method not in METHODS:
            raise UserError(f"method '{method}': expected one of {', '.join(METHODS)}")
        check_reset(reset)
        if not dt > 0:
            raise UserError(f"dt = {dt}: expected a positive number of seconds per step")
        self.dt, self.method, self.dtype = float(dt), method, dtype
        self.nodes, self.edges = flatten_graph(graph)
        for n, node in self.nodes.items():
            if node_type(node) not in SUPPORTED:
                raise UserError(f"{where}: node '{n}' ({node_type(node)}) is not supported by nir_torch")
        self.order, self.delayed = execution_order(self.nodes, self.edges, where)
        self.preds: dict[str, list[tuple[str, bool]]] = {n: [] for n in self.nodes}
        for a, b in self.edges:
            self.preds[b].append((a, (a, b) in self.delayed))
        self.inputs = [n for n in self.nodes if node_type(self.nodes[n]) == "Input" and not self.preds[n]]
        self.outputs = [n for n in self.nodes if node_type(self.nodes[n]) == "Output" and not any(a == n for a, _ in self.edges)]
        self.params = {n: self._prepare(n, node) for n, node in self.nodes.items()}
        self.resets = {n: reset or _stated_reset(node) for n, node in self.nodes.items()}
        # steps a spiking node is held after a spike, as fixed_point.lif_step holds it (NIR has no field)
        self.refractory = int(refractory)
        self.fused: dict[str, str] = {}
        if method == "exact":
            self._fuse_linear_loops()

    def _fuse_linear_loops(self) -> None:
        """Exact mode: an I / LI node X fed back through one Linear/Affine L (X -> L -> X, L used by
        nothing else) is a linear system dv/dt = M v + f; it is stepped by its zero-order-hold
        solution (matrix exponential) instead of node by node, which is exact for inputs held over
        the step (the LMU memory: this is the Abar, Bbar the model was trained with) and stable at
        any dt, where forward Euler diverges once dt |eig(M)| > 2."""
        succ: dict[str, list[str]] = {n: [] for n in self.nodes}
        for a, b in self.edges:
            succ[a].append(b)
        for a, b in self.delayed:
            x, loop = (a, b) if node_type(self.nodes[a]) in ("I", "LI") else (b, a)
            if node_type(self.nodes[x]) not in ("I", "LI") or node_type(self.nodes[loop]) not in ("Linear", "Affine"):
                continue
            if [p for p, _ in self.preds[loop]] != [x] or succ[loop] != [x]:
                continue
            lp, xp = self.params[loop], self.params[x]
            w = lp["weight"]
            n = w.shape[0]
            b = lp.get("bias", torch.zeros(n, dtype=self.dtype))
            r = xp["r"].reshape(-1) * torch.ones(n, dtype=self.dtype)
            eye = torch.eye(n, dtype=self.dtype)
            if node_type(self.nodes[x]) == "I":
                m, f_scale, f_const = r[:, None] * w, r, r * b
            else:
                tau = xp["tau"].reshape(-1) * torch.ones(n, dtype=self.dtype)
                m = (r[:, None] * w - eye) / tau[:, None]
                f_scale, f_const = r / tau, (xp["v_leak"] + r * b) / tau
            aug = torch.zeros(2 * n, 2 * n, dtype=self.dtype)
            aug[:n, :n], aug[:n, n:] = m * self.dt, eye * self.dt
            e = torch.linalg.matrix_exp(aug)
            xp["zoh"] = (e[:n, :n], e[:n, n:], f_scale, f_const)
            self.fused[x] = loop

    # -- parameters as tensors, once --------------------------------------------------------------
    def _prepare(self, name, node) -> dict:
        p = prepare(node, self.dtype)  # the parameters as tensors, the settings of the node's float step
        if node_type(node) == "Delay":
            steps = np.round(np.asarray(node.delay, dtype=np.float64) / self.dt).astype(np.int64)
            if np.any(steps < 0):
                raise UserError(f"node '{name}' (Delay): parameter 'delay' is negative")
            p["steps"] = torch.as_tensor(steps)
        return p

    # -- one node, one step ---------------------------------------------------------------------------
    def _decay(self, tau):
        return torch.exp(-self.dt / tau) if self.method == "exact" else 1.0 - self.dt / tau

    def _leaky(self, v, tau, target):
        """v moves toward `target` with time constant tau for one step."""
        k = self._decay(tau)
        return target + (v - target) * k

    def _step(self, name, x, st: dict):
        node, p = self.nodes[name], self.params[name]
        typ = node_type(node)
        kind = KINDS[typ]
        if not kind.stateful:  # Input / Output, the stateless synapses, Threshold: declared in nodes.py
            return float_step(typ, x, p)
        if typ == "Delay":
            steps = p["steps"].expand(x.shape[1:]) if p["steps"].ndim else p["steps"]
            depth = int(steps.max()) + 1 if steps.numel() else 1
            buf = st.get("buf")
            if buf is None:
                buf = torch.zeros((depth,) + tuple(x.shape), dtype=x.dtype)
            buf = torch.roll(buf, 1, dims=0)
            buf[0] = x
            st["buf"] = buf
            idx = steps.reshape((1, 1) + tuple(steps.shape)).expand((1,) + tuple(x.shape))
            return torch.gather(buf, 0, idx)[0]
        # neurons: state v (and I), zero at the start
        v = st.get("v", torch.zeros_like(x))
        if "zoh" in p:  # a fused linear loop (exact mode): v = Ad v + Gamma f, f = external input held
            ad, gamma, f_scale, f_const = p["zoh"]
            v = v @ ad.T + (f_scale * x + f_const) @ gamma.T
            st["v"] = v
            return v
        v = kind.float_update(v, x, p, st, self.dt, self._leaky)  # the node kind's own (nodes.py)
        if kind.spiking and self.refractory:
            held = st.get("ref", torch.zeros_like(v)) > 0
            v = torch.where(held, st.get("v", torch.zeros_like(v)), v)  # kept: no decay, no input
            z = (v > p["v_threshold"]) & ~held
            st["ref"] = torch.where(z, torch.full_like(v, float(self.refractory)),
                                    (st.get("ref", torch.zeros_like(v)) - 1).clamp(min=0))
        if kind.spiking:
            z = (v > p["v_threshold"]) if not self.refractory else z
            if self.resets[name] == "subtract":
                st["v"] = v - z.to(v.dtype) * p["v_threshold"]
            else:
                st["v"] = torch.where(z, p["v_reset"].expand_as(v), v)
            st["v_pre_reset"] = v
            return z.to(x.dtype)
        st["v"] = v
        return v

    def forward(self, x: torch.Tensor | dict, record: bool = False):
        """x: (batch, T, *shape) for a single Input, or {input name: tensor}. Returns
        {output name: (batch, T, *shape)} (the tensor itself when there is one output);
        with record=True also {node: {"out": (batch, T, ...), "v": voltage after reset, ...}}."""
        xs = x if isinstance(x, dict) else {self.inputs[0]: x}
        if set(xs) != set(self.inputs):
            raise UserError(f"inputs {sorted(xs)}: expected {sorted(self.inputs)}")
        xs = {k: torch.as_tensor(v, dtype=self.dtype) for k, v in xs.items()}
        batch, steps = next(iter(xs.values())).shape[:2]
        state: dict[str, dict] = {n: {} for n in self.nodes}
        prev: dict[str, torch.Tensor] = {}
        outs: dict[str, list] = {n: [] for n in self.outputs}
        rec: dict[str, dict[str, list]] = {n: {} for n in self.nodes} if record else {}
        for t in range(steps):
            cur: dict[str, torch.Tensor] = {}
            for n in self.order:
                if n in xs:
                    inp = xs[n][:, t]
                else:
                    inp = None
                    for src, late in self.preds[n]:
                        if self.fused.get(n) == src:  # inside the fused linear loop's exact step
                            continue
                        val = prev.get(src) if late else cur[src]
                        if val is None:
                            continue
                        inp = val if inp is None else inp + val
                    if inp is None:  # only delayed inputs, first step: zeros of the node's input shape
                        shape = tuple(int(s) for s in np.asarray(self.nodes[n].input_type["input"]).reshape(-1))
                        inp = torch.zeros((batch,) + shape, dtype=self.dtype)
                cur[n] = self._step(n, inp, state[n])
                if record:
                    rec[n].setdefault("out", []).append(cur[n])
                    for k in ("v", "i", "v_pre_reset"):
                        if k in state[n]:
                            rec[n].setdefault(k, []).append(state[n][k])
            for n in self.outputs:
                outs[n].append(cur[n])
            prev = cur
        result = {n: torch.stack(v, dim=1) for n, v in outs.items()}
        if len(result) == 1:
            result = next(iter(result.values()))
        if record:
            return result, {n: {k: torch.stack(v, dim=1) for k, v in d.items()} for n, d in rec.items()}
        return result


def load(path_or_graph, dt: float, method: str = "euler", dtype=torch.float64, reset: str | None = None,
         refractory: int = 0) -> NIRTorch:
    """Read a .nir file (or take a ``nir.NIRGraph``) and return the executable torch model
    (``reset``: see the module docstring; None = what the file states; ``refractory``: steps every
    spiking node is held after a spike, its voltage kept and silent, as ``lif_step`` holds it)."""
    if isinstance(path_or_graph, (str, os.PathLike)):
        return NIRTorch(read_graph(path_or_graph), dt, method, dtype, where=str(path_or_graph), reset=reset,
                        refractory=refractory)
    return NIRTorch(path_or_graph, dt, method, dtype, reset=reset, refractory=refractory)


__all__ = ["NIRTorch", "load", "SUPPORTED", "METHODS"]
