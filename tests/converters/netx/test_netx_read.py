"""netx in: files written by lava-dl SLAYER's own export_hdf5 read into the IntNetwork, and the
reference executor spiking like lava-dl's own netx.hdf5.Network in Lava fixed_pt, layer by layer;
netx out for convolutional networks; inspect / simulate / report on a netx file."""

import json

import h5py
import numpy as np
import pytest
from netx_nets import pool_as_conv, run_lava_netx, slayer_file

from converters.netx.export import export_netx, netx_problems
from converters.netx.read import is_netx, read_netx
from converters.network_file import read_network_file
from lmu2neuro.cli import main
from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core.conv import ConvGeometry
from lmu2neuro.core.errors import UserError
from lmu2neuro.core.executor import execute
from lmu2neuro.core.intnet import IntNetwork, Population, Projection


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("netx")
    return {"conv": slayer_file(d / "conv.net", "conv", seed=0),
            "conv_src_delay": slayer_file(d / "conv_src.net", "conv", seed=1, delays="source"),
            "dense": slayer_file(d / "dense.net", "dense", seed=2),
            "dir": d}


def _inputs(net, steps, seed, batch=1):
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 60, (batch, steps, net.input_size))
    return x * (rng.random(x.shape) < 0.35)


def test_slayer_file_reads_as_conv_projections(files):
    net = read_netx(files["conv"])
    with h5py.File(files["conv"]) as f:
        w1 = f["layer/1/weight"][()]
        w2 = f["layer/2/weight"][()]
        pool = f["layer/3/weight"][()]
        d = f["layer/5/delay"][()].astype(int)
        w5 = f["layer/5/weight"][()]
    p1, p2, p3, p5, p6 = net.projections
    assert [p.name for p in net.populations] == ["layer1", "layer2", "layer3", "layer5", "layer6"]
    assert p1.conv == ConvGeometry((2, 8, 8), (1, 1), (1, 1), (1, 1), 1)
    assert p2.conv == ConvGeometry((4, 8, 8), (2, 2), (1, 1), (1, 1), 2)
    # the kernel stored once, at its effective integer value (mantissa << exp, exp -1 = halving)
    np.testing.assert_array_equal(np.ldexp(p1.weights[0].astype(float), p1.weight_exp), w1)
    np.testing.assert_array_equal(np.ldexp(p2.weights[0].astype(float), p2.weight_exp), w2)
    # the pool: a depthwise conv (groups = channels), stride = kernel, the one kernel on every channel
    assert p3.conv.groups == 4 and p3.conv.stride == (2, 2) and p3.weights.shape == (1, 4, 1, 2, 2)
    np.testing.assert_array_equal(np.ldexp(p3.weights[0].astype(float), p3.weight_exp), np.repeat(pool, 4, axis=0))
    assert net.population("layer3").shape == (4, 2, 2)
    # flatten is the identity; the per-target delays are taps
    assert p5.conv is None and p5.weights.shape == (d.max() + 1, 10, 16)
    eff = np.ldexp(p5.weights.astype(float), p5.weight_exp)
    for o in range(10):
        np.testing.assert_array_equal(eff[d[o], o], w5[o])
        assert not np.any(np.delete(eff[:, o], d[o], axis=0))
    pop = net.population("layer1")
    assert (pop.du, pop.dv, pop.vth, pop.bias_exp) == (1024 - fx.DU_OFFSET, 123, 64, 6)
    assert p1.stored_weights() == w1.size  # not the 256 x 128 dense matrix


def test_per_source_delays_follow_lava_dl(files):
    net = read_netx(files["conv_src_delay"])
    with h5py.File(files["conv_src_delay"]) as f:
        d = f["layer/5/delay"][()].astype(int)
        w5 = f["layer/5/weight"][()]
    p5 = net.projections[3]
    eff = np.ldexp(p5.weights.astype(float), p5.weight_exp)
    for i in range(16):
        np.testing.assert_array_equal(eff[d[i], :, i], w5[:, i])


def _agree(path, net, x, lava_path=None):
    ref = execute(net, x[None])
    raw = run_lava_netx(lava_path or path, x)
    steps = x.shape[0]
    assert len(raw) == len(net.populations)
    for k, (pop, r) in enumerate(zip(net.populations, raw), start=1):
        ours = ref.spikes[pop.name][0].numpy()
        assert ours.sum() > 0, pop.name  # a silent layer would agree trivially
        # lava-dl's layer k answers k steps late (one step per synapse); nothing before that
        assert not r[:k].any(), pop.name
        np.testing.assert_array_equal(r[k:k + steps], ours, err_msg=pop.name)


@pytest.mark.lava
def test_conv_pool_dense_spikes_like_lava_dl_network(files, tmp_path):
    net = read_netx(files["conv"])
    x = _inputs(net, 16, 0)[0]
    # lava-dl 0.6's Network cannot build a pool layer: it runs the same pool written as its own conv
    _agree(files["conv"], net, x, pool_as_conv(files["conv"], tmp_path / "pool_as_conv.net"))


@pytest.mark.lava
def test_dense_with_delays_spikes_like_lava_dl_network(files):
    net = read_netx(files["dense"])
    assert net.projections[0].taps > 1
    _agree(files["dense"], net, _inputs(net, 20, 1)[0])


def _conv_net(seed=0):
    rng = np.random.default_rng(seed)

    def even(shape, lo, hi):
        return rng.integers(lo // 2, hi // 2, size=shape).astype(np.int64) * 2

    g1 = ConvGeometry((2, 6, 6), (1, 1), (1, 1), (1, 1), 1)
    k1 = even((1, 4, 2, 3, 3), -40, 90)
    o1 = g1.out_shape(k1.shape)
    pool = ConvGeometry(o1, (2, 2), (0, 0), (1, 1), 4)
    kp = np.full((1, 4, 1, 2, 2), 60)
    o2 = pool.out_shape(kp.shape)
    bias3 = np.repeat(np.array([0, 1, -1, 2]), 9)
    pops = [Population("c1", int(np.prod(o1)), du=2000, dv=300, vth=100, bias_mant=np.zeros(int(np.prod(o1)), np.int64),
                       shape=o1),
            Population("p1", int(np.prod(o2)), du=4000, dv=100, vth=90, bias_mant=bias3, bias_exp=6, shape=o2),
            Population("fc", 5, du=3000, dv=500, vth=60, bias_mant=np.zeros(5, np.int64))]
    projs = [Projection("c1.w", "input", "c1", k1, 0, conv=g1),
             Projection("p1.w", "c1", "p1", kp, 0, conv=pool),
             Projection("fc.w", "p1", "fc", even((1, 5, int(np.prod(o2))), -60, 100), 1)]
    return IntNetwork(72, 1.0, pops, projs, "fc")


def test_conv_network_round_trips_through_netx(tmp_path):
    net = _conv_net()
    path = tmp_path / "c.net"
    export_netx(net, path)
    with h5py.File(path) as f:
        types = [f[f"layer/{i}/type"][()].decode() for i in range(len(f["layer"]))]
        assert types == ["input", "conv", "conv", "flatten", "dense"]
        assert list(f["layer/0/shape"][()]) == [2, 6, 6] and f["layer/2/groups"][()] == 4
        assert list(f["layer/2/bias"][()]) == [0, 1, -1, 2]  # one per channel
    back = read_netx(path)
    x = _inputs(net, 20, 3, batch=3)
    a, b = execute(net, x), execute(back, x)
    for p in net.populations:
        assert int(a.spikes[p.name].sum()) > 0
        assert bool((a.spikes[p.name] == b.spikes[p.name]).all()), p.name


@pytest.mark.lava
def test_conv_network_exported_runs_in_lava_dl_like_the_reference(tmp_path):
    net = _conv_net(1)
    path = tmp_path / "c.net"
    export_netx(net, path)
    _agree(path, net, _inputs(net, 16, 4)[0])


def test_export_names_what_netx_cannot_hold(tmp_path):
    net = _conv_net()
    net.projections[0] = Projection("c1.w", "input", "c1", net.projections[0].weights, -1, conv=net.projections[0].conv)
    with pytest.raises(UserError, match=r"c1\.w.*weight_exp -1"):
        export_netx(net, tmp_path / "x.net")
    assert not (tmp_path / "x.net").exists()


def test_export_refuses_a_subtract_reset(tmp_path):
    net = _conv_net()
    net.populations[0].reset = "subtract"  # netx has no field for it: written, it would read back as zero
    with pytest.raises(UserError, match=rf"population '{net.populations[0].name}': reset 'subtract'"):
        export_netx(net, tmp_path / "x.net")
    assert not (tmp_path / "x.net").exists()


def _pop(name, n, vth=50):
    return Population(name, n, du=100, dv=100, vth=vth, bias_mant=np.zeros(n, np.int64))


def test_a_convolution_must_read_the_frame_the_layer_before_outputs(tmp_path):
    """netx has no reshape: a conv after a dense layer, or over the same neurons as another frame,
    would be written unreadable or read back over the wrong frame; both are named, nothing is written."""
    rng = np.random.default_rng(0)
    after_dense = IntNetwork(16, 1.0, [_pop("a", 16), _pop("b", 18)], [
        Projection("a.w", "input", "a", rng.integers(-10, 10, (1, 16, 16)) * 2),
        Projection("b.w", "a", "b", rng.integers(-10, 10, (1, 2, 1, 2, 2)) * 2,
                   conv=ConvGeometry((1, 4, 4), 1, 0, 1, 1))], "b")
    reshaped = IntNetwork(48, 1.0, [_pop("a", 48), _pop("b", 3)], [
        Projection("a.w", "input", "a", rng.integers(5, 40, (1, 2, 2, 1, 1)) * 2, conv=ConvGeometry((2, 4, 6), 1, 0, 1, 1)),
        Projection("b.w", "a", "b", rng.integers(-40, 40, (1, 3, 2, 3, 3)) * 2,
                   conv=ConvGeometry((2, 6, 4), 4, 0, 1, 1))], "b")
    for net, given in ((after_dense, "a flat vector of 16"), (reshaped, r"frame \(2, 4, 6\)")):
        with pytest.raises(UserError, match=rf"'b\.w': a convolution over frame .*'a' outputs {given}; netx has no reshape"):
            export_netx(net, tmp_path / "x.net")
        assert not (tmp_path / "x.net").exists()
    assert not any("reshape" in p for p in netx_problems(_conv_net()))  # a frame carried through is fine


def test_read_netx_bounds_a_convolution_s_synapses(tmp_path, monkeypatch):
    """The same bound as the NIR reader's (and Projection.pairs'), at read time."""
    k = np.full((1, 8, 4, 3, 3), 2)
    net = IntNetwork(4 * 256, 1.0, [_pop("c", 8 * 256)],
                     [Projection("c.w", "input", "c", k, conv=ConvGeometry((4, 16, 16), 1, 1, 1, 1))], "c")
    export_netx(net, tmp_path / "n.net")
    assert read_netx(tmp_path / "n.net").projections[0].pairs()[0].size > 20_000
    monkeypatch.setenv("LMU2NEURO_MAX_ELEMENTS", "20000")
    with pytest.raises(UserError, match=r"n\.net: layer 1 \(conv\): convolution synapses: .*exceeds the limit of 20,000"):
        read_netx(tmp_path / "n.net")


def test_read_network_file_tells_netx_from_nir(files, tmp_path):
    from converters.nir.export import export_nir

    assert is_netx(files["dense"])
    nir_path = tmp_path / "m.nir"
    export_nir(read_netx(files["dense"]), nir_path)
    assert not is_netx(nir_path)
    a, b = read_network_file(files["dense"]), read_network_file(nir_path)
    x = _inputs(a, 12, 5, batch=2)
    assert bool((execute(a, x).scores == execute(b, x).scores).all())
    net = read_network_file(files["dense"], dt=1e-3, input_scale=4.0, reset="zero")
    assert net.dt == 1e-3 and net.input_scale == 4.0 and {p.reset for p in net.populations} == {"zero"}
    with pytest.raises(UserError, match="reset 'subtract' given, but this file states reset 'zero'"):
        read_network_file(files["dense"], reset="subtract")  # lava-dl's CUBA neuron has only the zero reset


def test_cli_inspect_simulate_report_on_a_netx_file(files, tmp_path, capsys):
    path = files["conv"]
    assert main(["inspect", str(path)]) == 0
    text = capsys.readouterr().out
    assert "layer/1" in text and "conv" in text and "Lava build: supported" in text
    assert main(["inspect", str(path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    first = info["loihi_populations"][0]
    assert first["incoming_conv"] and first["incoming_stored_weights"] == 4 * 2 * 3 * 3  # the kernel, once
    net = read_netx(path)
    x = _inputs(net, 12, 6, batch=4)
    np.save(tmp_path / "x.npy", x.astype(np.float32))
    traffic = tmp_path / "t.json"
    assert main(["simulate", str(path), "--input", str(tmp_path / "x.npy"), "--backend", "reference",
                 "-o", str(traffic)]) == 0
    t = json.loads(traffic.read_text())
    ref = execute(net, x)
    by_name = {lay["name"]: lay for lay in t["layers"]}
    for p in net.populations:
        assert by_name[p.name]["spikes"] == int(ref.spikes[p.name].sum())
    assert main(["report", str(traffic), "-o", str(tmp_path / "rep")]) == 0
    rep = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert rep["model"] == str(path) and rep["counts"]["timesteps"] == 12
    assert {lay["name"] for lay in rep["counts"]["layers"]} >= {p.name for p in net.populations}
    capsys.readouterr()


@pytest.mark.lava
def test_our_lava_build_agrees_on_a_netx_file(files, tmp_path, capsys):
    """simulate --backend both: our Lava build of the netx-read network against the reference
    (which the tests above hold equal to lava-dl's own Network)."""
    net = read_netx(files["conv"])
    np.save(tmp_path / "x.npy", _inputs(net, 10, 7, batch=2).astype(np.float32))
    out = tmp_path / "t.json"
    assert main(["simulate", str(files["conv"]), "--input", str(tmp_path / "x.npy"), "--backend", "both",
                 "-o", str(out)]) == 0
    agreement = json.loads(out.read_text())["agreement"]
    assert agreement["identical_spikes"] == 1.0 and agreement["first_mismatch"] is None
    capsys.readouterr()


def test_input_layer_with_neuron_is_a_population_driven_through_its_bias(tmp_path):
    """lava-dl drives a netx input layer with neurons through their bias (a_in unconnected); the
    file's transform (weight, bias) is read as what turns a raw frame into that bias
    (tests/converters/netx/test_netx_bias_input.py runs it against lava-dl)."""
    import converters.lava  # noqa: F401
    import torch
    from lava.lib.dl import slayer
    from netx_nets import NEURON

    torch.manual_seed(3)
    blocks = [slayer.block.cuba.Input(NEURON, weight=1.5, bias=0.5),
              slayer.block.cuba.Dense(NEURON, 6, 4, weight_scale=3)]
    with torch.no_grad():
        x = (torch.rand(1, 6, 5) < 0.5).float()
        for b in blocks:
            x = b(x)
    path = tmp_path / "in.net"
    with h5py.File(path, "w") as f:
        for i, b in enumerate(blocks):
            b.export_hdf5(f.create_group(f"layer/{i}"))
        w_in, b_in = (float(np.ravel(f[f"layer/0/{k}"][()])[0]) for k in ("weight", "bias"))
    net = read_netx(path)
    first = net.populations[0]
    assert first.size == 6 and net.input_size == 6 and net.bias_input.target == first.name
    assert (net.bias_input.weight, net.bias_input.bias) == (w_in, b_in) == (96.0, 32.0)  # 64 x (1.5, 0.5)
    assert [p.source for p in net.projections] == [first.name]  # nothing takes the input as a current
    xi = np.full((2, 10, 6), 40)
    assert int(execute(net, xi).spikes[first.name].sum()) > 0


def test_average_layer_is_a_readout_counting_each_group(files, tmp_path):
    import shutil

    path = tmp_path / "avg.net"
    shutil.copy(files["dense"], path)
    with h5py.File(path, "a") as f:  # SLAYER's Average block: the mean over 2 groups of the 4 neurons
        g = f.create_group("layer/3")
        g.create_dataset("type", (1,), "S10", [b"average"])
        g.create_dataset("shape", data=np.array([2, 1, 1]))
    net = read_netx(path)
    ro = net.population(net.output)
    assert ro.readout and ro.size == 2 and ro.meta["netx_average_of"] == 2
    x = _inputs(net, 20, 9, batch=3)
    run = execute(net, x)
    spikes = run.spikes["layer2"].numpy()  # (B, T, 4)
    counts = spikes.reshape(3, 20, 2, 2).sum(axis=(1, 3))
    assert counts.sum() > 0
    # weight 1 per member; synaptic input enters the voltage 6 bits up (fixed_point.ACT_SHIFT)
    np.testing.assert_array_equal(run.scores.numpy(), counts << fx.ACT_SHIFT)


def test_refractory_period_round_trips_as_ref_delay(tmp_path):
    """refDelay is Loihi's refractDelay: refractory + 1 out, refDelay - 1 in (1: the plain LIF)."""
    net = _conv_net(2)
    for pop, steps in zip(net.populations, (2, 0, 1)):
        pop.refractory = steps
    path = tmp_path / "r.net"
    export_netx(net, path)
    with h5py.File(path) as f:
        assert [int(f[f"layer/{i}/neuron/refDelay"][()]) for i in (1, 2, 4)] == [3, 1, 2]
    back = read_netx(path)
    assert [p.refractory for p in back.populations] == [2, 0, 1]
    x = _inputs(net, 24, 5, batch=3)
    a, b = execute(net, x), execute(back, x)
    for p in net.populations:
        assert bool((a.spikes[p.name] == b.spikes[p.name]).all()), p.name
    # the period is in effect: the same file with refDelay 1 everywhere spikes differently
    with h5py.File(path, "a") as f:
        for i in (1, 2, 4):
            f[f"layer/{i}/neuron/refDelay"][()] = 1
    plain = execute(read_netx(path), x)
    assert not bool((plain.spikes["c1"] == a.spikes["c1"]).all())
    assert int(plain.spikes["c1"].sum()) > int(a.spikes["c1"].sum())


def test_a_given_refractory_must_be_what_the_file_states(tmp_path):
    """The rule of our NIR files (converters.nir.read.refuse_restated): a netx file states its
    refractory period in neuron/refDelay, so the same value is accepted and another refused."""
    net = _conv_net(2)
    for pop in net.populations:
        pop.refractory = 1
    path = tmp_path / "r.net"
    export_netx(net, path)
    back = read_network_file(path, refractory=1)
    assert [p.refractory for p in back.populations] == [1, 1, 1]
    with pytest.raises(UserError, match=r"r\.net: refractory 2 given, but this file states 1 steps"):
        read_network_file(path, refractory=2)
    with pytest.raises(UserError, match=r"refractory 63: expected whole steps 0\.\.62"):
        read_network_file(path, refractory=63)
