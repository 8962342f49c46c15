"""The one input-calibration rule (fixed_point.calibrated_input_scale) and its refusals."""

import numpy as np
import pytest
import torch

from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core.errors import UserError


def test_the_largest_input_lands_on_the_top_of_the_8_bit_range():
    x = np.array([[0.25, -2.0], [1.0, 0.5]])
    s = fx.calibrated_input_scale(x)
    assert s == fx.INPUT_MAX / 2.0
    assert int(np.abs(fx.quantize_input(x, s)).max()) == fx.INPUT_MAX
    # torch in, the same scale; a percentile below 100 takes that percentile of |x| instead
    assert fx.calibrated_input_scale(torch.as_tensor(x)) == s
    assert fx.calibrated_input_scale(x, percentile=50.0) == fx.INPUT_MAX / float(np.quantile(np.abs(x), 0.5))


@pytest.mark.parametrize("x, why", [(np.zeros((2, 3)), "every input is zero"),
                                    (np.zeros(0), "non-empty array of finite numbers"),
                                    (np.array([1.0, np.nan]), "non-empty array of finite numbers")])
def test_nothing_to_calibrate_from_is_refused_by_name(x, why):
    with pytest.raises(UserError, match=f"^m.nir inputs: .*{why}"):
        fx.calibrated_input_scale(x, what="m.nir inputs")
