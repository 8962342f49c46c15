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
netx form. netx 0.6 also has no per-layer skip connections and no multi-tap (delay-line) synapses
here. ``export_netx`` writes a chain of dense and 2-D conv layers with one tap each, or raises a
UserError naming every part it cannot express.

A conv projection is a ``conv`` layer: the kernel ``(C_out, C_in / groups, kH, kW)`` in PyTorch's
cross-correlation (lava-dl flips it for Lava's convolution), stride / padding / dilation in (H, W)
order, ``groups``, the output ``shape`` (C, H, W), and the bias per channel where it is constant
over each channel, else per neuron in lava-dl's (x, y, f) order. A pooling is a conv with groups
(netx 0.6's Network cannot build ``pool`` layers). Before a dense layer that reads a frame a
``flatten`` layer is written: lava-dl then flattens (x, y, f) in (f, y, x) order, which is our C
order of (C, H, W). A conv first needs the input frame: layer 0 then states its (C, H, W) shape.

A population's refractory period is written as ``refDelay = refractory + 1`` (Loihi's
refractDelay); lava-dl 0.6's Network ignores refDelay, so there such a network runs without it.

The first layer reads the graded integer input: load the file with
``netx.hdf5.Network(path, input_message_bits=8)``. Lava adds one step of latency per layer. A
network whose input drives a population's bias (``IntNetwork.bias_input``, read from a netx
input layer with neurons) writes that population as layer 0, an ``input`` layer with its
``neuron/`` group and the transform's ``weight`` and ``bias``: lava-dl then drives it as it
drives its own (set ``layers[0].neuron.bias_mant``).
"""

from __future__ import annotations

import os

import numpy as np

from converters.netx.format import NETX_BIAS_EXP, ref_delay
from lmu2neuro.core import atomic
from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core import neurons
from lmu2neuro.core.errors import UserError
from lmu2neuro.core.intnet import IntNetwork


def netx_problems(net: IntNetwork) -> list[str]:
    """Every part of ``net`` that netx cannot express (empty: exportable)."""
    problems = []
    prev = net.input_name
    # the frame each layer hands on, as the written file states it (export_netx): the input's is the
    # first convolution's frame, else flat (None); a dense layer's is flat, a conv layer's its output
    frame = _frame_of(net, net.input_name)
    pops = net.populations
    if net.bias_input is not None:  # an input layer of neurons driven through their bias: layer 0
        first = net.population(net.bias_input.target)
        if pops[0] is not first or net.projections_into(first.name):
            problems.append(f"population '{first.name}': the input drives it through its bias, so it must be the "
                            "first population, fed by nothing (netx's input layer)")
        if np.any(first.bias_mant):
            problems.append(f"population '{first.name}': its own bias; a netx input layer's bias is the input "
                            "transform's, and the input replaces the neurons' bias")
        prev, frame, pops = first.name, _frame_of(net, first.name), pops[1:]
    for pop in pops:
        if pop.kind != neurons.DEFAULT:
            problems.append(f"population '{pop.name}': neuron kind '{pop.kind}'; this writer writes CUBA LIF layers only")
        into = net.projections_into(pop.name)
        if pop.helper and not into:  # the always-on bias source
            targets = ", ".join(f"'{s.target}'" for s in net.projections if s.source == pop.name)
            problems.append(f"population '{pop.name}': a {pop.helper} (a bias that enters the synaptic current of "
                            f"{targets}, e.g. snnTorch's Synaptic after a biased layer); a netx layer's bias enters "
                            "the voltage and its layers form a chain: write NIR instead")
            continue
        if pop.reset != "zero":
            problems.append(f"population '{pop.name}': reset '{pop.reset}'; lava-dl's netx CUBA neuron resets to zero")
        if len(into) != 1 or into[0].source != prev:
            srcs = ", ".join(f"'{s.name}' from '{s.source}'" for s in into) or "none"
            problems.append(f"population '{pop.name}': netx layers form a chain, expected one projection from "
                            f"'{prev}' (found {srcs})")
        for s in into:
            if s.conv is not None and s.conv.dims != 2:
                problems.append(f"projection '{s.name}': a {s.conv.dims}-D convolution; netx conv layers are 2-D")
            if s.conv is not None and tuple(s.conv.in_shape) != frame:
                given = f"frame {frame}" if frame is not None else f"a flat vector of {net.size_of(s.source)}"
                problems.append(f"projection '{s.name}': a convolution over frame {tuple(s.conv.in_shape)}, but "
                                f"'{s.source}' outputs {given}; netx has no reshape")
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
        frame = tuple(into[0].out_shape) if len(into) == 1 and into[0].conv is not None else None
        bias = np.asarray(pop.bias, dtype=np.int64)
        if np.any(bias % (1 << NETX_BIAS_EXP)):
            problems.append(f"population '{pop.name}': bias not a multiple of 64; netx fixes bias_exp = 6")
        elif bias.size and np.abs(bias >> NETX_BIAS_EXP).max() > fx.BIAS_MANT_MAX:
            problems.append(f"population '{pop.name}': bias / 64 exceeds the 13-bit bias mantissa")
        prev = pop.name
    if net.populations and net.output != net.populations[-1].name:
        problems.append(f"output '{net.output}': netx's output is the last layer")
    return problems


def _frame_of(net: IntNetwork, name: str) -> tuple[int, ...] | None:
    """The (C, H, W) frame a population (or the input) outputs, where a convolution states one."""
    for s in net.projections:
        if s.conv is not None and s.source == name:
            return tuple(s.conv.in_shape)
        if s.conv is not None and s.target == name:
            return tuple(s.out_shape)
    return None


def _text(group, field: str, value: str) -> None:
    import h5py

    group.create_dataset(field, data=value, dtype=h5py.string_dtype())


def _neuron(g, pop) -> None:
    n = g.create_group("neuron")
    _text(n, "type", "CUBA")
    n.create_dataset("iDecay", data=pop.du + fx.DU_OFFSET)
    n.create_dataset("vDecay", data=pop.dv)
    n.create_dataset("vThMant", data=pop.vth)
    n.create_dataset("refDelay", data=ref_delay(pop.refractory))
    n.create_dataset("gradedSpike", data=False)


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
            _text(inp, "type", "input")
            pops = net.populations
            if net.bias_input is not None:  # lava-dl's input layer of neurons and its transform
                first, pops = pops[0], pops[1:]
                in_frame = _frame_of(net, first.name)
                _neuron(inp, first)
                inp.create_dataset("weight", data=np.float32(net.bias_input.weight))
                inp.create_dataset("bias", data=np.float32(net.bias_input.bias))
                inp.attrs["name"] = first.name
            else:
                in_frame = _frame_of(net, net.input_name)
            inp.create_dataset("shape", data=np.array(in_frame or [net.input_size]))
            index = 1
            frame = in_frame
            for pop in pops:
                s = net.projections_into(pop.name)[0]
                stored = (np.asarray(s.weights[0], dtype=np.int64) << s.weight_exp).astype(np.int32)
                bias = (np.asarray(pop.bias, dtype=np.int64) >> NETX_BIAS_EXP).astype(np.int32)
                if s.conv is None and frame is not None:
                    fl = layers.create_group(str(index))
                    _text(fl, "type", "flatten")
                    fl.create_dataset("shape", data=np.array([int(np.prod(frame)), 1, 1]))
                    index += 1
                g = layers.create_group(str(index))
                index += 1
                if s.conv is None:
                    _text(g, "type", "dense")
                    g.create_dataset("shape", data=np.array([pop.size]))
                    g.create_dataset("weight", data=stored)
                    g.create_dataset("bias", data=bias)
                    frame = None
                else:
                    out = tuple(int(v) for v in s.out_shape)
                    _text(g, "type", "conv")
                    g.create_dataset("shape", data=np.array(out))
                    g.create_dataset("weight", data=stored)
                    g.create_dataset("kernelSize", data=np.array(stored.shape[2:]))
                    g.create_dataset("inChannels", data=s.conv.in_shape[0])
                    g.create_dataset("outChannels", data=out[0])
                    g.create_dataset("stride", data=np.array(s.conv.stride))
                    g.create_dataset("padding", data=np.array(s.conv.padding))
                    g.create_dataset("dilation", data=np.array(s.conv.dilation))
                    g.create_dataset("groups", data=s.conv.groups)
                    per_neuron = bias.reshape(out)
                    if np.all(per_neuron == per_neuron[:, :1, :1]):
                        g.create_dataset("bias", data=per_neuron[:, 0, 0])
                    else:  # lava-dl's neuron-wise bias is in its (x, y, f) order
                        g.create_dataset("bias", data=per_neuron.transpose(2, 1, 0))
                    frame = out
                _neuron(g, pop)
                g.attrs["name"] = pop.name
                g.attrs["readout"] = bool(pop.readout)
