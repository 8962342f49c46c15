"""Models built from lmu2neuro's layers, traced: float graph = the model's own forward, QAT, lowering,
NIR round trip, the integer mode, Lava; and the one-line refusals for what cannot deploy."""

import numpy as np
import pytest
import snntorch
import torch
from torch import nn

from converters.nir.export import export_nir
from converters.nir.read import read_intnet
from lmu2neuro.core import fixed_point as fx
from lmu2neuro.core.errors import UserError
from lmu2neuro.core.executor import execute
from lmu2neuro.deploy.lowering import integer_forward, lower
from lmu2neuro.models import layers as L
from lmu2neuro.models.quantize import run_qat
from lmu2neuro.models.trace import LoihiModel


class SkipMLP(nn.Module):
    """Two sources into one node (input and spikes into the readout), a scalar product, RLeaky."""

    def __init__(self):
        super().__init__()
        self.q = L.InputQuantizer(scale=100.0)
        self.fc1, self.lif1 = L.Linear(6, 12), L.Leaky(0.8, threshold=0.5)
        self.fc2, self.lif2 = L.Linear(12, 10), L.RLeaky(0.7, linear_features=10, threshold=0.5)
        self.out, self.skip = L.Linear(10, 4), L.Linear(6, 4)

    def forward(self, x):
        x = self.q(x)
        s1 = self.lif1(2.0 * self.fc1(x))
        s2 = self.lif2(self.fc2(s1))
        return self.out(s2) - self.skip(x)


class ConvNet(nn.Module):
    """Conv2d, a Synaptic neuron, sum pooling and Flatten into a Linear, a recurrent conv layer."""

    def __init__(self):
        super().__init__()
        self.q = L.InputQuantizer(scale=127.0)
        self.conv, self.lif1 = L.Conv2d(1, 3, 3, padding=1), L.Synaptic(0.5, 0.8, threshold=0.5)
        self.rconv, self.lif2 = L.Conv2d(3, 2, 3), L.RLeaky(0.8, conv2d_channels=2, kernel_size=3, threshold=0.5)
        self.pool, self.flat = L.SumPool2d(2), L.Flatten()
        self.fc, self.fc2 = L.Linear(3 * 9, 5), L.Linear(2 * 16, 5)

    def forward(self, x):
        s1 = self.lif1(self.conv(self.q(x)))  # (B, T, 3, 6, 6)
        s2 = self.lif2(self.rconv(s1))  # (B, T, 2, 4, 4)
        return self.fc(self.flat(self.pool(s1))) + self.fc2(self.flat(s2))


class Conv1dNet(nn.Module):
    """Conv1d and average pooling with no input quantizer (the scale is given to the wrapper)."""

    def __init__(self):
        super().__init__()
        self.conv, self.lif = L.Conv1d(2, 4, 3), L.Leaky(0.9, threshold=0.3)
        self.pool, self.fc = L.AvgPool1d(2), L.Linear(4 * 3, 3)

    def forward(self, x):
        return self.fc(self.pool(self.lif(self.conv(x))).flatten(2))


def lively(model: nn.Module, seed: int) -> nn.Module:
    """Weights large enough that every layer fires on random inputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "scale" in name:
                continue
            fan_in = p[0].numel() if p.ndim > 1 else 4
            p.copy_((torch.rand(p.shape, generator=g) * 2 - 0.6) * 2.5 / fan_in**0.5)
    return model.eval()


CASES = {
    "skip_mlp": (SkipMLP, (6,), {}),
    "convnet": (ConvNet, (1, 6, 6), {}),
    "conv1d": (Conv1dNet, (2, 8), {"input_scale": 60.0}),
}


def build(case: str, seed: int = 0, max_len: int = 12) -> LoihiModel:
    cls, shape, kw = CASES[case]
    torch.manual_seed(seed)
    return LoihiModel(lively(cls(), seed), shape, max_len, **kw)


def inputs(model: LoihiModel, batch=6, steps=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, steps, *model.frame_shape, generator=g) * 1.2


@pytest.mark.parametrize("case", list(CASES))
def test_traced_graph_is_the_models_own_forward_bit_for_bit(case):
    model = build(case)
    x = inputs(model)
    with torch.no_grad():
        own = model.frame_logits(x)
        spikes: dict = {}
        traced = model.frame_logits_graph(x, spikes)
    assert torch.equal(own, traced)
    assert set(spikes) == {n.name for n in model.graph()[:-1]}
    assert all(s.sum() > 0 for s in spikes.values()), {k: int(v.sum()) for k, v in spikes.items()}


@pytest.mark.parametrize("case", list(CASES))
def test_qat_without_rounding_is_the_float_model_in_float64(case):
    model = build(case).double()
    x = inputs(model).double()
    scale = float(model.input_scale)
    # the folded float graph (thresholds scaled to integer units, no rounding) spikes as the model does
    with torch.no_grad():
        own: dict = {}
        model.frame_logits_graph(x, own)
        folded: dict = {}
        q = model.quantizer
        xin = (x if q is None else q(x)).flatten(2)
        run_qat(model.graph(), xin, scale, model.max_len, quantized=False, spikes=folded)
    for name, s in own.items():
        assert torch.equal(folded[name], s), name


@pytest.mark.parametrize("case", list(CASES))
def test_integer_mode_is_the_executor_on_the_lowered_network_and_nir_round_trips(case, tmp_path):
    model = build(case)
    x = inputs(model, batch=8)
    out = integer_forward(model, x)  # frames shaped (C, H, W) are taken as they come
    net = lower(model)
    ref = execute(net, fx.quantize_input(x.flatten(2), net.input_scale))
    assert torch.equal(out["scores"], ref.scores)
    for name, s in ref.spikes.items():
        assert torch.equal(out["spikes"][name], s), name
    assert sum(ref.wrapped.values()) == 0
    export_nir(net, tmp_path / "m.nir")
    back = read_intnet(tmp_path / "m.nir")
    assert [p.name for p in back.populations] == [p.name for p in net.populations]
    for a, b in zip(net.populations, back.populations):
        assert (a.du, a.dv, a.vth, a.bias_exp, a.readout) == (b.du, b.dv, b.vth, b.bias_exp, b.readout)
        assert np.array_equal(a.bias_mant, b.bias_mant)
    for a, b in zip(net.projections, back.projections):
        assert (a.name, a.source, a.target, a.weight_exp, a.conv) == (b.name, b.source, b.target, b.weight_exp, b.conv)
        assert np.array_equal(a.weights, b.weights)
    assert back.input_scale == net.input_scale and back.meta["model"]["traced"] is True


def test_structure_of_a_traced_network():
    model = build("skip_mlp")
    net = lower(model)
    assert [p.name for p in net.populations] == ["lif1", "lif2", "readout"]
    assert [p.size for p in net.populations] == [12, 10, 4]
    assert net.input_scale == 100.0 and net.input_size == 6
    names = {s.name: s for s in net.projections}
    assert set(names) == {"lif1.fc1", "lif2.fc2", "lif2.recurrent", "readout.out", "readout.skip"}
    rec = names["lif2.recurrent"]
    assert rec.source == rec.target == "lif2" and rec.taps == 2 and not rec.weights[0].any() and rec.weights[1].any()
    assert rec.origin["kind"] == "recurrent"
    # the 2.0 * fc1 and the subtracted skip are in the weights: signs and scales survive the trace
    w_skip = names["readout.skip"].weights[0] * 2.0 ** names["readout.skip"].weight_exp
    w_ref = -model.model.skip.weight.detach().numpy() / net.input_scale * names["readout.skip"].origin["scale"] ** -1
    assert np.allclose(w_skip, w_ref, rtol=0.02, atol=2.0 ** names["readout.skip"].weight_exp)
    conv = lower(build("convnet"))
    # the Synaptic layer's conv bias enters its current: from the always-on helper neuron
    assert [(p.size, p.helper) for p in conv.populations] == [(1, "bias source"), (3 * 36, None), (2 * 16, None),
                                                              (5, None)]
    assert conv.projections_into("lif1")[-1].helper == "bias source"
    assert {s.name for s in conv.projections_into("readout")} == {"readout.fc", "readout.fc2"}
    by = {s.name: s for s in conv.projections}
    assert by["lif1.conv"].conv is not None and by["lif1.conv"].weights.shape == (1, 3, 1, 3, 3)
    rec = by["lif2.recurrent"]  # the RLeaky's Conv2d: a kernel with taps [0, K]
    assert rec.conv is not None and rec.weights.shape == (2, 2, 2, 3, 3) and not rec.weights[0].any()


def test_qat_trains_every_parameter_and_tracks_the_integer_network():
    model = build("skip_mlp")
    model.model.q = L.InputQuantizer(scale=100.0, learn=True)
    model = LoihiModel(model.model, (6,), 12)
    x = inputs(model, batch=32, steps=12, seed=3)
    model.set_qat(True)
    model.train()
    model(x).logsumexp(1).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    model.eval()
    with torch.no_grad():
        qat = model(x)
    out = integer_forward(model, x)
    agree = (qat.argmax(1) == out["scores"].argmax(1)).float().mean().item()
    assert agree >= 0.9, agree


def test_inputs_are_checked_against_the_frame_shape_and_max_len():
    model = build("convnet", max_len=8)
    with pytest.raises(UserError, match="9 frames"):
        model(torch.zeros(1, 9, 1, 6, 6))
    with pytest.raises(UserError, match=r"expected shape \(batch, frames, 1, 6, 6\)"):
        model(torch.zeros(1, 4, 35))
    assert model(torch.zeros(2, 4, 36)).shape == (2, 5)  # frames as flat vectors are reshaped


class _Seq(nn.Sequential):
    pass


@pytest.mark.parametrize("layers,needle", [
    ([L.Conv2d(1, 2, 3), L.Leaky(0.9), nn.MaxPool2d(2), L.Flatten(), L.Linear(8, 2)],
     r"model layer '3' \(MaxPool2d\).*max pooling is not linear"),
    ([L.Conv2d(1, 2, 3), L.Leaky(0.9), nn.Flatten(), L.Linear(32, 2)], r"'3' \(Flatten\).*layers.Flatten"),
    ([nn.Conv2d(1, 2, 3), L.Leaky(0.9), L.Flatten(), L.Linear(32, 2)], r"'1' \(Conv2d\).*every frame"),
    ([L.Flatten(), L.Linear(36, 4), snntorch.Leaky(beta=0.9), L.Linear(4, 2)], r"'3' \(Leaky\).*snnTorch's Leaky"),
    ([L.Flatten(), L.Linear(36, 4), nn.ReLU(), L.Leaky(0.9), L.Linear(4, 2)], r"'3' \(ReLU\).*not a linear"),
    ([L.Flatten(), L.Linear(36, 4), nn.BatchNorm1d(4), L.Leaky(0.9), L.Linear(4, 2)], r"'3' \(BatchNorm1d\)"),
    ([L.Flatten(), L.Linear(36, 4), L.Leaky(0.9)], r"returns the spikes of '3'"),
])
def test_layers_that_cannot_deploy_are_named_with_their_path(layers, needle):
    with pytest.raises(UserError, match=needle):
        LoihiModel(_Seq(L.InputQuantizer(1.0), *layers), (1, 6, 6), 8)


class _PerStepLoop(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.lif, self.out = L.Linear(4, 4), L.Leaky(0.9), L.Linear(4, 2)

    def forward(self, x):
        mem, spikes = self.lif.init_leaky(), []
        for t in range(x.shape[1]):
            spk, mem = self.lif(self.fc(x[:, t]), mem)
            spikes.append(spk)
        return self.out(torch.stack(spikes, 1))


class _Delayed(nn.Module):
    """A time shift built from allowed operations: caught by the check against the affine map."""

    def __init__(self):
        super().__init__()
        self.fc, self.lif, self.out = L.Linear(4, 4), L.Leaky(0.9), L.Linear(4, 2)

    def forward(self, x):
        s = self.lif(self.fc(x))
        return self.out(torch.cat([s[:, :1], s[:, :-1]], dim=1))


class _Product(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.lif, self.out = L.Linear(4, 4), L.Leaky(0.9), L.Linear(4, 2)

    def forward(self, x):
        s = self.lif(self.fc(x))
        return self.out(s * self.fc(x))


class _Twice(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.lif, self.out = L.Linear(4, 4), L.Leaky(0.9), L.Linear(4, 2)

    def forward(self, x):
        return self.out(self.lif(self.lif(self.fc(x))))


class _Bypass(nn.Module):
    def __init__(self):
        super().__init__()
        self.q, self.fc, self.lif, self.out = L.InputQuantizer(10.0), L.Linear(4, 4), L.Leaky(0.9), L.Linear(4, 2)

    def forward(self, x):
        return self.out(self.lif(self.fc(self.q(x)) + x))


@pytest.mark.parametrize("cls,needle", [
    (_PerStepLoop, "could not be traced.*whole sequences"),
    (_Delayed, "not a per-frame linear map of lif.*mix time steps"),
    (_Product, "multiplies or divides signals"),
    (_Twice, "called more than once"),
    (_Bypass, "before \\(or besides\\) the input quantizer 'q'"),
])
def test_forwards_that_cannot_deploy_are_refused_in_one_line(cls, needle):
    with pytest.raises(UserError, match=needle) as e:
        LoihiModel(cls(), (4,), 8, input_scale=10.0)
    assert "\n" not in str(e.value)


def test_missing_input_scale_and_unwrapped_models_are_refused():
    model = LoihiModel(Conv1dNet(), (2, 8), 8)
    with pytest.raises(UserError, match="no input scale.*InputQuantizer"):
        lower(model)
    assert model.calibrate(torch.full((2, 3, 2, 8), 0.5)) == 254.0
    assert lower(model).input_scale == 254.0
    with pytest.raises(UserError, match="LoihiModel"):
        lower(Conv1dNet())


def test_dense_expansion_of_a_convolution_respects_the_size_guard(monkeypatch):
    monkeypatch.setenv("LMU2NEURO_MAX_ELEMENTS", "1000")
    seq = _Seq(L.InputQuantizer(1.0), L.Conv2d(1, 2, 3, padding=1), L.Leaky(0.9), L.Flatten(), L.Linear(72, 2))
    net = lower(LoihiModel(seq, (1, 6, 6), 8))  # a conv projection: the kernel, not the matrix
    assert net.projections[0].conv is not None and net.projections[0].stored_weights() == 18
    needle = r"the dense matrix from 'input'.*2,592 elements \(shape \(72, 36\)\).*LMU2NEURO_MAX_ELEMENTS"
    with pytest.raises(UserError, match=needle):
        lower(LoihiModel(seq, (1, 6, 6), 8, expand_convolutions=True))


@pytest.mark.lava
def test_lava_equals_reference_equals_integer_mode_on_every_spike():
    from lmu2neuro.core.measurement import agreement, measure_spikes
    from lmu2neuro.pipeline.simulate import simulate_network

    model = build("convnet")
    x = inputs(model, batch=4, steps=8, seed=7)
    net = lower(model)
    traffic, runs = simulate_network(net, x.flatten(2).numpy(), backend="both", progress=False)
    assert traffic["agreement"]["identical_spikes"] == 1.0 and traffic["agreement"]["identical_scores"] == 1.0
    out = integer_forward(model, x)
    mode = measure_spikes("integer_mode", out["spikes"], out["readout_trace"])
    assert agreement(runs["lava"], mode)["identical_spikes"] == 1.0
    assert all(runs["lava"].spike_counts[p.name].sum() > 0 for p in net.populations if not p.readout)


def test_streaming_the_traced_graph_equals_the_whole_sequence():
    from lmu2neuro.models.graph import StreamState

    model = build("skip_mlp")
    x = inputs(model, batch=3, steps=9, seed=5)
    stream = StreamState(model.graph())
    with torch.no_grad():
        whole: dict = {}
        frames = model.frame_logits_graph(x, whole)
        xq = model.quantizer(x)
        per_frame, spikes = [], {name: [] for name in whole}
        for t in range(9):
            got: dict = {}
            per_frame.append(stream.step(xq[:, t], got))
            for name in whole:
                spikes[name].append(got[name])
    for name, s in whole.items():  # the recurrent lif2 included: its feedback kept across frames
        assert torch.equal(torch.stack(spikes[name], 1), s), name
    # the same linear map of identical spikes, batched differently (frame by frame): summation order only
    assert torch.allclose(torch.stack(per_frame, 1), frames, rtol=1e-6, atol=1e-5)
