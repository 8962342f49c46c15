"""Random integer networks for tests: the shapes that matter for Lava (skip paths of unequal
latency, multi-tap projections, graded input, decaying currents, biases, negative exponents)."""

import numpy as np

from lmu2neuro import fixed_point as fx
from lmu2neuro.intnet import IntNetwork, Population, Projection


def random_network(seed: int = 0, n_in: int = 4, long_taps: int = 3) -> IntNetwork:
    rng = np.random.default_rng(seed)

    def w(taps, out, inp, lo=-60, hi=60):
        return rng.integers(lo, hi, (taps, out, inp)) * 2

    pops = [
        Population("a", 6, 4095, 1000, 80, rng.integers(-5, 5, 6)),
        Population("b", 5, 300, 2048, 120, np.zeros(5, dtype=np.int64)),  # current decays
        Population("u", 1, 4095, 2048, 60, np.zeros(1, dtype=np.int64)),
        Population("c", 4, 4095, 500, 100, rng.integers(0, 5, 4), bias_exp=2),
        Population("out", 3, 4095, 0, fx.VTH_MAX, np.zeros(3, dtype=np.int64), readout=True),
    ]
    projs = [
        Projection("in-a", "input", "a", w(3, 6, n_in), 0, {"kind": "conv"}),
        Projection("a-b", "a", "b", w(1, 5, 6, 0, 120), 1, {"kind": "dense"}),
        Projection("a-u", "a", "u", w(1, 1, 6, 0, 100), 0, {"kind": "dense"}),
        Projection("b-c", "b", "c", w(1, 4, 5, -20, 127), 1, {"kind": "dense"}),
        Projection("a-c", "a", "c", w(2, 4, 6, -40, 100), -1, {"kind": "conv"}),  # skip path
        Projection("u-c", "u", "c", w(long_taps, 4, 1, -30, 120), 0, {"kind": "dense"}),  # FIR-like
        Projection("in-c", "input", "c", w(1, 4, n_in), 0, {"kind": "dense"}),  # longest skip
        Projection("c-out", "c", "out", w(1, 3, 4), 0, {"kind": "dense"}),
    ]
    return IntNetwork(n_in, 10.0, pops, projs, "out")


def random_inputs(seed: int, samples: int, steps: int, n_in: int = 4) -> np.ndarray:
    return np.random.default_rng(seed + 100).integers(-20, 40, (samples, steps, n_in))
