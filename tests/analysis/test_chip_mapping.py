"""Core counts and limit violations on Loihi 1 and 2, against counts worked out by hand."""

import numpy as np

from lmu2neuro.core import fixed_point as fx
from lmu2neuro.analysis.chip_mapping import map_to_chip
from lmu2neuro.core.intnet import IntNetwork, Population, Projection
from lmu2neuro.analysis.profiles import load_profile


def net_of(sizes, taps=1, density=1.0, seed=0):
    rng = np.random.default_rng(seed)
    pops, projs = [], []
    names = ["input"] + [f"l{i}" for i in range(1, len(sizes) - 1)] + ["out"]
    for i in range(1, len(sizes)):
        ro = i == len(sizes) - 1
        pops.append(Population(names[i], sizes[i], 4095 if ro else 0, 0, fx.VTH_MAX if ro else 100,
                               np.zeros(sizes[i], np.int64), readout=ro))
        w = np.full((taps if i == 1 else 1, sizes[i], sizes[i - 1]), 2, dtype=np.int64)
        if density < 1:
            w[rng.random(w.shape) > density] = 0
        projs.append(Projection(f"p{i}", names[i - 1], names[i], w))
    return IntNetwork(sizes[0], 1.0, pops, projs, "out")


def in_order(name: str):
    """A shipped profile with its partition rules off: every layer packed in order, nonzero synapses."""
    prof = load_profile(name)
    return prof.model_copy(update={"chip": prof.chip.model_copy(update={"partition": None})})


def test_neuron_limit_sets_cores():
    # 2,500 neurons of 8-bit dense fan-in 10: 2,500 x 10 B = 25 KB fits memory, so 1,024 per core
    m = map_to_chip(net_of([10, 2500, 3]), load_profile("loihi1"))
    assert m.layers[0].cores == 3 and m.layers[0].limited_by == "neurons"
    assert m.layers[1].cores == 1
    assert m.cores == 4 and m.chips == 1 and not m.violations
    # Loihi 2: 3,168 neurons per core (the compiler's most, lava-dl's PilotNet printout) would hold
    # 2,500, but its dense format stores every pair at 64 bits: 2,500 x 10 x 8 B = 200 KB > 192 KiB
    m2 = map_to_chip(net_of([10, 2500, 3]), load_profile("loihi2"))
    assert m2.layers[0].cores == 2 and m2.layers[0].limited_by == "synaptic memory"
    assert map_to_chip(net_of([10, 2500, 3]), in_order("loihi2")).layers[0].cores == 1


def test_loihi2_neuron_limit_is_the_compilers():
    # PilotNet's conv3 (24 x 7 x 48 = 8,064 neurons): 3 cores, as the Loihi 2 compiler placed it;
    # at the brief's chip-wide 8,192 per core it would be one
    m = map_to_chip(net_of([16, 8064, 2]), in_order("loihi2"))
    assert m.layers[0].cores == 3 and m.layers[0].limited_by == "neurons"
    per_core = np.bincount(np.asarray(m.core_of["l1"]) - min(m.core_of["l1"]))
    assert per_core.tolist() == [3168, 3168, 8064 - 2 * 3168]


def test_synaptic_memory_sets_cores():
    # fan-in 1,000 at 8 bits = 1,000 B per neuron; 128 KB per core -> 131 neurons per core
    m = map_to_chip(net_of([1000, 300, 2]), load_profile("loihi1"))
    assert m.layers[0].cores == 3 and m.layers[0].limited_by == "synaptic memory"
    assert m.layers[0].max_core_synaptic_bytes == 131 * 1000
    # delay taps: 5 taps add ceil(log2 5) = 3 bits per synapse and multiply synapses by 5
    m5 = map_to_chip(net_of([100, 300, 2], taps=5), load_profile("loihi1"))
    assert m5.layers[0].synaptic_bytes == 300 * 100 * 5 * 11 // 8
    assert m5.layers[0].cores == -(-300 // (131072 // (500 * 11 / 8)))


def test_single_neuron_fan_in_over_the_axon_limit_is_named():
    m = map_to_chip(net_of([5000, 4, 2], density=1.0), load_profile("loihi1"))
    msgs = [v for v in m.violations if v.limit == "chip.fan_in_axons_per_core"]
    assert len(msgs) == 1 and msgs[0].layer == "l1" and msgs[0].value == 5000 and msgs[0].allowed == 4096
    assert "layer 'l1'" in msgs[0].message
    # Loihi 2's profile states no axon limit: reported as unchecked, not as fitting
    m2 = map_to_chip(net_of([5000, 4, 2]), load_profile("loihi2"))
    assert not [v for v in m2.violations if "fan_in" in v.limit]
    assert any("fan_in_axons_per_core" in u for u in m2.unchecked)


def test_long_delays_and_fan_out_are_checked():
    m = map_to_chip(net_of([4, 8, 2], taps=128), load_profile("loihi1"))
    assert [(v.layer, v.value) for v in m.violations if v.limit == "chip.max_delay"] == [("l1", 127)]
    # l2: fan-in 1,024 B per neuron -> 128 per 128 KB core -> 40 cores for 5,000 neurons; the
    # 1,024 l1 neurons on one core would each reach all 40 (40,960 fan-out axons > 4,096), so l1 is
    # placed again at 4,096 / 40 = 102 neurons per core: 11 cores, each sending 40 x 102 = 4,080
    m = map_to_chip(net_of([4, 1024, 5000, 2]), load_profile("loihi1"))
    assert m.layers[0].cores == 11 and m.layers[1].cores == 40 and m.layers[0].limited_by == "fan-out axons"
    assert m.layers[0].max_core_fan_out_axons == 102 * 40 <= 4096
    assert not [v for v in m.violations if v.limit == "chip.fan_out_axons_per_core"]
    assert m.layers[0].lower_bound_cores == 1  # the bound from neurons and memory alone
    # the readout neurons each see 5,000 axons: one per core, and still a violation
    assert m.layers[2].cores == 2
    assert [(v.layer, v.value) for v in m.violations if "fan_in" in v.limit] == [("out", 5000)]
