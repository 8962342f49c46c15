"""A real Lava fixed_pt LIF+Dense run against a hand computation of the documented arithmetic."""

import numpy as np
import pytest

from converters.lava.check import expected_lif_dense, run_lif_dense, tiny_network_check


@pytest.mark.lava
def test_tiny_network_spikes_match_hand_computation():
    check = tiny_network_check()
    assert check.lava_spikes.any() and not check.lava_spikes.all()  # a non-trivial pattern
    assert check.matches


@pytest.mark.lava
def test_voltages_match_with_decaying_current_and_negative_weights():
    rng = np.random.default_rng(3)
    steps = 60
    inputs = (rng.random((5, steps)) < 0.5).astype(int)
    weights = (rng.integers(-128, 128, (3, 5)) * 2).astype(int)
    params = dict(weight_exp=-1, du=1000, dv=2048, vth=2000, bias_mant=np.array([10, -10, 0]), bias_exp=3)
    lava_s, lava_v = run_lif_dense(inputs, weights, **params)
    exp_s, exp_v = expected_lif_dense(inputs, weights, **params)
    np.testing.assert_array_equal(lava_s, exp_s)
    np.testing.assert_array_equal(lava_v, exp_v)
    assert (lava_v < 0).any()  # negative voltages exercised: truncation toward zero matters
