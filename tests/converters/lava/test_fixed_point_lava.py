"""The QAT neuron's integer mode + fixed-point Dense against Lava's own fixed_pt LIF and Dense.

Lava side: RingBuffer -> Dense -> LIF with Monitors on v and s_out, Loihi2SimCfg(select_tag=
"fixed_pt") (converters.lava.check.run_lif_dense). Our side: the weights and bias quantized by
the QAT quantizers (models.quantize), the decays by the QAT neuron (LoihiLIF.du/dv), the whole
population run by the one integer executor (core.executor). Dense delivers what it received one
step earlier; that latency is applied explicitly to our input, nothing is hidden by tolerance.
"""

import numpy as np
import pytest
import torch

from converters.lava.check import run_lif_dense
from lmu2neuro.models.neurons import LoihiLIF
from lmu2neuro.models.quantize import fake_quantize_bias, fake_quantize_weights
from netgen import run_population

STEPS = 200


def _ours(spikes_in, mant, exp, neuron, vth, bias_mant, bias_exp):
    x = torch.as_tensor(spikes_in.T[None], dtype=torch.int64)  # (1, T, n_in)
    x_late = torch.zeros_like(x)
    x_late[:, 1:] = x[:, :-1]  # Lava's Dense: one step of latency
    s, v = run_population(x_late, np.asarray(mant)[None], exp, neuron.du, neuron.dv, vth, bias_mant, bias_exp)
    return s[0].numpy(), v[0].numpy()


@pytest.mark.lava
@pytest.mark.parametrize(
    "name,alpha,beta,w_scale,bias_scale,vth,seed",
    [
        # the model's neuron: current cleared every step (du = 4095), tau 2 (dv = 2048)
        ("model_neuron_positive_exp", 0.0, 0.5, 3000.0, 2000.0, 900, 0),
        # a decaying current (du = 1023 < 4095), slow voltage decay, negative weight exponent
        ("decaying_current_negative_exp", 0.75, 1 - 300 / 4096, 20.0, 300.0, 40, 1),
    ],
)
def test_qat_integer_mode_matches_lava_fixed_pt(name, alpha, beta, w_scale, bias_scale, vth, seed):
    rng = np.random.default_rng(seed)
    n_in, n = 12, 6
    w_float = torch.as_tensor(rng.normal(0.0, 1.0, (n, n_in)) * w_scale)
    _, mant, exp = fake_quantize_weights(w_float)
    assert exp != 0 and (mant < 0).any() and (mant > 0).any()
    _, bias_mant, bias_exp = fake_quantize_bias(torch.as_tensor(rng.normal(0.0, 1.0, n) * bias_scale))
    neuron = LoihiLIF(alpha=alpha, beta=beta, threshold=1.0)
    du, dv = neuron.du, neuron.dv
    if alpha > 0:
        assert du < 4095
    else:
        assert du == 4095 and dv == 2048
    spikes_in = (rng.random((n_in, STEPS)) < 0.3).astype(int)

    lava_s, lava_v = run_lif_dense(
        spikes_in, mant.numpy().astype(int), exp, du, dv, vth, bias_mant.numpy().astype(int), bias_exp
    )
    our_s, our_v = _ours(spikes_in, mant.numpy(), exp, neuron, vth, bias_mant.numpy(), bias_exp)

    assert lava_s.shape == our_s.shape == (STEPS, n)
    np.testing.assert_array_equal(our_v, lava_v)
    np.testing.assert_array_equal(our_s, lava_s)
    # the comparison means something: neurons spike, and not on every step
    assert 0 < our_s.sum() < our_s.size
    assert (our_v < 0).any() or (our_v > 0).any()
