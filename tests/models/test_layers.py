"""Loihi layers in snnTorch's style: neuron call conventions and semantics, per-frame layers, input quantizer."""

import pytest
import snntorch
import torch
import torch.nn.functional as F

from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core.errors import UserError
from lmu2neuro.models import layers as L


def _steps(fn, x, state):
    """Run a per-step call over x (B, T, ...) and stack the spikes."""
    out = []
    for t in range(x.shape[1]):
        spk, *state = fn(x[:, t], *state)
        out.append(spk)
    return torch.stack(out, dim=1)


def test_leaky_semantics_by_hand_and_snntorch_lineage():
    lif = L.Leaky(beta=0.5, threshold=1.0)
    assert isinstance(lif, snntorch.Synaptic) and (lif.du, lif.dv) == (4095, 2048)
    x = torch.tensor([0.8, 0.6, 1.0, 0.5, 2.0, 0.0]).reshape(1, 6, 1)
    # v: 0.8, 1.0 (not > 1), 1.5 -> spike, reset to 0 in the same step, 0.5, 2.25 -> spike, 0
    assert lif(x)[0, :, 0].tolist() == [0.0, 0.0, 1.0, 0.0, 1.0, 0.0]


@pytest.mark.parametrize("shape", [(3, 7, 5), (2, 6, 2, 3, 3)])
def test_leaky_per_step_call_equals_the_whole_sequence(shape):
    torch.manual_seed(0)
    lif = L.Leaky(beta=0.8, threshold=0.5)
    x = torch.randn(shape)
    whole = lif(x)
    mem = lif.init_leaky()
    assert mem.numel() == 0  # snnTorch's convention: an empty state means zero
    stepped = _steps(lambda x_t, m: lif(x_t, m), x, [mem])
    assert torch.equal(stepped, whole) and whole.sum() > 0


def test_synaptic_per_step_call_equals_the_whole_sequence_and_keeps_its_current():
    torch.manual_seed(1)
    lif = L.Synaptic(alpha=0.75, beta=0.5, threshold=1.0)
    x = torch.rand(4, 9, 6)
    whole = lif(x)
    syn, mem = lif.init_synaptic()
    stepped = _steps(lambda x_t, s, m: lif(x_t, s, m), x, [syn, mem])
    assert torch.equal(stepped, whole) and whole.sum() > 0
    # the current is never reset (Loihi): one input pulse charges syn = 1, 0.75, 0.5625 ...
    one = L.Synaptic(alpha=0.75, beta=0.0, threshold=10.0)
    syn, mem = one.init_synaptic()
    pulse = torch.tensor([[1.0]])
    _, syn, mem = one(pulse, syn, mem)
    _, syn, mem = one(torch.zeros(1, 1), syn, mem)
    assert syn.item() == 0.75 and mem.item() == 0.75


def test_rleaky_feeds_its_spikes_back_one_step_late():
    lif = L.RLeaky(beta=0.0, linear_features=2, threshold=0.5)
    with torch.no_grad():
        lif.recurrent.weight.copy_(torch.tensor([[0.0, 0.0], [2.0, 0.0]]))  # neuron 0 drives neuron 1
        lif.recurrent.bias.zero_()
    x = torch.zeros(1, 4, 2)
    x[0, 0, 0] = 1.0  # neuron 0 spikes at t = 0 only
    s = lif(x)[0]
    assert s[:, 0].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert s[:, 1].tolist() == [0.0, 1.0, 0.0, 0.0]  # one step late, not in the same step


@pytest.mark.parametrize("kind", ["linear", "conv2d", "one_to_one"])
def test_rleaky_per_step_call_equals_the_whole_sequence(kind):
    torch.manual_seed(2)
    if kind == "linear":
        lif, shape = L.RLeaky(0.9, linear_features=6, threshold=0.5), (3, 8, 6)
    elif kind == "conv2d":
        lif, shape = L.RLeaky(0.9, conv2d_channels=2, kernel_size=3, threshold=0.5), (3, 8, 2, 4, 4)
    else:
        lif, shape = L.RLeaky(0.9, all_to_all=False, V=torch.linspace(-1, 1, 6), threshold=0.5), (3, 8, 6)
    x = torch.rand(shape)
    whole = lif(x)
    spk, mem = lif.init_rleaky()

    def one_step(x_t, s, m):  # the new spikes are both the output and the next step's state
        s, m = lif(x_t, s, m)
        return s, s, m

    stepped = _steps(one_step, x, [spk, mem])
    assert torch.equal(stepped, whole) and whole.sum() > 0


def test_sigmoid_surrogate_is_snntorchs_and_stays_finite():
    lif = L.Leaky(beta=0.9, threshold=0.5, slope=4.0)
    v = torch.tensor([-40.0, -3.0, 0.0, 0.4, 2.0], requires_grad=True)
    lif.fire(v + 0.5).sum().backward()  # fire subtracts the threshold
    ours = v.grad.clone()
    ref = torch.tensor([-3.0, 0.0, 0.4, 2.0], requires_grad=True)
    snntorch.surrogate.sigmoid(slope=4.0)(ref).sum().backward()
    assert torch.allclose(ours[1:], ref.grad, rtol=1e-5, atol=0)
    assert torch.isfinite(ours).all() and ours[0] >= 0  # snnTorch's form gives NaN at -40 (exp overflow)


def test_neuron_arguments_are_checked():
    with pytest.raises(UserError, match="subtract"):
        L.Leaky(beta=0.9, reset_mechanism="subtract")
    with pytest.raises(UserError, match="'zero'"):
        L.Synaptic(0.5, 0.5, reset_mechanism="none")
    with pytest.raises(UserError, match="beta=1.5"):
        L.Leaky(beta=1.5)
    with pytest.raises(UserError, match="linear_features"):
        L.RLeaky(0.9)
    with pytest.raises(UserError, match="whole sequence"):
        L.Leaky(0.9)(torch.zeros(4, 8))  # one step without a state is ambiguous: refused


def test_convolutions_and_pools_act_on_every_frame():
    torch.manual_seed(3)
    x2 = torch.randint(0, 2, (2, 3, 2, 6, 6)).float()  # spikes: sums are exact
    conv = L.Conv2d(2, 4, 3, padding=1)
    y = conv(x2)
    for t in range(3):
        assert torch.equal(y[:, t], F.conv2d(x2[:, t], conv.weight, conv.bias, padding=1))
    assert torch.equal(L.SumPool2d(2)(x2)[:, 1], F.avg_pool2d(x2[:, 1], 2) * 4)
    assert torch.equal(L.AvgPool2d(2, stride=1)(x2)[:, 2], F.avg_pool2d(x2[:, 2], 2, 1))
    x1 = torch.randint(0, 2, (2, 3, 2, 9)).float()
    conv1 = L.Conv1d(2, 3, 3)
    assert torch.equal(conv1(x1)[:, 0], F.conv1d(x1[:, 0], conv1.weight, conv1.bias))
    assert torch.equal(L.SumPool1d(3)(x1)[:, 2], x1[:, 2].unfold(-1, 3, 3).sum(-1))
    assert torch.allclose(L.AvgPool1d(3)(x1)[:, 2], x1[:, 2].unfold(-1, 3, 3).mean(-1))
    assert L.Flatten()(x2).shape == (2, 3, 72)
    with pytest.raises(UserError, match=r"Conv2d: input of shape \(2, 2, 6, 6\)"):
        conv(x2[:, 0])


def test_input_quantizer_is_the_cores_rule_with_calibration_and_learning():
    x = torch.rand(5, 4, 3) * 2 - 0.5  # max |x| just under 1.5
    q = L.InputQuantizer()
    assert not q.calibrated
    with pytest.raises(UserError, match="calibrate"):
        q(x)
    scale = q.calibrate(x)
    assert scale == pytest.approx(127 / float(x.abs().max()), rel=1e-6)
    expect = fx.quantize_input(x, float(q.scale)).to(torch.float32) / q.scale
    assert torch.equal(q(x), expect)
    assert fx.quantize_input(x, float(q.scale)).abs().max() == 127  # the whole 8-bit range is used
    # a learned scale gets the gradient of the rounding / clipping error, the input a straight-through one
    learned = L.InputQuantizer(scale=40.0, learn=True)
    xi = x.clone().requires_grad_(True)
    learned(xi).pow(2).sum().backward()
    assert learned.scale_param.grad is not None and learned.scale_param.grad != 0
    assert torch.allclose(xi.grad[(xi * 40).abs() < 127], 2 * learned(x)[(x * 40).abs() < 127])
    with pytest.raises(UserError, match="all zero|every input is zero"):
        L.InputQuantizer().calibrate(torch.zeros(3))
    assert L.InputQuantizer(percentile=50).calibrate(torch.arange(1.0, 101.0)) == pytest.approx(127 / 50.5)
