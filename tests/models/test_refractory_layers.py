"""The refractory option of the Loihi neuron layers: float semantics by hand, the per-step calls,
and lowering with the integer mode tracking QAT (the integers run lif_step's rule in the executor)."""

import pytest
import torch

from lmu2neuro.core.errors import UserError
from lmu2neuro.models import layers as L
from lmu2neuro.models.neurons import LoihiLIF


def test_refractory_float_step_by_hand():
    lif = L.Leaky(beta=1.0, threshold=1.0, refractory=2)
    x = torch.full((1, 8, 1), 0.6)
    # v: 0.6, 1.2 -> spike (0), held 2 steps (0, 0), 0.6, 1.2 -> spike, held ...
    assert lif(x)[0, :, 0].tolist() == [0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    assert L.Leaky(beta=1.0, threshold=1.0)(x)[0, :, 0].tolist() == [0.0, 1.0] * 4


def test_refractory_gradient_flows_and_held_steps_pass_none():
    lif = L.Leaky(beta=0.9, threshold=1.0, refractory=1)
    x = torch.full((1, 5, 1), 0.7, requires_grad=True)
    lif(x).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_rleaky_one_step_with_refractory_1_equals_the_whole_sequence():
    torch.manual_seed(0)
    lif = L.RLeaky(0.9, linear_features=6, threshold=0.5, refractory=1)
    x = torch.rand(3, 12, 6)
    whole = lif(x)
    spk = mem = None
    out = []
    for t in range(x.shape[1]):
        spk, mem = lif(x[:, t], torch.zeros(3, 6) if spk is None else spk, torch.zeros(3, 6) if mem is None else mem)
        out.append(spk)
    assert torch.equal(torch.stack(out, 1), whole) and whole.sum() > 0
    plain = L.RLeaky(0.9, linear_features=6, threshold=0.5)
    plain.load_state_dict(lif.state_dict())
    assert not torch.equal(plain(x), whole)  # the held step matters on this input


def test_one_step_calls_refuse_what_they_cannot_carry():
    with pytest.raises(UserError, match="refractory=2 needs the steps still held"):
        L.Leaky(0.9, refractory=2)(torch.rand(2, 3), torch.zeros(2, 3))
    with pytest.raises(UserError, match="refractory=2 needs the steps still held"):
        L.RLeaky(0.9, linear_features=3, refractory=2)(torch.rand(2, 3), torch.zeros(2, 3), torch.zeros(2, 3))
    for bad in (-1, 63, 1.5, True):
        with pytest.raises(UserError, match="refractory="):
            LoihiLIF(refractory=bad)


class _Net(torch.nn.Module):
    def __init__(self, refractory):
        super().__init__()
        kw = {"threshold": 0.5, "refractory": refractory}
        self.q = L.InputQuantizer(scale=127.0)
        self.fc1, self.lif1 = L.Linear(6, 16), L.Leaky(0.9, **kw)
        self.fc2, self.lif2 = L.Linear(16, 10), L.RLeaky(0.85, linear_features=10, **kw)
        self.out = L.Linear(10, 4)

    def forward(self, x):
        return self.out(self.lif2(self.fc2(self.lif1(self.fc1(self.q(x))))))


def test_refractory_lowers_and_the_integer_mode_tracks_qat():
    from lmu2neuro.deploy.lowering import integer_forward, lower
    from lmu2neuro.models.quantize import run_qat
    from lmu2neuro.models.trace import LoihiModel

    torch.manual_seed(0)
    base = _Net(2)
    with torch.no_grad():
        for p in base.parameters():
            if p.ndim == 2:
                p.mul_(3.0)
    model = LoihiModel(base, (6,), max_len=30).eval()
    twin = _Net(0)
    twin.load_state_dict(base.state_dict())
    plain = LoihiModel(twin, (6,), max_len=30).eval()
    assert [p.refractory for p in lower(model).populations] == [2, 2, 0]  # the readout only integrates
    x = torch.rand(16, 30, 6, generator=torch.Generator().manual_seed(1))
    model.set_qat(True)
    qat = {}
    with torch.no_grad():
        run_qat(model.graph(), x, model.input_scale, model.max_len, spikes=qat)
    ints, ints_plain = integer_forward(model, x)["spikes"], integer_forward(plain, x)["spikes"]
    for name, s in qat.items():
        assert 0.05 < float(s.mean()) < 0.9, name
        agree = float((s.bool() == ints[name]).float().mean())
        # float QAT decays do not truncate as the integer ones do (the same bound as the reset test)
        assert agree > (0.99 if name == "lif1" else 0.9), (name, agree)
        assert float((ints_plain[name] == ints[name]).float().mean()) < agree, name
