"""lava-dl sigma-delta (SDNN) netx files: read, run in the reference executor, and compared message
for message (payloads included) with lava-dl's own netx.hdf5.Network in Lava fixed_pt on files that
SLAYER's ``sigma_delta`` blocks export."""

import h5py
import numpy as np
import pytest

from converters.netx.read import read_netx
from lmu2neuro.core.errors import UserError
from lmu2neuro.core.executor import execute
from netx_nets import run_lava_sdnn, sdnn_file


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("sdnn")
    return {"dense": sdnn_file(d / "dense.net", "dense", seed=0), "conv": sdnn_file(d / "conv.net", "conv", seed=1)}


def test_sdnn_file_reads_as_sigma_delta_layers(files):
    net = read_netx(files["dense"])
    assert [p.kind for p in net.populations] == ["sigma_delta"] * 3
    assert [p.kind_params["stage"] for p in net.populations] == ["delta", "sigma_delta", "sigma"]
    assert net.population(net.output).readout and net.bias_input is None
    assert [(r["kind"], r["kind_params"]["stage"]) for r in net.population_summary()] == [
        ("sigma_delta", "delta"), ("sigma_delta", "sigma_delta"), ("sigma_delta", "sigma")]  # what inspect shows
    enc = net.projections[0]
    assert enc.source == "input" and enc.helper == "input encoder"
    with h5py.File(files["dense"]) as f:
        assert [p.vth for p in net.populations] == [int(f[f"layer/{i}/neuron/vThMant"][()]) for i in range(3)]


@pytest.mark.lava
@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_sdnn_matches_lava_dl_message_for_message(files, kind):
    net = read_netx(files[kind])
    frame = net.population(net.populations[0].name).shape or (net.input_size,)
    rng = np.random.default_rng(3)
    steps = 16
    x = np.cumsum(rng.integers(-40, 60, (steps,) + tuple(frame)), axis=0).clip(0, 255)  # a changing 8-bit frame
    ref = execute(net, x.reshape(1, steps, -1))
    lava = run_lava_sdnn(files[kind], x, vth=net.populations[0].vth)
    assert len(lava) == len(net.populations)
    for pop, got in zip(net.populations, lava):
        ours = ref.payloads[pop.name][0].numpy()
        assert (ours != 0).sum() > steps, pop.name  # every layer sends messages
        if pop.kind_params["stage"] != "sigma":
            assert (ours == 0).sum() > steps, pop.name  # and holds back some (the delta threshold acts)
        np.testing.assert_array_equal(ours, got, err_msg=pop.name)
    np.testing.assert_array_equal(ref.readout_trace[0].numpy(), lava[-1])


def _edited(files, tmp_path, edit):
    path = tmp_path / "edited.net"
    path.write_bytes(files["dense"].read_bytes())
    with h5py.File(path, "a") as f:
        edit(f)
    return path


def _replace(f, field, value):
    del f[field]
    f[field] = value


@pytest.mark.parametrize("edit, message", [
    (lambda f: _replace(f, "layer/1/neuron/activation", "tanh"),
     r"layer 1 \(dense\), field 'neuron/activation': 'tanh'.*expected relu"),
    (lambda f: _replace(f, "layer/1/neuron/vThMant", 2048),  # 2048 << 12 is 2**23: past a 24-bit threshold
     r"layer 1 \(dense\), field 'neuron/vThMant'.*2048"),
    (lambda f: f.create_dataset("layer/2/bias", data=np.ones(4)),
     r"layer 2 \(dense\), field 'bias': a sigma_output layer \(Lava's Sigma\) has no bias"),
])
def test_sdnn_fields_out_of_reach_are_refused_by_name(files, tmp_path, edit, message):
    with pytest.raises(UserError, match=message):
        read_netx(_edited(files, tmp_path, edit))


def test_sdnn_counts_graded_messages_as_macs(files):
    from lmu2neuro.analysis.counting import count_operations
    from lmu2neuro.analysis.traffic import build_traffic
    from lmu2neuro.core.measurement import measure_spikes

    net = read_netx(files["dense"])
    assert all(net.is_graded(p) for p in net.projections)  # the input and every SDNN layer send payloads
    x = np.cumsum(np.random.default_rng(4).integers(-40, 60, (2, 12, 12)), axis=1).clip(0, 255)
    run = execute(net, x)
    m = measure_spikes("reference", run.spikes, run.readout_trace)
    counts = count_operations(build_traffic(net, x, m, model="sdnn", model_sha256="0"), net)
    totals = counts.totals
    assert totals["effective_acs"] == 0 and totals["effective_macs"] > 0
    hidden = counts.layer("layer1")
    assert hidden.spikes == float(run.spikes["layer1"].sum()) / 2  # messages sent per inference
    assert hidden.macs > 0 and hidden.acs == 0
    # the synaptic ops out of layer1: each neuron's messages times its fan-out (its nonzero weights)
    out_of = next(p for p in counts.projections if p.source == "layer1")
    fan_out = next(p for p in net.projections if p.source == "layer1").fan_out()
    sent = run.spikes["layer1"].sum(dim=(0, 1)).numpy()
    assert out_of.synaptic_ops == pytest.approx(float((sent * fan_out).sum()) / 2)


@pytest.mark.lava
@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_our_lava_build_runs_sdnn_as_the_reference(files, kind):
    """Our Lava build (GatedSigmaDelta: Lava's own sigma-delta arithmetic, 2 lanes, 3 samples: the
    last round has an empty lane) gives the reference's messages: counts per neuron, fingerprints of
    every sample's (step, neuron) message set, sample 0's raster and the readout's sigma trace."""
    from converters.lava.builder import run_lava
    from lmu2neuro.core.measurement import measure_spikes

    net = read_netx(files[kind])
    x = np.cumsum(np.random.default_rng(5).integers(-40, 60, (3, 10, net.input_size)), axis=1).clip(0, 255)
    ref = execute(net, x)
    mr = measure_spikes("reference", ref.spikes, ref.readout_trace)
    ml = run_lava(net, x, progress=False, lanes=2)
    for pop in net.populations:
        if not pop.readout:
            assert int(mr.spike_counts[pop.name].sum()) > 10, pop.name
        np.testing.assert_array_equal(ml.spike_counts[pop.name], mr.spike_counts[pop.name], err_msg=pop.name)
        np.testing.assert_array_equal(ml.fingerprints[pop.name], mr.fingerprints[pop.name], err_msg=pop.name)
        np.testing.assert_array_equal(ml.raster0[pop.name], mr.raster0[pop.name], err_msg=pop.name)
    np.testing.assert_array_equal(np.asarray(ml.readout_trace), np.asarray(mr.readout_trace))
    assert np.abs(np.asarray(mr.readout_trace)).max() > 1000  # the sigma readout is not trivially zero


def test_writers_refuse_the_kind_by_name(files, tmp_path):
    from converters.lava.builder import run_lava
    from converters.nir.export import export_nir

    net = read_netx(files["dense"])
    with pytest.raises(UserError, match=r"population 'layer0': neuron kind 'sigma_delta' runs in Lava's fixed_pt only"):
        run_lava(net, np.zeros((1, 3, 12), dtype=np.int64), tag="floating_pt", progress=False)
    with pytest.raises(UserError, match="population 'layer0': neuron kind 'sigma_delta' has no nir node"):
        export_nir(net, tmp_path / "x.nir")
    assert not (tmp_path / "x.nir").exists()
