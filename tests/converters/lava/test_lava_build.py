"""IntNetwork -> Lava: the real runtime in fixed_pt must equal the reference simulator exactly."""

import numpy as np
import pytest
from netgen import random_inputs, random_network

from converters.lava.builder import run_lava, schedule
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
    """A sample's result must not depend on what ran before it in the stream."""
    net = random_network(2, long_taps=8)
    x = random_inputs(2, samples=3, steps=10)
    both = run_lava(net, x, progress=False)
    alone = run_lava(net, x[2:], progress=False)
    np.testing.assert_array_equal(both.readout_trace[2], alone.readout_trace[0])
    for name in both.fingerprints:
        assert both.fingerprints[name][2] == alone.fingerprints[name][0]


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
    from lmu2neuro.core.intnet import IntNetwork, Projection

    base = random_network(7)
    rng = np.random.default_rng(7)
    rec_b = np.zeros((1 + 1, 5, 5), dtype=np.int64)
    rec_b[1] = rng.integers(-80, 40, (5, 5)) * 2  # delay 1: a plain recurrent matrix
    rec_c = np.zeros((4, 4, 4), dtype=np.int64)
    rec_c[1:] = rng.integers(-60, 60, (3, 4, 4)) * 2  # delays 1..3
    net = IntNetwork(base.input_size, base.input_scale, base.populations, base.projections + [
        Projection("b-b", "b", "b", rec_b, 1), Projection("c-c", "c", "c", rec_c, 0)], "out")
    x = random_inputs(7, samples=3, steps=12)
    lava, ref = run_lava(net, x, progress=False), run_reference(net, x)
    no_rec = run_reference(base, x)
    assert agreement(ref, no_rec)["identical_spikes"] < 1.0  # the recurrence matters
    agree = agreement(lava, ref)
    assert agree["first_mismatch"] is None, agree
