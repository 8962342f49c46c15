"""IntNetwork -> Lava: the real runtime in fixed_pt must equal the reference simulator exactly, one
sample at a time or many side by side ("lanes")."""

import numpy as np
import pytest
from netgen import random_inputs, random_network

from converters.lava.builder import run_lava
from converters.lava.plan import schedule
from lmu2neuro.pipeline.simulate import run_reference
from lmu2neuro.core.measurement import agreement

pytestmark = pytest.mark.lava


def test_latency_is_the_longest_path_and_skips_get_aligned():
    net = random_network()
    s = schedule(net, steps=10, samples=2)
    assert s.latency == {"a": 1, "b": 2, "u": 2, "c": 3, "out": 4}
    extra = {p.name: s.extra_delay(p, net.input_name) for p in net.projections}
    assert extra["in-c"] == 2 and extra["a-c"] == 1 and extra["b-c"] == 0 and extra["u-c"] == 0


@pytest.mark.parametrize("seed, long_taps", [(0, 3), (1, 25)])
def test_streamed_samples_match_the_reference_spike_for_spike(seed, long_taps):
    """Several samples through one compiled network; taps longer than a sample (25 > 12) too."""
    net = random_network(seed, long_taps=long_taps)
    x = random_inputs(seed, samples=4, steps=12)
    lava = run_lava(net, x, progress=False)
    ref = run_reference(net, x)
    agree = agreement(lava, ref)
    assert agree["first_mismatch"] is None, agree
    assert agree["identical_spikes"] == 1.0 and agree["identical_scores"] == 1.0
    # the comparison is not vacuous: every spiking population fired in every sample
    for pop in net.populations:
        if not pop.readout:
            assert (ref.sample_spikes[pop.name] > 0).all(), pop.name
    np.testing.assert_array_equal(lava.readout_trace, ref.readout_trace)
    for name in ref.spike_counts:
        np.testing.assert_array_equal(lava.spike_counts[name], ref.spike_counts[name])
        np.testing.assert_array_equal(lava.step_spikes[name], ref.step_spikes[name])
        np.testing.assert_array_equal(lava.raster0[name], ref.raster0[name])


def test_samples_do_not_leak_into_each_other():
    """A sample's result must not depend on what ran before it in its lane, nor beside it."""
    net = random_network(2, long_taps=8)
    x = random_inputs(2, samples=5, steps=10)
    stream = run_lava(net, x, progress=False, lanes=2)  # sample 4: lane 0 of round 2, after samples 0 and 2
    alone = run_lava(net, x[4:], progress=False, lanes=1)
    np.testing.assert_array_equal(stream.readout_trace[4], alone.readout_trace[0])
    for name in stream.fingerprints:
        assert stream.fingerprints[name][4] == alone.fingerprints[name][0]
        assert stream.sample_spikes[name][4] == alone.sample_spikes[name][0]
    assert stream.timing["lanes"] == 2 and stream.timing["rounds"] == 3


def _with_recurrence(seed: int, long_taps: int):
    """random_network (skip paths of unequal latency, multi-tap projections, graded input) plus
    recurrent projections of one and of several delays."""
    from lmu2neuro.core.intnet import IntNetwork, Projection

    base = random_network(seed, long_taps=long_taps)
    rng = np.random.default_rng(seed)
    rec_b = np.zeros((2, 5, 5), dtype=np.int64)
    rec_b[1] = rng.integers(-80, 40, (5, 5)) * 2  # delay 1: a plain recurrent matrix
    rec_c = np.zeros((4, 4, 4), dtype=np.int64)
    rec_c[1:] = rng.integers(-60, 60, (3, 4, 4)) * 2  # delays 1..3
    return base, IntNetwork(base.input_size, base.input_scale, base.populations, base.projections + [
        Projection("b-b", "b", "b", rec_b, 1), Projection("c-c", "c", "c", rec_c, 0)], "out")


@pytest.mark.parametrize("lanes", [1, 3, 7])
def test_lanes_side_by_side_match_the_reference_on_every_sample(lanes):
    """10 samples, which neither 3 nor 7 divides: the last round runs with lanes to spare."""
    _, net = _with_recurrence(11, long_taps=14)
    x = random_inputs(11, samples=10, steps=12)
    lava, ref = run_lava(net, x, progress=False, lanes=lanes), run_reference(net, x)
    assert lava.timing["lanes"] == lanes and lava.timing["rounds"] == -(-10 // lanes)
    agree = agreement(lava, ref)
    assert agree["first_mismatch"] is None, agree
    assert agree["identical_spikes"] == 1.0 and agree["identical_scores"] == 1.0
    np.testing.assert_array_equal(lava.readout_trace, ref.readout_trace)
    for name in ref.spike_counts:
        assert (ref.sample_spikes[name] > 0).all() or net.population(name).readout, name  # not vacuous
        np.testing.assert_array_equal(lava.sample_spikes[name], ref.sample_spikes[name])
        np.testing.assert_array_equal(lava.spike_counts[name], ref.spike_counts[name])
        np.testing.assert_array_equal(lava.step_spikes[name], ref.step_spikes[name])
        np.testing.assert_array_equal(lava.raster0[name], ref.raster0[name])
        assert lava.wrapped[name] == ref.wrapped[name] and lava.peak_current[name] == ref.peak_current[name]


def test_floating_pt_runs_and_agrees_on_predictions():
    net = random_network(3)
    x = random_inputs(3, samples=3, steps=10)
    flt = run_lava(net, x, tag="floating_pt", progress=False)
    ref = run_reference(net, x)
    # float arithmetic skips the integer truncations, so spikes may differ slightly; the
    # decisions here do not
    assert agreement(flt, ref)["identical_predictions"] == 1.0
    assert abs(int(sum(v.sum() for v in flt.spike_counts.values())) -
               int(sum(v.sum() for v in ref.spike_counts.values()))) <= 0.05 * sum(
        v.sum() for v in ref.spike_counts.values())


def test_a_spiking_output_scores_by_spike_count():
    from lmu2neuro.core.intnet import IntNetwork

    net = random_network(6)
    spiking = IntNetwork(net.input_size, net.input_scale, net.populations[:-1], net.projections[:-1], output="c")
    x = random_inputs(6, samples=3, steps=9)
    lava, ref = run_lava(spiking, x, progress=False), run_reference(spiking, x)
    assert (ref.scores.sum(axis=1) == ref.sample_spikes["c"]).all()  # the score is the spike count
    np.testing.assert_array_equal(lava.readout_trace, ref.readout_trace)


def test_recurrence_within_a_population_matches_the_reference():
    """snnTorch RLeaky-style recurrence: a population's own spikes act from the next step on."""
    base, net = _with_recurrence(7, long_taps=3)
    x = random_inputs(7, samples=3, steps=12)
    lava, ref = run_lava(net, x, progress=False), run_reference(net, x)
    no_rec = run_reference(base, x)
    assert agreement(ref, no_rec)["identical_spikes"] < 1.0  # the recurrence matters
    agree = agreement(lava, ref)
    assert agree["first_mismatch"] is None, agree


def test_wrapped_currents_are_counted_as_the_reference_counts():
    """A current that never decays (du = 0) and is fed hard wraps at 24 bits, in some samples only:
    Lava's wrap, the spikes after it, the count and the peak before it are the reference's."""
    from lmu2neuro.core import fixed_point as fx
    from lmu2neuro.core.intnet import IntNetwork, Population, Projection

    rng = np.random.default_rng(5)
    pops = [Population("a", 3, 0, 100, 20_000, np.zeros(3, dtype=np.int64)),
            Population("out", 2, 4095, 0, fx.VTH_MAX, np.zeros(2, dtype=np.int64), readout=True)]
    projs = [Projection("in-a", "input", "a", rng.integers(20, 120, (2, 3, 2)) * 2, 3),
             Projection("a-out", "a", "out", rng.integers(-100, 100, (1, 2, 3)) * 2, 0)]
    net = IntNetwork(2, 1.0, pops, projs, "out")
    x = rng.integers(0, 127, (5, 16, 2))
    x[1] = 0  # a sample that never comes near the limit, beside those that cross it
    lava, ref = run_lava(net, x, progress=False, lanes=2), run_reference(net, x)
    assert ref.wrapped["a"] > 0 and ref.peak_current["a"] > fx.STATE_MAX
    assert lava.wrapped == ref.wrapped and lava.peak_current == ref.peak_current
    assert agreement(lava, ref)["first_mismatch"] is None
