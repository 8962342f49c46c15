"""lava-dl netx HDF5 -> IntNetwork: a SLAYER-trained chain of layers as the deployed integer network.

A netx file is a chain ``/layer/0 .. /layer/{n-1}``; each group has a ``type`` and a ``shape``
(torch order: ``(C, H, W)`` for a frame, ``(n,)`` for a vector; lava-dl reverses it into Lava's
``(x, y, f)``), and the synaptic layers a ``weight`` and a ``neuron/`` group. What each field means
is taken from lava-dl 0.6 (``netx/hdf5.py`` reads it, ``slayer/block/base.py`` writes it):

- ``neuron/``: ``type`` CUBA (or LOIHI), ``iDecay`` -> ``du = iDecay - 1`` (Lava's encoding,
  ``fixed_point.DU_OFFSET``), ``vDecay`` -> ``dv``, ``vThMant`` -> ``vth``; ``bias`` is the bias
  mantissa with ``bias_exp = 6``. ``refDelay`` is Loihi's refractDelay (6 bits, 1..63; 0 is taken
  as 1): 1 is the LIF as it is (spike, reset, integrate from the next step: what Lava's LIF does,
  and all SLAYER writes), k > 1 holds the neuron k - 1 steps after each spike
  (``Population.refractory``, ``fixed_point.lif_step``). lava-dl 0.6's ``Network`` ignores
  ``refDelay`` (it builds every CUBA layer as Lava's plain LIF), so a file with refDelay > 1 runs
  there without the period. ``gradedSpike`` true and ``messageBits`` > 0 are refused.
- ``neuron/`` of ``type`` SDNN (lava-dl's sigma-delta, ``core/neurons/sigma_delta.py``): a population
  of kind ``sigma_delta`` as ``Network.get_neuron_params`` builds it: the input layer a ``Delta``
  (fed the frames one to one, the encoder lava-dl's PilotNet SDNN example puts before the first
  synapse: netx's Input block leaves its a_in unconnected), a ``sigma_output`` layer a ``Sigma``
  (the readout: its score is sigma), every other a ``SigmaDelta`` with ReLU; ``vThMant`` the delta
  threshold, ``bias`` unscaled (16 bits), spike_exp and state_exp 6. ``activation`` other than relu
  is refused (lava-dl runs ReLU whatever the file says); ``messageBits`` is not read (a payload
  width of Lava's ports, unenforced in simulation).
- ``weight``: integers, the effective synaptic weight itself (lava-dl's ``optimize_weight_bits``
  only re-encodes them as an 8-bit mantissa and exponent); conv kernels ``(C_out, C_in / groups,
  kH, kW)``, PyTorch's cross-correlation (lava-dl flips them for Lava's true convolution).
- ``dense``: ``delay`` (optional, whole steps, 0..62) is scalar, one per target (axonal), one per
  source, or a full matrix, resolved as lava-dl does; delay d becomes tap d of the projection.
- ``conv`` / ``pool``: ``stride``, ``padding``, ``dilation`` in (H, W) order (scalar or two
  values); ``groups``; a pool is a depthwise convolution with the one (1, 1, kH, kW) kernel. Both
  become conv projections with the kernel stored once; populations are flat in C order of
  ``(C, H, W)``, and that is also the order in which lava-dl flattens a frame into a dense layer
  (``transpose([2, 1, 0]).flatten()`` of (x, y, f)), so ``flatten`` is the identity.
- ``input``: the input frame's shape. With a ``neuron/``, the input is a population of its own
  driven as lava-dl drives it: through its neurons' bias (``in_layer.neuron.bias_mant = frame``,
  ``bias_exp`` 6, its ``a_in`` left unconnected): ``IntNetwork.bias_input``. The layer's
  ``weight`` (default 64) and ``bias`` are SLAYER's Input transform z = w x + b, which the user's
  data pipeline applies to a raw frame before it becomes the bias (lava-dl's PilotNet dataset:
  int32(w (2 x - 1) + b)); they are kept as ``BiasInput.weight`` / ``bias`` (simulate's
  ``--input-mode transform``). A file whose input layer has no neuron takes the graded current.
- ``average``: SLAYER's mean over ``shape[0]`` equal groups of the previous layer. Loihi has no
  mean: it becomes a readout whose voltage sums each group's spikes (64 x the mean x the group
  size, same argmax); it must be the last layer.

lava-dl's own Network raises NotImplementedError for pool and average layers; this reader is what
runs them.

Matching lava-dl's ``netx.hdf5.Network`` in Lava (tests/converters/netx/test_netx_read.py): load it
with ``input_message_bits=8`` so the first synapse takes the graded 8-bit payload as ours does (a file
with input neurons: set ``bias_mant`` of its first layer instead, tests/converters/netx/test_netx_bias_input.py), feed
each (C, H, W) frame transposed to Lava's (x, y, f) = (W, H, C), and read layer k's spikes k steps
late (each Dense / Conv synapse in Lava adds one step; the IntNetwork has no latency). Nothing else
differs: the spikes are then identical, layer by layer, delays included.

Everything from the file is checked here before it is used, with one ``UserError`` line naming the
file, the layer and the field; the size guards of ``lmu2neuro.core.guards`` apply.
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager

import numpy as np

from converters.netx.format import MAX_DELAY, NETX_BIAS_EXP, REF_DELAY_MAX, refractory_of
from converters.netx.layer import Layer, netx_frame
from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core import guards, neurons
from lmu2neuro.core.conv import ConvGeometry
from lmu2neuro.core.errors import UserError
from lmu2neuro.core.intnet import BiasInput, IntNetwork, IntNetworkError, Population, Projection
from lmu2neuro.core.neurons import sigma_delta

LAYER_TYPES = ("input", "dense", "conv", "pool", "flatten", "average")
INPUT_WEIGHT_DEFAULT = 64  # netx create_input's default transform weight


def is_netx(path: str | os.PathLike) -> bool:
    """True if ``path`` is an HDF5 file laid out as netx (a ``layer`` group, no NIR ``node`` group).
    Reads only the top-level names; anything that is not HDF5 is not netx."""
    import h5py

    try:
        with open(path, "rb") as fh:
            if fh.read(8) != b"\x89HDF\r\n\x1a\n":
                return False
        with h5py.File(path, "r") as f:
            return "layer" in f and "node" not in f
    except (OSError, ValueError, RuntimeError, KeyError):
        return False  # not readable as HDF5: the NIR reader then says what is wrong


def _mantissa(layer: Layer, field: str, stored: np.ndarray) -> tuple[np.ndarray, int]:
    """Stored netx weights (the effective integers) as an even 8-bit mantissa and an exponent,
    exactly: even values as they are (exp 0), else twice the value with a right shift of one
    (the accumulated sum of even products halves exactly)."""
    if stored.size and (stored.min() < fx.WEIGHT_MIN or stored.max() > fx.WEIGHT_MAX):
        bad = int(stored.reshape(-1)[np.argmax(np.abs(stored).reshape(-1))])
        layer.fail(field, f"weight {bad} outside Loihi's 8-bit range [{fx.WEIGHT_MIN}, {fx.WEIGHT_MAX}]")
    if not np.any(stored % 2):
        return stored, 0
    if stored.min() < fx.WEIGHT_MIN // 2 or stored.max() > fx.WEIGHT_MAX // 2:
        layer.fail(field, f"odd weights together with weights outside [{fx.WEIGHT_MIN // 2}, {fx.WEIGHT_MAX // 2}] "
                          "need 9 bits; Loihi's mixed-sign weights have 8")
    return stored * 2, -1


def _neuron(layer: Layer, size: int, name: str,
            frame: tuple[int, ...] | None, bias_field: bool = True) -> Population:
    if not layer.has("neuron"):
        layer.fail("neuron", "missing (lava-dl substitutes an integrator with iDecay 0, which Loihi cannot "
                             "express); expected a CUBA neuron group")
    import h5py

    if not isinstance(layer.g.get("neuron"), h5py.Group):
        layer.fail("neuron", "expected a group of neuron parameters")
    n = Layer(layer.path, layer.index, layer.g["neuron"])
    n.kind = layer.kind
    n.where = lambda field=None: layer.where(f"neuron/{field}" if field else None)  # type: ignore[method-assign]
    netx_type = n.text("type")
    nk = neurons.by_netx_type(netx_type)
    if nk is None or nk.name not in NETX_NEURONS:
        n.fail("type", f"'{netx_type}' is not supported; expected one of {', '.join(NEURON_TYPES)}")
    return NETX_NEURONS[nk.name](layer, n, size, name, frame, bias_field)


def _cuba_neuron(layer: Layer, n: Layer, size: int, name: str, frame, bias_field: bool) -> Population:
    du = n.scalar("iDecay", fx.DU_OFFSET, fx.DECAY_UNITY - 1 + fx.DU_OFFSET) - fx.DU_OFFSET
    dv = n.scalar("vDecay", 0, fx.DECAY_UNITY - 1)
    vth = n.scalar("vThMant", 0, fx.VTH_MAX)
    refractory = refractory_of(n.scalar("refDelay", 0, REF_DELAY_MAX, default=1))
    if n.has("gradedSpike") and n.scalar("gradedSpike", 0, 1):
        n.fail("gradedSpike", "graded spikes are not supported; expected false (binary spikes)")
    if n.has("messageBits") and n.scalar("messageBits", 0, 32):
        n.fail("messageBits", "graded output messages are not supported; expected 0")
    bias = _bias(layer, size, frame, fx.BIAS_MANT_MIN, fx.BIAS_MANT_MAX) if bias_field else np.zeros(size, np.int64)
    return Population(name, size, du=du, dv=dv, vth=vth, bias_mant=bias, bias_exp=NETX_BIAS_EXP,
                      refractory=refractory, shape=frame if frame is not None and len(frame) > 1 else None,
                      meta={"netx_layer": layer.index})


def _sdnn_neuron(layer: Layer, n: Layer, size: int, name: str, frame, bias_field: bool) -> Population:
    """lava-dl's SDNN layer as ``Network.get_neuron_params`` builds it: the input layer a ``Delta``,
    a ``sigma_output`` layer a ``Sigma`` (the readout), any other a ``SigmaDelta`` with ReLU;
    spike_exp and state_exp 6 (Network's defaults); the bias unscaled (SigmaDelta scales it)."""
    scale = sigma_delta.DEFAULTS["spike_exp"] + sigma_delta.DEFAULTS["state_exp"]  # netx's exponents
    vth = n.scalar("vThMant", 0, (fx.STATE_MAX >> scale) - 1)  # scaled by Lava into a 24-bit threshold
    if n.has("activation") and n.text("activation") != "relu":
        n.fail("activation", f"'{n.text('activation')}': lava-dl's netx runs every SDNN layer with ReLU; "
                             "expected relu")
    stage = "delta" if layer.kind == "input" else "sigma" if n.has("sigma_output") and n.scalar(
        "sigma_output", 0, 1) else "sigma_delta"
    bias = np.zeros(size, np.int64)
    if bias_field and layer.has("bias"):
        if stage == "sigma":
            layer.fail("bias", "a sigma_output layer (Lava's Sigma) has no bias; expected none")
        bias = _bias(layer, size, frame, -(1 << 15), (1 << 15) - 1)  # SigmaDelta's 16-bit bias
    return Population(name, size, du=0, dv=0, vth=vth, bias_mant=bias, bias_exp=0, readout=stage == "sigma",
                      shape=frame if frame is not None and len(frame) > 1 else None,
                      meta={"netx_layer": layer.index}, kind="sigma_delta", kind_params={"stage": stage})


# the netx neuron group of each neuron kind that netx writes (core/neurons names its netx types)
NETX_NEURONS = {"cuba_lif": _cuba_neuron, "sigma_delta": _sdnn_neuron}
NEURON_TYPES = tuple(t for k in NETX_NEURONS for t in neurons.kind(k).netx_type)


def _bias(layer: Layer, size: int, frame, lo: int, hi: int) -> np.ndarray:
    if not layer.has("bias"):
        return np.zeros(size, dtype=np.int64)
    b = layer.ints("bias", lo, hi)
    if b.ndim == 3 and frame is not None and b.shape == tuple(reversed(frame)):
        return b.transpose(2, 1, 0).reshape(-1)  # lava-dl's neuron-wise bias is in (x, y, f) order
    if b.size == size and b.ndim <= 1:
        return b.reshape(-1)
    if b.size == 1:
        return np.full(size, int(b.reshape(-1)[0]), dtype=np.int64)
    if frame is not None and len(frame) == 3 and b.shape == (frame[0],):
        return np.repeat(b, frame[1] * frame[2])  # one bias per channel, C order
    layer.fail("bias", f"shape {b.shape}: expected one value, one per channel or one per neuron ({size})")


def _delay_taps(layer: Layer, weight: np.ndarray) -> np.ndarray:
    """lava-dl's delay resolution (create_dense): scalar, per target, per source, or full."""
    out_n, in_n = weight.shape
    d = layer.ints("delay", 0, MAX_DELAY)
    if d.size == 1:
        d = np.full((out_n, in_n), int(d.reshape(-1)[0]))
    elif d.ndim == 1 and d.size == out_n:
        d = np.repeat(d.reshape(-1, 1), in_n, axis=1)
    elif d.ndim == 1 and d.size == in_n:
        d = np.repeat(d.reshape(1, -1), out_n, axis=0)
    elif d.shape != (out_n, in_n):
        layer.fail("delay", f"shape {d.shape}: expected one value, {out_n} (per target), {in_n} (per source) or "
                            f"({out_n}, {in_n})")
    taps = int(d.max()) + 1 if d.size else 1
    guards.check_elements(layer.path, f"layer {layer.index} (dense) field 'delay' as {taps} taps",
                          (taps, out_n, in_n))
    w = np.zeros((taps, out_n, in_n), dtype=np.int64)
    rows, cols = np.indices((out_n, in_n))
    w[d, rows, cols] = weight
    return w


def read_netx(path: str | os.PathLike, dt: float | None = None, input_scale: float | None = None) -> IntNetwork:
    """Read a lava-dl netx HDF5 file as an IntNetwork (exact: netx holds Loihi integers).

    ``dt``: seconds per step to record (netx states none); ``input_scale``: float input ->
    ``clip(round(x * input_scale), -128, 127)``, default 1 (netx takes the integer payload).
    Every population resets to zero: netx states no reset because lava-dl's CUBA neuron (Lava's LIF)
    has only that one."""
    import h5py

    guards.require_file(path, "netx file", "a lava-dl netx .net/.h5 file")
    if dt is not None and not (isinstance(dt, (int, float)) and dt > 0 and math.isfinite(dt)):
        raise UserError(f"{path}: dt = {dt}: expected a positive, finite number of seconds per step")
    if input_scale is not None and not (input_scale > 0 and math.isfinite(input_scale)):
        raise UserError(f"{path}: input_scale = {input_scale}: expected a positive, finite number")
    with _bad_file_is_user_error(path):
        guards.check_hdf5(path)
        with h5py.File(path, "r") as f:
            return _read(f, path, dt, input_scale)


@contextmanager
def _bad_file_is_user_error(path):
    """A corrupted file can fail inside HDF5 or numpy itself: that is bad input, not a crash, so
    it becomes one UserError line naming the file."""
    try:
        yield
    except UserError:
        raise
    except IntNetworkError as exc:
        raise UserError(f"{path}: {exc}") from None
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError,
            MemoryError, RuntimeError) as exc:
        raise UserError(f"{path}: not a readable netx file ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:120] if str(exc) else 'no detail'})") from None


def _layer_groups(f, path) -> list:
    import h5py

    if not isinstance(f.get("layer"), h5py.Group):
        raise UserError(f"{path}: field 'layer': expected the group of netx layers /layer/0 .. /layer/n-1")
    top = f["layer"]
    names = list(top.keys())
    if not names:
        raise UserError(f"{path}: field 'layer': no layers")
    expected = {str(i) for i in range(len(names))}
    if set(names) != expected:
        odd = sorted(set(names) - expected)[:4]
        raise UserError(f"{path}: field 'layer': layer names {odd} where 0 .. {len(names) - 1} were expected "
                        "(netx layers are numbered in order)")
    groups = []
    for i in range(len(names)):
        g = top.get(str(i))
        if not isinstance(g, h5py.Group):
            raise UserError(f"{path}: layer {i}: expected a group")
        groups.append(g)
    return groups


def _layer_name(g, index: int, used: set[str]) -> str:
    """The population's name: the one lmu2neuro's export stores as an attribute, else layer{i}."""
    name = g.attrs.get("name", None)
    if isinstance(name, bytes):
        name = name.decode("utf-8", "replace")
    if isinstance(name, str) and name.strip() and name not in used:
        return name
    name = f"layer{index}"
    return name if name not in used else f"layer{index}_{len(used)}"


def _read(f, path, dt, input_scale) -> IntNetwork:
    groups = _layer_groups(f, path)
    populations: list[Population] = []
    projections: list[Projection] = []
    source = "input"  # IntNetwork.input_name
    frame: tuple[int, ...] | None = None  # the frame (or vector) the previous layer outputs
    input_size = None
    bias_input = None
    used: set[str] = {"input"}
    for i, g in enumerate(groups):
        layer = Layer(path, i, g)
        layer.kind = layer.text("type")
        if layer.kind not in LAYER_TYPES:
            layer.fail("type", f"'{layer.kind}' is not supported; expected one of {', '.join(LAYER_TYPES)}")
        if populations and populations[-1].readout:
            layer.fail(None, "follows an 'average' layer; average must be the last layer")
        name = _layer_name(g, i, used)
        used.add(name)

        if layer.kind == "input":
            if i != 0:
                layer.fail("type", "an input layer must be layer 0")
            frame = netx_frame(layer.shape())
            input_size = int(np.prod(frame))
            if layer.has("neuron"):
                populations.append(_neuron(layer, input_size, name, frame, bias_field=False))
                if neurons.kind(populations[-1].kind).graded:  # SDNN: a Delta encoder takes the frames as a_in
                    projections.append(_encoder_synapse(name, input_size, i))
                else:  # lava-dl drives these neurons through their bias, a_in unconnected
                    bias_input = BiasInput(name, _transform_value(layer, "weight", INPUT_WEIGHT_DEFAULT),
                                           _transform_value(layer, "bias", 0.0))
                source = name
            continue

        if frame is None and layer.kind != "dense":  # a first dense layer states its input size in its weight
            layer.fail(None, "the input frame is unknown; expected an 'input' layer 0 with its 'shape' before "
                             "the first conv, pool or flatten (what netx.hdf5.Network asks as input_shape)")

        if layer.kind == "flatten":
            frame = (int(np.prod(frame)),)
            continue

        if layer.kind == "dense":
            w = layer.ints("weight")
            declared = layer.shape()
            out_n = int(np.prod(declared))
            if w.ndim == 1:  # netx reshapes a flat weight to (out, -1)
                if w.size % out_n:
                    layer.fail("weight", f"{w.size} values do not fill {out_n} rows")
                w = w.reshape(out_n, -1)
            if w.ndim != 2 or w.shape[0] != out_n:
                layer.fail("weight", f"shape {w.shape}: expected ({out_n}, inputs) for shape {declared}")
            if frame is None:
                frame = (int(w.shape[1]),)
                input_size = frame[0]
            if w.shape[1] != int(np.prod(frame)):
                layer.fail("weight", f"shape {w.shape}: {w.shape[1]} inputs, but the layer before outputs "
                                     f"{int(np.prod(frame))} (shape {frame})")
            mant, exp = _mantissa(layer, "weight", w)
            taps = _delay_taps(layer, mant) if layer.has("delay") else mant[None]
            pop = _neuron(layer, out_n, name, None)
            # lmu2neuro's own export marks its readout (an integrator that never spikes)
            pop.readout = pop.readout or bool(g.attrs.get("readout", False) is True or g.attrs.get("readout", 0) == 1) and \
                pop.is_integrator
            projections.append(Projection(f"{name}.w", source, name, taps, exp,
                                          origin={"kind": "netx_dense", "layer": i}))
            populations.append(pop)
            source, frame = name, (out_n,)
            continue

        if layer.kind == "average":
            declared = layer.shape()
            groups_n = int(declared[0])
            if int(np.prod(declared)) != groups_n:
                layer.fail("shape", f"{declared}: expected (outputs,) or (outputs, 1, 1)")
            if i != len(groups) - 1:
                layer.fail("type", "average must be the last layer (it is read out on the host)")
            size_in = int(np.prod(frame))
            if source == "input":
                layer.fail("type", "average needs a spiking layer before it")
            if size_in % groups_n:
                layer.fail("shape", f"{groups_n} outputs do not divide the {size_in} neurons of the layer before")
            per = size_in // groups_n
            guards.check_elements(path, f"layer {i} (average) as a dense readout", (1, groups_n, size_in))
            w = np.zeros((1, groups_n, size_in), dtype=np.int64)
            for k in range(groups_n):
                w[0, k, k * per:(k + 1) * per] = 2  # mantissa 2, exponent -1: weight 1, the group's spike count
            pop = Population.readout_of(name, groups_n, meta={
                "netx_layer": i, "netx_average_of": per,
                "note": f"voltage = 64 x the spike count of each group of {per} (input enters 6 bits up) "
                        f"= SLAYER's mean x {64 * per}: the same argmax"})
            projections.append(Projection(f"{name}.w", source, name, w, -1, origin={"kind": "netx_average", "layer": i}))
            populations.append(pop)
            source, frame = name, (groups_n,)
            continue

        # conv / pool: a frame in, a frame out
        if len(frame) != 3:
            layer.fail("type", f"needs a (C, H, W) frame before it, the layer before outputs shape {frame}")
        declared = netx_frame(layer.shape())
        if len(declared) != 3:
            layer.fail("shape", f"{declared}: expected (C, H, W)")
        w = layer.ints("weight")
        if w.ndim == 5 and w.shape[-1] == 1:  # SLAYER's (.., 1) time axis, as netx reshapes it away
            w = w[..., 0]
        if w.ndim != 4:
            layer.fail("weight", f"shape {w.shape}: expected (C_out, C_in / groups, kH, kW)")
        for fld in ("stride", "padding", "dilation"):
            if layer.has(fld) and layer.ints(fld).size not in (1, 2):
                layer.fail(fld, "expected one value or two (H, W)")
        stride = layer.pair("stride", 1, 1 << 16, (1, 1) if layer.kind == "conv" else tuple(w.shape[2:]))
        padding = layer.pair("padding", 0, 1 << 16, (0, 0))
        dilation = layer.pair("dilation", 1, 1 << 16, (1, 1))
        c_in = frame[0]
        if layer.kind == "conv":
            groups_c = layer.scalar("groups", 1, 1 << 20, default=1)
            kernel = w
        else:
            if w.shape[:2] != (1, 1):
                layer.fail("weight", f"shape {w.shape}: a pool kernel is (1, 1, kH, kW), applied to every channel")
            groups_c = c_in
            guards.check_elements(path, f"layer {i} (pool) kernel over {c_in} channels", (c_in,) + w.shape[1:])
            kernel = np.broadcast_to(w, (c_in, 1) + w.shape[2:]).copy()
        if layer.has("kernelSize"):
            k = layer.ints("kernelSize", 1, 1 << 16).reshape(-1)
            if tuple(int(v) for v in (k if k.size == 2 else np.repeat(k, 2))) != tuple(w.shape[2:]):
                layer.fail("kernelSize", f"{tuple(int(v) for v in k)} differs from the weight's {tuple(w.shape[2:])}")
        mant, exp = _mantissa(layer, "weight", kernel)
        geo = ConvGeometry(frame, stride, padding, dilation, groups_c)
        problem = geo.problem((1,) + mant.shape)
        if problem:
            layer.fail("weight", f"cannot apply to the frame {frame} before it: {problem}")
        out = geo.out_shape((1,) + mant.shape)
        if tuple(out) != tuple(declared):
            layer.fail("shape", f"{declared} declared, but the {layer.kind} of frame {frame} gives {tuple(out)}")
        # bounded at read time, as the NIR reader does, by the bound Projection.pairs applies anyway
        geo.check_synapses((1,) + mant.shape, path, f"layer {i} ({layer.kind})")
        if layer.has("delay"):
            layer.fail("delay", f"synaptic delays on a {layer.kind} layer are not read (lava-dl 0.6's netx ignores "
                                "them); expected no delay")
        size = int(np.prod(out))
        pop = _neuron(layer, size, name, tuple(out))
        projections.append(Projection(f"{name}.w", source, name, mant[None], exp, conv=geo,
                                      origin={"kind": f"netx_{layer.kind}", "layer": i}))
        populations.append(pop)
        source, frame = name, tuple(out)

    if not populations:
        raise UserError(f"{path}: field 'layer': no synaptic layer (dense, conv, pool); nothing to run")
    if input_size is None:
        raise UserError(f"{path}: layer 0: the input size is unknown")
    scale = 1.0 if input_scale is None else float(input_scale)
    return IntNetwork(input_size=input_size, input_scale=scale, populations=populations, projections=projections,
                      output=populations[-1].name, dt=None if dt is None else float(dt),
                      meta={"format": "netx", "source": str(path)}, bias_input=bias_input)


def _encoder_synapse(name: str, size: int, index: int) -> Projection:
    """The input frames into an SDNN input layer's a_in, one to one (weight 2 >> 1 = 1: even 8-bit
    mantissas). lava-dl's Input block leaves that port unconnected; its users feed the first synapse
    from a Delta encoder of their own (the PilotNet SDNN example), which is what this layer is."""
    return Projection(f"{name}.encode", "input", name, 2 * np.eye(size, dtype=np.int64)[None], -1,
                      origin={"kind": "netx_input", "layer": index, "helper": "input encoder"})


def _transform_value(layer: Layer, field: str, default: float) -> float:
    """One finite number of the input layer's transform (SLAYER's Input: weight, bias)."""
    if not layer.has(field):
        return float(default)
    ds = layer.dataset(field)
    if ds.dtype.kind not in guards.NUMERIC_KINDS:
        layer.fail(field, f"expected a number, found dtype {ds.dtype}")
    v = np.asarray(ds[()], dtype=np.float64).reshape(-1)
    if v.size != 1 or not np.isfinite(v[0]):
        layer.fail(field, f"expected one finite number (the input transform's {field}), found {v[:4].tolist()}")
    return float(v[0])


def summarize_netx(path: str | os.PathLike) -> dict:
    """What ``inspect`` shows for a netx file, in the same keys as for a NIR file."""
    guards.require_file(path, "netx file", "a lava-dl netx .net/.h5 file")
    with _bad_file_is_user_error(path):
        guards.check_hdf5(path)
        rows = _summary_rows(path)
    ok, reason, net = False, None, None
    try:
        net = read_netx(path)
        ok = True
    except UserError as exc:
        reason = str(exc)
    pops = [] if net is None else net.population_summary()
    return {
        "file": str(path),
        "format": "netx",
        "written_by_lmu2neuro": False,
        "nodes": rows,
        "edges": [[rows[k]["name"], rows[k + 1]["name"]] for k in range(len(rows) - 1)],
        "recurrent_edges": [],
        "metadata": {"format": "lava-dl netx", "layers": len(rows)},
        "total_parameters": int(sum(r["parameters"] for r in rows)),
        "lava_supported": ok,
        "loihi_populations": pops,
        "unsupported_nodes": sorted({f"{r['name']} ({r['type']})" for r in rows if r["type"] not in LAYER_TYPES}),
        "lava_reason": reason,
    }


def _summary_rows(path) -> list[dict]:
    import h5py

    rows: list[dict] = []
    with h5py.File(path, "r") as f:
        for i, g in enumerate(_layer_groups(f, path)):
            layer = Layer(path, i, g)
            try:
                layer.kind = layer.text("type")
            except UserError:
                layer.kind = "?"
            params = 0
            for fld in ("weight", "bias"):
                if fld in g and isinstance(g.get(fld), h5py.Dataset):
                    params += int(g[fld].size)
            shape = [int(s) for s in np.asarray(g["shape"][()]).reshape(-1)] if isinstance(g.get("shape"), h5py.Dataset) \
                and g["shape"].dtype.kind in "iuf" else None
            rows.append({"name": f"layer/{i}", "type": layer.kind, "input_shape": rows[-1]["output_shape"] if rows else None,
                         "output_shape": shape, "parameters": params,
                         "metadata": sorted(k for k in g.keys() if k not in ("type", "shape", "weight", "bias"))})
    return rows
