"""IntNetwork -> a SANA-FE network description (YAML), so a user can run SANA-FE on it themselves.

SANA-FE (Boyle et al., IEEE TCAD 2025; PyPI ``sanafe``, GPL-3.0) reads a network as YAML with
``network: {name, groups, edges}`` and ``mappings`` (the layout of the example network that the
package ships, ``sanafe/examples/example_snn.yaml``). We write that text; nothing of SANA-FE is
imported or needed here. Load it with ``sanafe.load_net(path, arch)`` next to an architecture
such as ``sanafe.load_loihi()``.

What is written, per population of the integer network:
- a group whose soma attributes are Loihi's CUBA LIF in SANA-FE's Loihi model (float):
  ``threshold = vth << 6``, ``leak_decay = 1 - dv / 4096``, ``input_decay = 1 - (du + 1) / 4096``,
  ``reset = 0`` (hard reset), and a per-neuron ``bias = bias_mant << bias_exp`` where nonzero; a
  readout (which never spikes) gets an unreachable threshold;
- one edge per nonzero synapse and delay tap: ``weight = mantissa x 2^weight_exp << 6`` (the
  scale the threshold has), ``delay = tap`` for taps after the first;
- the input as a group of SANA-FE ``input`` neurons, each on its own input soma unit
  (``<input_soma>[i]``), with its spike train when one is given (binary spikes; a graded input has
  no SANA-FE form and is refused);
- ``mappings``: every neuron to ``core: tile.core``, from the chip mapping when given
  (``core_of``: population -> global core per neuron), else packed ``neurons_per_core`` at a time;
  input neurons on the core after the last one.
SANA-FE simulates in floating point: its spikes follow the integer network's closely but not bit
for bit (truncating decays), which is why cross-checks feed both sides the same spike trains.
"""

from __future__ import annotations

import os

import numpy as np
import yaml

from lmu2neuro.core import atomic
from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core.neurons import DEFAULT as LIF_KIND
from lmu2neuro.core.errors import UserError
from lmu2neuro.core.intnet import IntNetwork

FORMAT_NOTE = "written by lmu2neuro (converters/sanafe/export.py)"
UNREACHABLE = 1e30  # a readout integrates and never fires


class _Dumper(yaml.SafeDumper):
    # SANA-FE's YAML reader does not resolve anchors and aliases: write every value out
    def ignore_aliases(self, data):
        return True


def _core_label(core: int, cores_per_tile: int) -> str:
    return f"{core // cores_per_tile}.{core % cores_per_tile}"


def network_description(net: IntNetwork, core_of: dict[str, list[int]] | None = None,
                        input_spikes: np.ndarray | None = None, cores_per_tile: int = 4,
                        neurons_per_core: int = 1024, lif_soma: str = "loihi_lif",
                        input_soma: str = "loihi_inputs", name: str = "lmu2neuro_net", log_spikes: bool = False) -> dict:
    """The SANA-FE network description of `net` as a plain dict (see the module docstring)."""
    pops, projs = net.on_chip()
    for pop in pops:  # what is written is Loihi 1's hard-reset LIF, the model the cross-checks validate
        if pop.kind != LIF_KIND:
            raise UserError(f"population '{pop.name}': neuron kind '{pop.kind}'; the SANA-FE export writes the LIF only")
        if pop.reset != "zero" or pop.refractory:
            raise UserError(f"population '{pop.name}': reset '{pop.reset}', refractory {pop.refractory}; the SANA-FE "
                            "export writes the reset-to-zero LIF without a refractory period only")
    if input_spikes is not None:
        s = np.asarray(input_spikes)
        if s.ndim != 2 or s.shape[1] != net.input_size:
            raise UserError(f"input spikes: shape {s.shape}, expected (steps, {net.input_size})")
        if not np.isin(s, (0, 1)).all():
            raise UserError("input spikes: SANA-FE input neurons replay binary spikes; got values other than 0 and 1")
    if core_of is None:
        core_of, nxt = {}, 0
        for pop in pops:
            core_of[pop.name] = [nxt + i // neurons_per_core for i in range(pop.size)]
            nxt += -(-pop.size // neurons_per_core)
    missing = [p.name for p in pops if p.name not in core_of or len(core_of[p.name]) != p.size]
    if missing:
        raise UserError(f"chip mapping: no core for every neuron of {', '.join(missing)}")
    input_core = max((max(v) for v in core_of.values() if v), default=-1) + 1

    groups = []
    logged = [{"log_spikes": True}] if log_spikes else []
    inp = {"name": net.input_name, "attributes": list(logged), "neurons": []}
    for i in range(net.input_size):
        attrs = {}
        if input_spikes is not None:
            attrs["spikes"] = [int(v) for v in np.asarray(input_spikes)[:, i]]
        inp["neurons"].append({str(i): [attrs] if attrs else []})
    groups.append(inp)
    for pop in pops:
        soma = {"threshold": UNREACHABLE if pop.readout else float(pop.vth << fx.ACT_SHIFT),
                "leak_decay": 1.0 - fx.voltage_removed(pop.dv),
                "input_decay": 1.0 - fx.current_removed(pop.du), "reset": 0.0, "reset_mode": "hard"}
        neurons = []
        bias = pop.bias
        for i in range(pop.size):
            if bias[i] != 0:
                neurons.append({str(i): [{"soma": {"bias": float(bias[i])}}]})
        if len(neurons) < pop.size:  # the rest share the group's attributes
            rest = [i for i in range(pop.size) if bias[i] == 0]
            neurons.extend({str(i): []} for i in rest)
        neurons.sort(key=lambda d: int(next(iter(d))))
        groups.append({"name": pop.name, "attributes": [{"soma": soma}] + logged, "neurons": neurons})

    edges = []
    for proj in projs:
        scale = float(2.0 ** proj.weight_exp) * (1 << fx.ACT_SHIFT)
        for tap, tgt, src, weight in zip(*proj.synapse_list()):
            attrs = {"weight": float(weight) * scale}
            if tap:
                attrs["delay"] = int(tap)
            edges.append({f"{proj.source}.{src} -> {proj.target}.{tgt}": [attrs]})

    mappings = []
    for i in range(net.input_size):
        mappings.append({f"{net.input_name}.{i}": [{"core": _core_label(input_core, cores_per_tile),
                                                     "soma": f"{input_soma}[{i}]"}]})
    for pop in pops:
        for i, c in enumerate(core_of[pop.name]):
            mappings.append({f"{pop.name}.{i}": [{"core": _core_label(int(c), cores_per_tile), "soma": lif_soma}]})
    return {"network": {"name": name, "groups": groups, "edges": edges}, "mappings": mappings}


def export_sanafe(net: IntNetwork, path: str | os.PathLike, **kwargs) -> dict:
    """Write `net` as a SANA-FE network YAML file (atomically); returns the description written."""
    desc = network_description(net, **kwargs)
    text = f"# SANA-FE network description, {FORMAT_NOTE}\n" + yaml.dump(desc, Dumper=_Dumper, sort_keys=False,
                                                                           width=120, default_flow_style=None)
    atomic.write_text(path, text)
    return desc
