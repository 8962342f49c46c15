"""The quantization-aware LIF neuron: snnTorch subclass, float semantics, quantizers, decays."""

import numpy as np
import snntorch
import torch

from lmu2neuro.core import fixed_point as fx
from lmu2neuro.models.neurons import LoihiLIF
from lmu2neuro.models.quantize import fake_quantize_bias, fake_quantize_weights
from netgen import run_population


def test_is_an_snntorch_neuron_with_loihi_decays():
    n = LoihiLIF(alpha=0.0, beta=0.5, threshold=1.0, slope=4.0)
    assert isinstance(n, snntorch.Synaptic)
    assert (n.du, n.dv) == (4095, 2048)
    n2 = LoihiLIF(alpha=0.75, beta=1 - 300 / 4096)
    assert (n2.du, n2.dv) == (1023, 300)


def test_float_step_semantics_by_hand():
    # v = 0.5 v + x; spike when v > 1 (strict); then v = 0 in the same step
    n = LoihiLIF(0.0, 0.5, threshold=1.0)
    x = torch.tensor([0.8, 0.6, 1.0, 0.5, 2.0, 0.0]).reshape(1, 6, 1)
    s = n(x)[0, :, 0].tolist()
    # v: 0.8, 1.0 (not > 1), 1.5 -> spike/0, 0.5, 2.25 -> spike/0, 0
    assert s == [0.0, 0.0, 1.0, 0.0, 1.0, 0.0]


def test_sigmoid_surrogate_slope():
    n = LoihiLIF(0.0, 0.5, threshold=1.0, slope=4.0)
    x = torch.full((1, 1, 1), 1.0, requires_grad=True)  # v - threshold = 0: gradient slope/4
    n(x).sum().backward()
    assert abs(x.grad.item() - 1.0) < 1e-6


def test_qat_rounds_decays_to_12_bits():
    n = LoihiLIF(0.0, 0.3, threshold=1.0)  # 0.3 * 4096 = 1228.8 -> keeps 1229/4096
    n.qat = True
    x = torch.zeros(1, 2, 1)
    x[0, 0, 0] = 0.9
    spikes = n(x)
    assert spikes.sum() == 0
    u, v = n.init_state(x[:, 0])
    _, (u, v) = n.step(x[:, 0], (u, v))
    _, (u, v) = n.step(torch.zeros_like(x[:, 0]), (u, v))
    assert abs(v.item() - 0.9 * (4096 - fx.dv_from_removed(1 - 0.3)) / 4096) < 1e-7


def test_fake_quantizers_match_fixed_point():
    w = torch.randn(7, 5) * 37.0
    w_q, mant, exp = fake_quantize_weights(w)
    ref_mant, ref_exp = fx.quantize_weights(w)
    assert exp == ref_exp and torch.equal(mant, ref_mant)
    assert torch.equal(w_q.detach(), mant.double().float() * 2.0**exp)
    assert (mant % 2 == 0).all() and mant.abs().max() <= 256
    b = torch.tensor([100.0, -70000.0, 5.0])
    b_q, bm, be = fake_quantize_bias(b)
    assert be == 5 and bm.abs().max() <= fx.BIAS_MANT_MAX
    assert torch.allclose(b_q, bm.float() * 2**be)
    # straight-through: the gradient is the identity
    w.requires_grad_(True)
    fake_quantize_weights(w)[0].sum().backward()
    assert torch.equal(w.grad, torch.ones_like(w))


def test_float_neuron_matches_integer_neuron_on_exact_values():
    # With inputs that are exact in both (multiples of the threshold unit, decays exactly 0.5),
    # the float QAT neuron and the integer neuron agree spike for spike.
    torch.manual_seed(0)
    vth = 64
    neuron = LoihiLIF(0.0, 0.5, threshold=1.0)
    neuron.qat = True
    a_int = torch.randint(-20, 60, (4, 50, 9)) * 2
    # the integer neuron: the one executor, fed a_int through an identity projection (2 >> 1 = 1)
    eye = 2 * np.eye(9, dtype=np.int64)[None]
    s_int, _ = run_population(a_int, eye, -1, neuron.du, neuron.dv, vth, np.zeros(9))
    with torch.no_grad():
        s_f = neuron(a_int.double() / vth)
    # Integer decay truncates toward zero and the float one does not, so a voltage a fraction
    # of a unit from the threshold may differ; everything else must agree.
    agree = (s_f.bool() == s_int).float().mean().item()
    assert agree > 0.97, agree
