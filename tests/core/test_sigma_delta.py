"""The sigma-delta kind (core/neurons/sigma_delta.py) against Lava's own lava.proc.sdn processes in
fixed_pt, step for step: every graded message and its payload."""

import numpy as np
import pytest
import torch

from lmu2neuro.core import neurons
from lmu2neuro.core.executor import execute
from lmu2neuro.core.intnet import IntNetwork, IntNetworkError, Population, Projection


def _net(n, stage, vth, bias, activation="relu", cum_error=False, spike_exp=6, state_exp=6):
    params = {"stage": stage, "activation": activation, "cum_error": cum_error,
              "spike_exp": spike_exp, "state_exp": state_exp}
    pop = Population("sd", n, du=0, dv=0, vth=vth, bias_mant=np.asarray(bias, dtype=np.int64),
                     readout=stage == "sigma", kind="sigma_delta", kind_params=params)
    ident = 2 * np.eye(n, dtype=np.int64)[None]  # 2 >> 1: the identity in even 8-bit mantissas
    net = IntNetwork(input_size=n, input_scale=1.0, populations=[pop], projections=[Projection("w", "input", "sd", ident, weight_exp=-1)],
                     output="sd")
    net.validate()
    return net


def _lava(proc_cls, x, **kw):
    """x (T, n) into the process's a_in; its s_out per step (T, n)."""
    import converters.lava  # noqa: F401  (the compatibility layer before any Lava import)
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.source import RingBuffer
    from lava.proc.monitor.process import Monitor

    steps, n = x.shape
    src = RingBuffer(data=x.T.astype(np.int32))
    proc = proc_cls(shape=(n,), **kw)
    src.s_out.connect(proc.a_in)
    mon = Monitor()
    mon.probe(proc.s_out, steps)
    try:
        proc.run(RunSteps(steps), Loihi2SimCfg(select_tag="fixed_pt"))
        return np.asarray(mon.get_data()[proc.name]["s_out"], dtype=np.int64)
    finally:
        proc.stop()


def _input(seed, lo, hi, steps=40, n=6):
    return np.random.default_rng(seed).integers(lo, hi, (steps, n))


@pytest.mark.lava
@pytest.mark.parametrize("cum_error", [False, True])
def test_sigma_delta_matches_lava(cum_error):
    import converters.lava  # noqa: F401  (the compatibility layer before any Lava import)
    from lava.proc.sdn.process import SigmaDelta

    x = _input(1, -6000, 6000)  # sigma: a random walk in units of 2**12 per threshold mantissa
    x[0] = 40000  # from well above zero, so that the ReLU passes most of it
    bias = np.array([0, 3, -2, 1, 0, -5])
    ref = execute(_net(6, "sigma_delta", 1, bias, cum_error=cum_error), x[None])
    lava = _lava(SigmaDelta, x, vth=1, bias=bias, spike_exp=6, state_exp=6, cum_error=cum_error)
    ours = ref.payloads["sd"][0].numpy()
    assert (ours != 0).sum() > 30 and (ours == 0).sum() > 30 and (ours < 0).any()
    np.testing.assert_array_equal(ours, lava)
    np.testing.assert_array_equal(ref.spikes["sd"][0].numpy(), lava != 0)


@pytest.mark.lava
def test_delta_and_sigma_stages_match_lava():
    import converters.lava  # noqa: F401  (the compatibility layer before any Lava import)
    from lava.proc.sdn.process import Delta, Sigma

    x = np.cumsum(_input(2, -5, 6), axis=0)  # delta: a random walk, its steps near the threshold
    ours = execute(_net(6, "delta", 3, np.zeros(6)), x[None]).payloads["sd"][0].numpy()
    assert (ours != 0).sum() > 30 and (ours == 0).sum() > 10
    np.testing.assert_array_equal(ours, _lava(Delta, x, vth=3, spike_exp=6, state_exp=6))
    run = execute(_net(6, "sigma", 0, np.zeros(6)), x[None])
    np.testing.assert_array_equal(run.payloads["sd"][0].numpy(), _lava(Sigma, x))
    np.testing.assert_array_equal(run.readout_trace[0].numpy(), np.cumsum(x, axis=0))


def test_unit_activation_passes_negatives_and_relu_does_not():
    x = -np.abs(_input(3, -6000, 6000))
    relu = execute(_net(6, "sigma_delta", 1, np.zeros(6)), x[None]).payloads["sd"]
    unit = execute(_net(6, "sigma_delta", 1, np.zeros(6), activation="unit"), x[None]).payloads["sd"]
    assert int(relu.abs().sum()) == 0 and int((unit < 0).sum()) > 30
    # the messages carry the activation's changes: their sum is the final activation (sigma = the sum
    # of the inputs), less the residue (below the threshold 1 << 12) and the payloads' truncation
    # by >> state_exp (under 64 each)
    total = unit[0].sum(dim=0) << 6
    assert torch.all((total - torch.as_tensor(x.sum(axis=0))).abs() < (1 << 12) + 64 * len(x))


def test_limits_are_the_kinds():
    with pytest.raises(IntNetworkError, match="stage 'bogus'"):
        _net(2, "bogus", 1, np.zeros(2))
    with pytest.raises(IntNetworkError, match="spike_exp = 9"):
        _net(2, "sigma_delta", 1, np.zeros(2), spike_exp=9)
    with pytest.raises(IntNetworkError, match="vth = 4096"):
        _net(2, "sigma_delta", 4096, np.zeros(2))
    assert neurons.kind("sigma_delta").graded and not neurons.kind("cuba_lif").graded
    with pytest.raises(ValueError, match="expected one of cuba_lif, sigma_delta"):
        neurons.kind("izhikevich")
