"""How many samples run side by side in Lava: checked and planned before any process starts."""

import pytest
from netgen import random_network

from converters.lava.plan import LANE_VALUES, MAX_MEMORY_SHARE, check_lanes_value, lane_bytes, lane_values, plan_lanes, run_bytes
from lmu2neuro.core.errors import UserError

GIB = 2**30


@pytest.mark.parametrize("value", [0, -3, 2.5, "0", "abc", "", True, "1e3"])
def test_a_lava_batch_that_is_not_a_positive_integer_is_one_clear_line(value):
    with pytest.raises(UserError) as err:
        check_lanes_value(value)
    message = str(err.value)
    assert message.startswith(f"--lava-batch {value}: expected a positive integer") and "\n" not in message


@pytest.mark.parametrize("value, expected", [(None, None), ("auto", None), (4, 4), ("12", 12), ("+3", 3)])
def test_accepted_lava_batch_values(value, expected):
    assert check_lanes_value(value) == expected


def test_a_lava_batch_beyond_the_memory_is_refused_with_what_fits():
    net = random_network(0)
    per_lane, fixed = lane_bytes(net, 20), run_bytes(net, 20, 10_000)
    room = int((fixed + 90.5 * per_lane) / MAX_MEMORY_SHARE)  # as if the machine had room for 90 lanes
    with pytest.raises(UserError) as err:
        plan_lanes(net, 10_000, 20, 500, available=room)
    message = str(err.value)
    assert message.startswith("--lava-batch 500: 500 samples side by side need about") and "\n" not in message
    fits = 90
    assert f"at most {fits} fit" in message
    with pytest.raises(UserError, match="at most 90 fit"):
        plan_lanes(net, 10_000, 20, fits + 1, available=room)
    assert plan_lanes(net, 10_000, 20, fits, available=room) == fits  # the number it names does fit
    # more lanes than samples: only as many as there are samples
    assert plan_lanes(net, 7, 20, 500, available=None) == 7


def test_automatic_lanes_grow_with_samples_shrink_with_size_and_memory_and_spread_evenly():
    small, big = random_network(0), random_network(0, n_in=4, long_taps=40)
    assert plan_lanes(small, 1, 20, available=64 * GIB) == 1
    assert plan_lanes(small, 10, 20, available=64 * GIB) == 10  # one round holds them all
    many = plan_lanes(small, 1_000_000, 20, available=64 * GIB)
    assert 1 < many < 1_000_000
    assert plan_lanes(big, 1_000_000, 60, available=64 * GIB) < many  # longer delay lines: fewer lanes
    room = (run_bytes(small, 20, 1_000_000) + 40 * lane_bytes(small, 20)) * 4
    assert 30 < plan_lanes(small, 1_000_000, 20, available=room) <= 40  # a quarter of the memory at most
    # rounds stay full: one sample more than a round holds makes two rounds of half as many lanes
    cap = LANE_VALUES // lane_values(small, 20)
    assert plan_lanes(small, cap, 20, available=64 * GIB) == cap
    assert plan_lanes(small, cap + 1, 20, available=64 * GIB) == (cap + 2) // 2
