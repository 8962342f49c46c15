"""Operation counts (NeuroBench definitions) against totals computed by hand on a spiking MLP."""

import numpy as np
import pytest

from lmu2neuro.core import fixed_point as fx
from lmu2neuro.analysis.counting import count_operations
from lmu2neuro.analysis.traffic import check_traffic_matches
from lmu2neuro.core.errors import UserError
from lmu2neuro.core.intnet import IntNetwork, Population, Projection
from lmu2neuro.core.executor import execute
from netgen import make_traffic, spiking_mlp


def by_hand(net, x):
    """NeuroBench totals with explicit loops over samples, steps and connections."""
    r = execute(net, x)
    signals = {"input": np.asarray(x)}
    signals.update({k: v.numpy().astype(int) for k, v in r.spikes.items()})
    samples, steps, _ = x.shape
    dense = eff_macs = eff_acs = 0
    for pr in net.projections:
        w = pr.weights[0]
        dense += w.size * steps
        binary = set(np.unique(signals[pr.source]).tolist()) <= {-1, 0, 1}
        n = 0
        for b in range(samples):
            for t in range(steps):
                for j in range(w.shape[1]):
                    if signals[pr.source][b, t, j] != 0:
                        for i in range(w.shape[0]):
                            n += w[i, j] != 0
        if binary:
            eff_acs += n
        else:
            eff_macs += n
    spikes = sum(int(r.spikes[p.name].sum()) for p in net.populations if not p.readout)
    slots = sum(p.size for p in net.populations if not p.readout) * steps * samples
    return dense, eff_macs / samples, eff_acs / samples, 1 - spikes / slots


def test_neurobench_totals_match_hand_count():
    net = spiking_mlp()
    rng = np.random.default_rng(1)
    x = rng.integers(-5, 20, size=(3, 7, 6))
    x[rng.random(x.shape) < 0.4] = 0
    c = count_operations(make_traffic(net, x), net)
    dense, macs, acs, sparsity = by_hand(net, x)
    tot = c.totals
    assert tot["dense"] == dense == (6 * 12 + 12 * 10 + 10 * 4) * 7
    assert tot["effective_macs"] == pytest.approx(macs, abs=1e-9)
    assert tot["effective_acs"] == pytest.approx(acs, abs=1e-9)
    assert acs > 0 and macs > 0
    assert tot["activation_sparsity"] == pytest.approx(sparsity)
    assert 0 < tot["activation_sparsity"] < 1
    # neuron updates: every neuron every step; footprint: 8-bit weights + 13-bit biases
    assert tot["neuron_updates"] == (12 + 10 + 4) * 7
    assert tot["footprint_bytes"] == sum(-(-(w * 8 + n * 13) // 8) for w, n in ((72, 12), (120, 10), (40, 4)))
    h1 = c.layer("h1")
    assert h1.macs == pytest.approx(macs) and h1.acs == 0
    assert c.layer("h2").firing_rate == pytest.approx(int(execute(net, x).spikes["h2"].sum()) / (3 * 7 * 10))
    # the per-frame split adds up to the totals
    for p in c.projections:
        assert sum(p.ops_per_step) == pytest.approx(p.synaptic_ops)


def test_delay_taps_count_every_tap():
    w = np.zeros((3, 2, 1), dtype=np.int64)
    w[0, 0, 0], w[2, 0, 0], w[2, 1, 0] = 2, 4, 6
    pops = [Population("a", 2, 1024, 512, 1000, np.zeros(2, np.int64)),
            Population("out", 2, 4095, 0, fx.VTH_MAX, np.zeros(2, np.int64), readout=True)]
    net = IntNetwork(1, 1.0, pops, [Projection("in", "input", "a", w),
                                    Projection("ro", "a", "out", np.full((1, 2, 2), 2))], "out")
    x = np.zeros((1, 5, 1), dtype=np.int64)
    x[0, [0, 3], 0] = 1
    c = count_operations(make_traffic(net, x), net)
    # two nonzero inputs, each reaching 3 synapses over the taps; dense counts every tap, every step
    assert c.projections[0].synaptic_ops == 6
    assert c.projections[0].dense_macs == 3 * 2 * 1 * 5


def test_traffic_of_another_model_is_refused():
    net = spiking_mlp()
    x = np.random.default_rng(2).integers(0, 9, size=(2, 5, 6))
    traffic = make_traffic(net, x)
    other = spiking_mlp(sizes=(6, 13, 10, 4))
    with pytest.raises(UserError, match="'layers.h1.neurons' is 12, the model has 13"):
        check_traffic_matches(traffic, other)
    reseeded = spiking_mlp(seed=5)
    with pytest.raises(UserError, match="different model"):
        count_operations(traffic, reseeded)
    traffic["layers"][1].pop("spike_counts")
    with pytest.raises(UserError, match="layers.h1.spike_counts"):
        count_operations(traffic, net)


def test_spike_input_counts_as_acs():
    # NeuroBench: a layer's ops are ACs when all its inputs are in {-1, 0, 1}; the traffic says so
    net = spiking_mlp()
    x = np.random.default_rng(6).integers(0, 2, size=(2, 5, 6))
    traffic = make_traffic(net, x)
    graded = count_operations(traffic, net).totals
    traffic["layers"][0]["graded"] = False
    traffic["projections"][0]["graded"] = False
    spiking = count_operations(traffic, net).totals
    assert spiking["effective_macs"] == 0
    assert spiking["effective_acs"] == pytest.approx(graded["effective_acs"] + graded["effective_macs"])


def test_spike_counter_added_by_the_reader_is_not_costed(tmp_path):
    # read_intnet gives a graph whose output is a spiking layer a readout that counts its spikes;
    # the host does that on a chip, so it must not add a layer, cores or operations
    import nir

    from converters.nir.read import read_intnet
    from lmu2neuro.analysis.chip_mapping import map_to_chip
    from lmu2neuro.analysis.profiles import load_profile
    from netgen import lif_chain_graph

    nir.write(tmp_path / "g.nir", lif_chain_graph())
    net = read_intnet(tmp_path / "g.nir", dt=1e-4, input_scale=1.0)
    assert [p.name for p in net.populations] == ["lif", "lif.count"]
    x = np.random.default_rng(0).integers(0, 2, (3, 20, 3))
    counts = count_operations(make_traffic(net, x), net)
    assert [lay.name for lay in counts.layers] == ["lif"]
    assert [p.target for p in counts.projections] == ["lif"]
    assert counts.totals["neuron_updates"] == 2 * 20 and counts.totals["dense"] == 2 * 3 * 20
    assert [row.layer for row in map_to_chip(net, load_profile("loihi1")).layers] == ["lif"]
