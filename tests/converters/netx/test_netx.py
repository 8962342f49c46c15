"""IntNetwork -> lava-dl netx HDF5, loaded by lava-dl's own netx and run in Lava fixed_pt."""

import h5py
import numpy as np
import pytest

from converters.netx.export import export_netx, netx_problems
from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core.errors import UserError
from lmu2neuro.core.intnet import IntNetwork, Population, Projection
from lmu2neuro.core.executor import execute


def _chain(seed=0):
    rng = np.random.default_rng(seed)

    def even(shape, lo, hi):
        return (rng.integers(lo // 2, hi // 2, size=shape) * 2).astype(np.int64)

    return IntNetwork(
        input_size=5, input_scale=10.0,
        populations=[
            Population("h1", 6, du=3000, dv=1000, vth=300, bias_mant=np.zeros(6, dtype=np.int64)),
            Population("h2", 4, du=4095, dv=2048, vth=100, bias_mant=np.zeros(4, dtype=np.int64)),
            Population("ro", 3, du=4095, dv=0, vth=fx.VTH_MAX, bias_mant=np.array([1, -2, 0]), bias_exp=6, readout=True),
        ],
        projections=[
            Projection("w1", "input", "h1", even((1, 6, 5), -60, 120)),
            Projection("w2", "h1", "h2", even((1, 4, 6), -60, 120), weight_exp=1),
            Projection("w3", "h2", "ro", even((1, 3, 4), -100, 100)),
        ],
        output="ro",
    )


def test_file_layout_follows_netx(tmp_path):
    net = _chain()
    path = tmp_path / "chain.net"
    export_netx(net, path)
    with h5py.File(path, "r") as f:
        assert f["layer/0/type"][()] == b"input" and list(f["layer/0/shape"][()]) == [5]
        for i, (pop, proj) in enumerate(zip(net.populations, net.projections), start=1):
            g = f[f"layer/{i}"]
            assert g["type"][()] == b"dense" and list(g["shape"][()]) == [pop.size]
            np.testing.assert_array_equal(g["weight"][()], proj.weights[0] << proj.weight_exp)
            w = g["weight"][()]
            assert w.min() >= -256 and w.max() <= 254 and not np.any(w % 2)
            np.testing.assert_array_equal(g["bias"][()] << 6, pop.bias)
            n = g["neuron"]
            assert n["type"][()] == b"CUBA"
            assert (n["iDecay"][()] - 1, n["vDecay"][()], n["vThMant"][()]) == (pop.du, pop.dv, pop.vth)


def test_inexpressible_parts_are_all_named(tmp_path):
    from netgen import every_projection_kind as make_net

    net = make_net()
    probs = netx_problems(net)
    text = " ".join(probs)
    for part in ("projection 'embed.w': 3 delay taps", "projection 'mem.w'", "population 'readout'",
                 "weight_exp -1 < 0", "bias not a multiple of 64"):
        assert part in text, part
    with pytest.raises(UserError, match=r"cannot write netx: .*embed\.w"):
        export_netx(net, tmp_path / "x.net")
    assert not (tmp_path / "x.net").exists()


def _run_netx(path, net, x):
    """Run the netx file in Lava fixed_pt; spikes per population and readout voltage, in reference time."""
    import converters.lava  # noqa: F401  (the compatibility layer before any Lava import)
    from lava.lib.dl import netx
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.source import RingBuffer
    from lava.proc.monitor.process import Monitor

    steps_in, layers = x.shape[1], len(net.populations)
    steps = steps_in + layers  # one step of latency per dense layer
    data = np.zeros((net.input_size, steps), dtype=int)
    data[:, :steps_in] = x[0].T
    nx = netx.hdf5.Network(net_config=str(path), input_message_bits=8)
    src = RingBuffer(data=data)
    src.s_out.connect(nx.inp)
    mons = []
    for lay in nx.layers:
        m = Monitor()
        m.probe(lay.neuron.s_out, steps)
        mons.append(m)
    mv = Monitor()
    mv.probe(nx.layers[-1].neuron.v, steps)
    try:
        nx.run(RunSteps(steps), Loihi2SimCfg(select_tag="fixed_pt"))
        raw = [np.asarray(m.get_data()[lay.neuron.name]["s_out"], dtype=bool) for m, lay in zip(mons, nx.layers)]
        v = np.asarray(mv.get_data()[nx.layers[-1].neuron.name]["v"], dtype=np.int64)
    finally:
        nx.stop()
    # layer k answers k steps late; the readout also integrates its bias during the latency steps
    spikes = {pop.name: raw[k - 1][k:k + steps_in] for k, pop in enumerate(net.populations, start=1)}
    readout = v[layers:layers + steps_in] - layers * net.population(net.output).bias
    return spikes, readout


@pytest.mark.lava
def test_netx_in_lava_spikes_like_the_reference(tmp_path):
    net = _chain()
    path = tmp_path / "chain.net"
    export_netx(net, path)
    x = np.random.default_rng(5).integers(-20, 60, (1, 30, 5))
    ref = execute(net, x)
    assert int(ref.spikes["h1"].sum()) > 20 and int(ref.spikes["h2"].sum()) > 10
    spikes, readout = _run_netx(path, net, x)
    for pop in net.populations:
        np.testing.assert_array_equal(spikes[pop.name], ref.spikes[pop.name][0].numpy(), err_msg=pop.name)
    np.testing.assert_array_equal(readout, ref.readout_trace[0].numpy())


@pytest.mark.lava
def test_netx_agrees_with_our_lava_build(tmp_path):
    from converters.lava import builder as lava_builder
    net = _chain()
    path = tmp_path / "chain.net"
    export_netx(net, path)
    x = np.random.default_rng(6).integers(-20, 60, (1, 25, 5))
    spikes, _ = _run_netx(path, net, x)
    ours = lava_builder.run_lava(net, x, progress=False)  # raster0: sample 0, latency compensated
    for pop in net.populations[:-1]:
        np.testing.assert_array_equal(spikes[pop.name], ours.raster0[pop.name], err_msg=pop.name)
