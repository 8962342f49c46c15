"""Small netx files as lava-dl SLAYER writes them (its blocks' own export_hdf5), and a runner for
lava-dl's own ``netx.hdf5.Network`` in Lava fixed_pt that returns each layer's spikes in our order."""

from __future__ import annotations

import h5py
import numpy as np

NEURON = {"threshold": 1.0, "current_decay": 0.25, "voltage_decay": 0.03, "requires_grad": False}


def slayer_file(path, kind: str = "conv", seed: int = 0, delays: str | None = "target"):
    """Write a SLAYER network with export_hdf5: layer 0 the input frame, then its blocks.

    kind "conv": Conv(2->4, 3x3, pad 1), Conv(4->4, 3x3, stride 2, pad 1, groups 2, dilation 1),
    Pool(2), Flatten, Dense(16->10, with delays), Dense(10->3). kind "dense": Dense(12->8 with
    delays), Dense(8->4). ``delays``: None, "target" (SLAYER's own per-neuron delay) or "source"."""
    import converters.lava  # noqa: F401  (the compatibility layer before any Lava import)
    import torch
    from lava.lib.dl import slayer

    torch.manual_seed(seed)
    cuba = slayer.block.cuba
    with_delay = delays is not None
    if kind == "conv":
        frame = (2, 8, 8)
        blocks = [cuba.Conv(NEURON, 2, 4, 3, padding=1, weight_scale=2),
                  cuba.Conv(NEURON, 4, 4, 3, stride=2, padding=1, groups=2, weight_scale=3),
                  cuba.Pool(NEURON, 2, weight_scale=2),
                  cuba.Flatten(),
                  cuba.Dense(NEURON, 16, 10, weight_scale=3, delay=with_delay),
                  cuba.Dense(NEURON, 10, 3, weight_scale=3)]
    else:
        frame = (12,)
        blocks = [cuba.Dense(NEURON, 12, 8, weight_scale=2, delay=with_delay), cuba.Dense(NEURON, 8, 4, weight_scale=3)]
    x = (torch.rand((1,) + frame + (6,)) < 0.3).float()
    with torch.no_grad():
        for b in blocks:
            x = b(x)  # SLAYER learns each block's shape on its first forward
    with h5py.File(path, "w") as f:
        layer = f.create_group("layer")
        g = layer.create_group("0")
        g.create_dataset("type", (1,), "S10", [b"input"])
        g.create_dataset("shape", data=np.array(frame))
        for i, b in enumerate(blocks, start=1):
            b.export_hdf5(layer.create_group(str(i)))
        rng = np.random.default_rng(seed)
        for i, b in enumerate(blocks, start=1):
            if getattr(b, "delay", None) is not None and with_delay:
                g = layer[str(i)]
                n_in = g["weight"].shape[1]
                del g["delay"]
                d = rng.integers(0, 4, g["weight"].shape[0] if delays == "target" else n_in)
                g.create_dataset("delay", data=d.astype(np.float32))  # SLAYER writes floor(delay) as float
    return path


def pool_as_conv(src, dst):
    """The same file with every pool layer written as the depthwise conv it is (lava-dl 0.6's
    Network raises NotImplementedError for 'pool'): what lava-dl can run."""
    import shutil

    shutil.copy(src, dst)
    with h5py.File(dst, "a") as f:
        layers = f["layer"]
        prev_channels = None
        for i in range(len(layers)):
            g = layers[str(i)]
            kind = g["type"][()]
            kind = (kind[0] if np.ndim(kind) else kind).decode()
            if kind == "pool":
                w = g["weight"][()]
                del g["weight"], g["type"]
                g.create_dataset("type", (1,), "S10", [b"conv"])
                g.create_dataset("weight", data=np.broadcast_to(w, (prev_channels, 1) + w.shape[2:]).copy())
                g.create_dataset("groups", data=prev_channels)
            if "shape" in g and len(g["shape"][()]) == 3:
                prev_channels = int(g["shape"][()][0])
    return dst


def run_lava_netx(path, x: np.ndarray, extra_steps: int = 2) -> list[np.ndarray]:
    """x (T, n) integers in our C order -> per layer of lava-dl's Network, its raw spikes
    (T + layers + extra_steps, neurons) in our C order (no latency removed)."""
    import converters.lava  # noqa: F401
    from lava.lib.dl import netx
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.source import RingBuffer
    from lava.proc.monitor.process import Monitor

    nx = netx.hdf5.Network(net_config=str(path), input_message_bits=8)
    steps_in = x.shape[0]
    steps = steps_in + len(nx.layers) + extra_steps
    shape = tuple(nx.inp.shape)  # Lava's (x, y, f) = (W, H, C), or (n,)
    frames = x.reshape((steps_in,) + shape[::-1]).transpose((0,) + tuple(range(len(shape), 0, -1)))
    data = np.zeros(shape + (steps,), dtype=int)
    data[..., :steps_in] = np.moveaxis(frames, 0, -1)
    src = RingBuffer(data=data)
    src.s_out.connect(nx.inp)
    monitors = []
    for lay in nx.layers:
        m = Monitor()
        m.probe(lay.neuron.s_out, steps)
        monitors.append(m)
    try:
        nx.run(RunSteps(steps), Loihi2SimCfg(select_tag="fixed_pt"))
        out = []
        for m, lay in zip(monitors, nx.layers):
            d = np.asarray(m.get_data()[lay.neuron.name]["s_out"])
            if d.ndim == 4:  # (steps, x, y, f) -> (steps, C, H, W)
                d = d.transpose(0, 3, 2, 1)
            out.append(d.reshape(steps, -1) != 0)
    finally:
        nx.stop()
    return out


SDNN_NEURON = {"threshold": 0.1, "requires_grad": False}


def sdnn_file(path, kind: str = "dense", seed: int = 0):
    """A SLAYER sigma-delta network written by its blocks' own export_hdf5 (lava-dl's PilotNet SDNN
    pattern): ``sigma_delta.Input`` (a Delta encoder), then kind "dense": Dense(12->8), Output(8->4);
    kind "conv": Conv(2->4, 3x3, pad 1) on a (2, 5, 5) frame, Flatten, Dense(100->8), Output(8->4).
    The weights are scaled so that every layer sends messages."""
    import converters.lava  # noqa: F401  (the compatibility layer before any Lava import)
    import torch
    from lava.lib.dl import slayer

    torch.manual_seed(seed)
    sd = slayer.block.sigma_delta
    p = {**SDNN_NEURON, "activation": torch.nn.functional.relu}
    if kind == "conv":
        frame = (2, 5, 5)
        blocks = [sd.Input(p), sd.Conv(p, 2, 4, 3, padding=1, weight_scale=2), sd.Flatten(),
                  sd.Dense(p, 100, 8, weight_scale=2), sd.Output(p, 8, 4, weight_scale=2)]
    else:
        frame = (12,)
        blocks = [sd.Input(p), sd.Dense(p, 12, 8, weight_scale=2), sd.Output(p, 8, 4, weight_scale=2)]
    x = torch.rand((1,) + frame + (6,))
    with torch.no_grad():
        for b in blocks:
            x = b(x)  # SLAYER learns each block's shape on its first forward
    with h5py.File(path, "w") as f:
        layer = f.create_group("layer")
        for i, b in enumerate(blocks):
            b.export_hdf5(layer.create_group(str(i)))
    return path


def run_lava_sdnn(path, x, vth: int):
    """lava-dl's own ``netx.hdf5.Network`` on an SDNN file in Lava fixed_pt, fed as lava-dl's PilotNet
    SDNN example feeds it: the input layer skipped (``skip_layers=1``: netx's Input block leaves the
    Delta's a_in unconnected) and Lava's own ``Delta`` (the file's input vThMant, spike_exp and
    state_exp 6) encoding x (T, C, H, W or n) into the first synapse. Returns the encoder's payloads
    and each layer's, (T, n) in C order, in reference time (layer k answers k steps late)."""
    import converters.lava  # noqa: F401  (the compatibility layer before any Lava import)
    from lava.lib.dl import netx
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.source import RingBuffer
    from lava.proc.monitor.process import Monitor
    from lava.proc.sdn.process import Delta

    steps_in = x.shape[0]
    nx = netx.hdf5.Network(net_config=str(path), skip_layers=1)
    layers = len(nx.layers)
    steps = steps_in + layers
    frames = np.zeros((steps,) + x.shape[1:], dtype=np.int32)
    frames[:steps_in] = x
    lava_frames = frames.transpose(*range(frames.ndim - 1, 0, -1), 0) if frames.ndim > 2 else frames.T
    src = RingBuffer(data=lava_frames)  # Lava's (x, y, f) frame order, time last
    enc = Delta(shape=lava_frames.shape[:-1], vth=vth, spike_exp=6, state_exp=6)
    src.s_out.connect(enc.a_in)
    enc.s_out.connect(nx.inp)
    procs = [enc] + [lay.neuron for lay in nx.layers]
    mons = []
    for proc in procs:
        m = Monitor()
        m.probe(proc.s_out, steps)
        mons.append(m)
    try:
        nx.run(RunSteps(steps), Loihi2SimCfg(select_tag="fixed_pt"))
        raw = [np.asarray(m.get_data()[proc.name]["s_out"], dtype=np.int64) for m, proc in zip(mons, procs)]
    finally:
        nx.stop()

    def c_order(a):  # (T, x, y, f) -> (T, f * y * x) in C order of (f, y, x) = (C, H, W)
        return a.reshape(a.shape[0], -1) if a.ndim == 2 else a.transpose(0, 3, 2, 1).reshape(a.shape[0], -1)

    return [c_order(r[k:k + steps_in]) for k, r in enumerate(raw)]
