"""Random networks and lively models for tests: the shapes that matter for Lava (skip paths of unequal
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


def lively(model, seed=0, linear_bias=True):
    """Random BN statistics and affine parameters, so folding is exercised and neurons fire."""
    import torch

    g = torch.Generator().manual_seed(seed)
    for mod in model.modules():
        if isinstance(mod, torch.nn.BatchNorm1d):
            n = mod.num_features
            mod.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
            mod.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            mod.weight.data.copy_(torch.rand(n, generator=g) * 3 + 1.0)
            mod.bias.data.copy_(torch.rand(n, generator=g) - 0.2)
        elif isinstance(mod, torch.nn.Linear):  # the official init (std 0.02) keeps u silent
            fan_in = mod.weight.shape[1]
            mod.weight.data.copy_((torch.rand(mod.weight.shape, generator=g) * 2 - 1) * 2 / fan_in**0.5)
            if linear_bias:
                mod.bias.data.copy_(torch.rand(mod.bias.shape, generator=g) * 0.2 - 0.1)
    for blk in getattr(model, "blocks", []):
        if hasattr(blk, "u_bn"):  # one neuron drives the whole memory: make it fire, data-dependently
            blk.u_bn.weight.data.fill_(2.0)
            blk.u_bn.bias.data.fill_(1.5)
    return model.eval()
