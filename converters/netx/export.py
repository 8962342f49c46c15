"""IntNetwork -> lava-dl netx HDF5 (the hand-off format of lava-dl 0.6 towards Loihi 2).

netx describes a chain of layers: ``/layer/{i}/`` with ``type``, ``shape``, ``weight``, optional
``bias`` and ``neuron/`` (CUBA: ``iDecay``, ``vDecay``, ``vThMant``, ``refDelay``, ``gradedSpike``).
What lava-dl 0.6 does with them (read from ``lava/lib/dl/netx/hdf5.py`` and ``utils.py``):
``du = iDecay - 1``, ``dv = vDecay``, ``vth = vThMant``, ``bias_mant = bias`` with ``bias_exp = 6``,
and ``optimize_weight_bits`` rescales the stored integer weights to an 8-bit mantissa and an
exponent such that the effective synaptic weight is the stored integer itself.

So a projection with weight exponent e >= 0 is stored as ``mantissa << e`` and must still fit
8 bits ([-256, 254]; ``optimize_weight_bits`` clips larger mixed-sign weights); a negative
exponent (a right shift of the accumulated input) and a bias that is not a multiple of 64 have no
netx form. netx 0.6 also has no per-layer skip connections, no multi-tap (delay-line) synapses in a
dense layer and no pooling/concat. ``export_netx`` writes a network that is a chain of dense
layers with one tap each, or raises a UserError naming every part it cannot express.

The first layer reads the graded integer input: load the file with
``netx.hdf5.Network(path, input_message_bits=8)``. Lava adds one step of latency per layer.
"""

from __future__ import annotations

import os

import numpy as np

from lmu2neuro.core import atomic
from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core.errors import UserError
from lmu2neuro.core.intnet import IntNetwork

NETX_BIAS_EXP = 6


def netx_problems(net: IntNetwork) -> list[str]:
    """Every part of ``net`` that netx cannot express (empty: exportable)."""
    problems = []
    prev = net.input_name
    for pop in net.populations:
        into = net.projections_into(pop.name)
        if len(into) != 1 or into[0].source != prev:
            srcs = ", ".join(f"'{s.name}' from '{s.source}'" for s in into) or "none"
            problems.append(f"population '{pop.name}': netx layers form a chain, expected one projection from "
                            f"'{prev}' (found {srcs})")
        for s in into:
            if s.taps != 1:
                problems.append(f"projection '{s.name}': {s.taps} delay taps (origin {s.origin.get('kind', '?')}); "
                                "netx dense layers have one weight per synapse")
            if s.weight_exp < 0:
                problems.append(f"projection '{s.name}': weight_exp {s.weight_exp} < 0 (a right shift); netx "
                                "stores integer weights")
            else:
                stored = np.asarray(s.weights, dtype=np.int64) << s.weight_exp
                if stored.size and (stored.min() < fx.WEIGHT_MIN or stored.max() > fx.WEIGHT_MAX):
                    problems.append(f"projection '{s.name}': mantissa << weight_exp {s.weight_exp} leaves "
                                    f"[{fx.WEIGHT_MIN}, {fx.WEIGHT_MAX}]; netx 0.6 clips stored weights to 8 bits")
        bias = np.asarray(pop.bias, dtype=np.int64)
        if np.any(bias % (1 << NETX_BIAS_EXP)):
            problems.append(f"population '{pop.name}': bias not a multiple of 64; netx fixes bias_exp = 6")
        elif bias.size and np.abs(bias >> NETX_BIAS_EXP).max() > fx.BIAS_MANT_MAX:
            problems.append(f"population '{pop.name}': bias / 64 exceeds the 13-bit bias mantissa")
        prev = pop.name
    if net.populations and net.output != net.populations[-1].name:
        problems.append(f"output '{net.output}': netx's output is the last layer")
    return problems


def export_netx(net: IntNetwork, path: str | os.PathLike) -> None:
    """Write ``net`` as a lava-dl netx HDF5 file, atomically; UserError names what netx cannot hold."""
    import h5py

    problems = netx_problems(net)
    if problems:
        raise UserError(f"{path}: cannot write netx: " + "; ".join(problems))
    with atomic.atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["generator"] = "lmu2neuro"
            layers = f.create_group("layer")
            inp = layers.create_group("0")
            inp.create_dataset("type", data="input", dtype=h5py.string_dtype())
            inp.create_dataset("shape", data=np.array([net.input_size]))
            for i, pop in enumerate(net.populations, start=1):
                s = net.projections_into(pop.name)[0]
                g = layers.create_group(str(i))
                g.create_dataset("type", data="dense", dtype=h5py.string_dtype())
                g.create_dataset("shape", data=np.array([pop.size]))
                g.create_dataset("weight", data=(np.asarray(s.weights[0], dtype=np.int64) << s.weight_exp).astype(np.int32))
                g.create_dataset("bias", data=(np.asarray(pop.bias, dtype=np.int64) >> NETX_BIAS_EXP).astype(np.int32))
                n = g.create_group("neuron")
                n.create_dataset("type", data="CUBA", dtype=h5py.string_dtype())
                n.create_dataset("iDecay", data=pop.du + fx.DU_OFFSET)
                n.create_dataset("vDecay", data=pop.dv)
                n.create_dataset("vThMant", data=pop.vth)
                n.create_dataset("refDelay", data=1)
                n.create_dataset("gradedSpike", data=False)
                g.attrs["name"] = pop.name
                g.attrs["readout"] = bool(pop.readout)
