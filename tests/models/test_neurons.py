"""The quantization-aware LIF neuron: snnTorch subclass, float semantics, quantizers, decays."""

import numpy as np
import pytest
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


def test_subtract_reset_by_hand_in_the_spiking_step():
    # v = 0.5 v + x; spike when v > 1; then v - 1 in the same step (Loihi 2's subtract, lif_step's rule)
    n = LoihiLIF(0.0, 0.5, threshold=1.0, reset_mechanism="subtract")
    x = torch.tensor([0.8, 0.6, 1.0, 0.5, 2.0, 0.0]).reshape(1, 6, 1)
    # v: 0.8, 1.0 (not > 1), 1.5 -> spike/0.5, 0.75, 2.375 -> spike/1.375 -> 0.6875
    assert n(x)[0, :, 0].tolist() == [0.0, 0.0, 1.0, 0.0, 1.0, 0.0]
    state = n.init_state(x[:, 0])
    volts = []
    for t in range(6):
        _, state = n.step(x[:, t], state)
        volts.append(state[1].item())
    assert volts == pytest.approx([0.8, 1.0, 0.5, 0.75, 1.375, 0.6875], abs=1e-6)
    with pytest.raises(Exception, match="reset_mechanism"):
        LoihiLIF(0.0, 0.5, reset_mechanism="none")


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


# -- the fused scan (LIFScan) against the step-by-step definition ------------------------------------
def _both_ways(neuron, x, bias=0.0):
    """Spikes and gradients of forward (fused) and scan_steps (the loop of step) for one upstream gradient."""
    g = torch.randn(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(1))
    out = []
    for run in (neuron.forward, neuron.scan_steps):
        xi = x.detach().clone().requires_grad_(True)
        bi = bias.detach().clone().requires_grad_(True) if isinstance(bias, torch.Tensor) else bias
        s = run(xi, bi)
        assert torch.equal(xi.detach(), x)  # the scan works on its own copy of the input
        (s * g).sum().backward()
        out.append((s.detach(), xi.grad, bi.grad if isinstance(bi, torch.Tensor) else None))
    return out


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("qat", [False, True])
@pytest.mark.parametrize("alpha,bias", [(0.0, 0.0), (0.0, "tensor"), (0.6, 0.0), (0.6, "tensor")])
@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_fused_scan_is_the_step_loop(dtype, qat, alpha, bias, reset):
    torch.manual_seed(0)
    n = LoihiLIF(alpha, 0.3, threshold=0.8, slope=4.0, reset_mechanism=reset)
    n.qat = qat
    x = (torch.randn(6, 37, 11) * 1.3 + 0.2).to(dtype)
    b = torch.randn(11, dtype=dtype) * 0.2 if bias == "tensor" else 0.0
    (s_f, g_f, gb_f), (s_s, g_s, gb_s) = _both_ways(n, x, b)
    assert torch.equal(s_f, s_s) and s_f.dtype == s_s.dtype
    assert 0.05 < s_f.mean() < 0.95  # spikes and silences both occur, so the comparison compares something
    # the same sums in another order, the surrogate written sig(k x)(1 - sig(k x)) instead of
    # e / (1 + e)^2; the loop's surrogate gradient passes through float32 (snnTorch's spikes are
    # float32) even for float64 inputs, so float32 rounding bounds both
    assert torch.allclose(g_f, g_s, rtol=1e-5, atol=1e-6), (g_f - g_s).abs().max()
    if gb_f is not None:
        assert torch.allclose(gb_f, gb_s, rtol=1e-4, atol=1e-5), (gb_f - gb_s).abs().max()


@pytest.mark.parametrize("layout", ["time-innermost", "expanded", "sliced"])
def test_fused_scan_gradient_for_inputs_of_any_memory_layout(layout):
    n = LoihiLIF(0.0, 0.5, threshold=0.5)
    view = {"time-innermost": lambda b: b.transpose(1, 2),  # what batch norm over (B, C, T) hands the neuron
            "expanded": lambda b: b[:1, :1].transpose(1, 2).expand(4, 30, 7),  # stride 0: must not alias
            "sliced": lambda b: b.transpose(1, 2)[:, ::2, 1:]}[layout]
    g = torch.randn(view(torch.zeros(4, 7, 30)).shape)
    grads, spikes = [], []
    for run in (n.forward, n.scan_steps):
        base = (torch.randn(4, 7, 30, generator=torch.Generator().manual_seed(0)) + 0.5).requires_grad_(True)
        s = run(view(base))
        (s * g).sum().backward()
        grads.append(base.grad)
        spikes.append(s.detach())
    assert torch.equal(spikes[0], spikes[1])
    assert torch.allclose(grads[0], grads[1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_fused_scan_keeps_the_step_loop_on_non_finite_input(reset):
    # an infinite current makes the loop's voltage NaN (inf * 0 at the reset) and a NaN current
    # poisons u through 0 * u: the fused scan must give the same spikes afterwards
    n = LoihiLIF(0.0, 0.5, threshold=1.0, reset_mechanism=reset)
    x = torch.rand(3, 12, 4) * 3
    x[0, 2, 1] = float("inf")
    x[1, 5, 2] = float("nan")
    x[2, 4, 3] = -float("inf")
    with torch.no_grad():
        assert torch.equal(n(x), n.scan_steps(x))


def test_snntorch_options_the_fused_scan_does_not_cover_take_the_step_loop():
    n = LoihiLIF(0.0, 0.5, threshold=1.0)
    n.graded_spikes_factor = torch.tensor(2.0)  # graded spikes: the reset differs, so step
    x = torch.rand(2, 9, 3) * 3
    with torch.no_grad():
        assert torch.equal(n(x), n.scan_steps(x)) and n(x).max() == 2.0


@pytest.mark.parametrize("qat", [False, True])
def test_spiking_lmuformer_logits_and_gradients_unchanged_by_the_fused_scan(qat, monkeypatch):
    from lmu2neuro.models.config import ModelConfig
    from lmu2neuro.models.registry import build_model

    torch.manual_seed(3)
    cfg = ModelConfig.from_preset("digits-small", input_size=8, num_classes=10, dim=16, memory_order=8)
    model = build_model(cfg)
    model.train()
    model.set_qat(qat)
    x = torch.rand(5, 16, 8)
    results = []
    for fused in (True, False):
        if not fused:
            monkeypatch.setattr(LoihiLIF, "forward", LoihiLIF.scan_steps)
        model.zero_grad()
        logits = model(x)
        logits.square().sum().backward()
        results.append((logits.detach(), {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}))
    (l_f, g_f), (l_s, g_s) = results
    assert torch.equal(l_f, l_s)
    assert set(g_f) == set(g_s) and len(g_f) > 10
    for k in g_f:
        assert torch.allclose(g_f[k], g_s[k], rtol=1e-4, atol=1e-6), k


def test_the_step_surrogate_stays_finite_far_below_threshold():
    # snnTorch's e / (1 + e)^2 form is inf / inf = NaN once exp(-4 x) overflows (x < -22 in float32)
    from lmu2neuro.models.neurons import LoihiLIF

    n = LoihiLIF(0.0, 0.5, threshold=1.0, slope=4.0)
    x = torch.full((1, 3), -60.0, requires_grad=True)
    spk, _ = n.step(x, n.init_state(x))
    spk.sum().backward()
    assert torch.isfinite(x.grad).all() and spk.sum() == 0
