"""Our NeuroBench counts (``Counts.neurobench``, part (a): the model's own compute) against
neurobench 2.3.0 itself, run on the same float snnTorch models and the same inputs.

Counts are a function of a network's structure and its activity. Here both sides see the same
activity: neurobench runs the float snnTorch model through its own hooks; our counter takes that
model's deployed structure (converted, traced, lowered: the IntNetwork every report reads) and the
float model's own spikes, put into a traffic record as ``simulate`` writes it. Weights are kept
away from zero so 8-bit quantization zeroes none (a weight that quantizes to zero is a real
difference between the float model and the deployed one, not a counting question).

neurobench is a development-only dependency (Makefile ``dev``: installed with --no-deps, as its
requirements would pull another torch, torchaudio and tonic that its metrics never import)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

snn = pytest.importorskip("snntorch")
pytest.importorskip("neurobench", reason="neurobench 2.3.0 not installed (make dev installs it with --no-deps)")

from neurobench.benchmarks import Benchmark  # noqa: E402
from neurobench.metrics.static import ConnectionSparsity, ParameterCount  # noqa: E402
from neurobench.metrics.workload import ActivationSparsity, MembraneUpdates, SynapticOperations  # noqa: E402
from neurobench.models import SNNTorchModel  # noqa: E402

from lmu2neuro.analysis.counting import count_operations  # noqa: E402
from lmu2neuro.analysis.traffic import build_traffic  # noqa: E402
from lmu2neuro.core.measurement import measure_spikes  # noqa: E402
from lmu2neuro.deploy.lowering import lower  # noqa: E402
from lmu2neuro.models.trace import LoihiModel  # noqa: E402
from lmu2neuro.deploy.snntorch import convert_snntorch, run_forward  # noqa: E402

T, B = 12, 6


def mlp():
    return nn.Sequential(nn.Linear(8, 24), snn.Leaky(beta=0.9, reset_mechanism="zero", init_hidden=True),
                         nn.Linear(24, 16), snn.Leaky(beta=0.8, reset_mechanism="zero", init_hidden=True),
                         nn.Linear(16, 5), snn.Leaky(beta=0.8, reset_mechanism="zero", init_hidden=True, output=True))


def conv():
    return nn.Sequential(nn.Conv1d(1, 4, 3, padding=1), snn.Leaky(beta=0.9, reset_mechanism="zero", init_hidden=True),
                         nn.Flatten(), nn.Linear(4 * 8, 5),
                         snn.Leaky(beta=0.8, reset_mechanism="zero", init_hidden=True, output=True))


def recurrent():
    # snnTorch's default subtract reset: with reset_mechanism="zero", snnTorch 1.0's RLeaky evaluates
    # its recurrent layer twice per step (rleaky.py _base_zero) and neurobench counts both calls
    return nn.Sequential(nn.Linear(8, 16), snn.RLeaky(beta=0.85, linear_features=16, init_hidden=True),
                         nn.Linear(16, 5), snn.Leaky(beta=0.8, reset_mechanism="zero", init_hidden=True, output=True))


# (builder, frame, share of positive weights): the recurrent one saturates with more
MODELS = {"mlp": (mlp, (8,), 0.75), "conv": (conv, (1, 8), 0.75), "recurrent": (recurrent, (8,), 0.5)}


def _lively(model: nn.Module, seed: int, positive: float = 0.75) -> nn.Module:
    """Weights with magnitudes in [0.3, 1] x 2.5 / sqrt(fan-in) (none near zero), mostly positive,
    so every layer fires and none quantizes to zero, a fifth of them exactly zero; biases small."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight"):
                fan_in = p[0].numel()
                sign = torch.where(torch.rand(p.shape, generator=g) < positive, 1.0, -1.0)
                # a fifth exactly zero: sparse connections. Not in a recurrent layer: there our count takes off
                # the last step's spikes (they feed no call of it) at the layer's mean fan-out, exact when
                # every neuron's fan-out is the same (the traffic keeps per-neuron totals, not per step)
                keep = (torch.rand(p.shape, generator=g) >= (0.0 if "recurrent" in name else 0.2)).float()
                p.copy_(keep * sign * (0.3 + 0.7 * torch.rand(p.shape, generator=g)) * 2.5 / fan_in ** 0.5)
            elif name.endswith("bias"):
                p.copy_(0.05 * torch.rand(p.shape, generator=g))
    return model.eval()


class Sequence(nn.Module):
    """Steps a snnTorch Sequential over time: (B, T, *frame) -> (T, B, classes), as neurobench's
    SNNTorchModel(custom_forward=True) expects (its default forward needs (spk, mem) back)."""

    def __init__(self, seq: nn.Module):
        super().__init__()
        self.seq = seq

    def forward(self, x):
        snn.utils.reset(self.seq)
        out = []
        for t in range(x.shape[1]):
            y = self.seq(x[:, t])
            out.append(y[0] if isinstance(y, tuple) else y)
        return torch.stack(out)


def _neurobench(module: nn.Module, x: torch.Tensor) -> dict:
    data = torch.utils.data.TensorDataset(x, torch.zeros(len(x), dtype=torch.long))
    loader = torch.utils.data.DataLoader(data, batch_size=len(x))  # one batch: no averaging over batches
    bench = Benchmark(SNNTorchModel(Sequence(module), custom_forward=True), loader, [], [],
                      [[ParameterCount, ConnectionSparsity], [SynapticOperations, ActivationSparsity, MembraneUpdates]])
    return bench.run(quiet=True)


def _ours(module: nn.Module, frame: tuple, x: torch.Tensor):
    ours, records = convert_snntorch(module)
    model = LoihiModel(ours, frame, max_len=T).eval()
    model.calibrate(x)
    net = lower(model)
    # Until the conversion marks its own helpers (issue 20), mark the one these models get by hand:
    # the readout that counts the spiking output's spikes is no layer of the model.
    for p in net.projections:
        if p.target == net.output and p.origin.get("layers") == ["spike_count"]:
            p.origin.setdefault("helper", "spike-count readout")
    _, spikes = run_forward(module, x, "model.py")
    as_of = {r["as"]: r["path"] for r in records if "as" in r}
    trains = {}
    for pop in net.populations:
        path = as_of.get(pop.meta.get("layer"))
        trains[pop.name] = (spikes[path].numpy() > 0) if path in spikes else np.zeros((len(x), T, pop.size), bool)
    m = measure_spikes("float snnTorch", trains, np.zeros((len(x), T, net.population(net.output).size)))
    traffic = build_traffic(net, x.reshape(len(x), T, -1).numpy(), m, model="m.nir", model_sha256="0")
    return count_operations(traffic, net), trains


@pytest.mark.parametrize("name", list(MODELS))
def test_our_neurobench_counts_equal_neurobench_on_the_same_model_and_inputs(name):
    make, frame, positive = MODELS[name]
    torch.manual_seed(0)
    module = _lively(make(), seed=1, positive=positive)
    x = torch.rand(B, T, *frame, generator=torch.Generator().manual_seed(2)) + 0.05  # no exact zeros
    theirs = _neurobench(module, x)
    counts, trains = _ours(module, frame, x)
    mine = counts.neurobench
    for lay in counts.layers:  # a lively model: every spiking layer fires, and not always
        if lay.kind == "lif":
            assert 0.0 < lay.firing_rate < 1.0, (name, lay.name, lay.firing_rate)
    assert set(theirs["SynapticOperations"]) == set(mine["SynapticOperations"])
    for key in ("Effective_MACs", "Effective_ACs", "Dense"):
        assert mine["SynapticOperations"][key] == pytest.approx(theirs["SynapticOperations"][key], rel=1e-12,
                                                                abs=1e-9), (name, key)
    assert mine["SynapticOperations"]["Effective_ACs"] > 0 and mine["SynapticOperations"]["Effective_MACs"] > 0
    assert mine["ActivationSparsity"] == pytest.approx(theirs["ActivationSparsity"], rel=1e-12)
    # ours: every neuron every step (the deployed traffic has no membrane traces); neurobench's skips a
    # step whose float membrane came out exactly unchanged: ours is its bound, and close to it
    n_steps = sum(tr.shape[2] for name_, tr in trains.items() if name_ != counts.layers[-1].name) * T
    assert mine["MembraneUpdates"] == n_steps
    assert 0.95 * mine["MembraneUpdates"] <= theirs["MembraneUpdates"] <= mine["MembraneUpdates"]
    assert mine["ConnectionSparsity"] == pytest.approx(theirs["ConnectionSparsity"], abs=1e-4)  # theirs: 4 decimals
    assert 0.05 < theirs["ConnectionSparsity"] < 0.3  # zeros present, so the check has something to count
    # the connection layers' weights and biases (RLeaky's recurrent Linear included); neurobench counts
    # every parameter of the torch model, which here are exactly those
    assert mine["ParameterCount"] == theirs["ParameterCount"] == sum(p.numel() for p in module.parameters())
