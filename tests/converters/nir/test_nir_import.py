"""Third-party NIR graphs lowered to Loihi integers at a stated dt (read_intnet)."""


import nir
import numpy as np
import pytest
import torch

from converters.nir.read import read_intnet
from converters.nir.float_executor import load
from lmu2neuro.core.errors import UserError
from lmu2neuro.core.executor import execute

from netgen import PAPER_DATA as DATA
from netgen import PAPER_SPIKES, needs_paper_data


@needs_paper_data
def test_lif_norse_in_integers_spikes_where_the_paper_says():
    x = np.loadtxt(DATA / "lif_norse.csv", delimiter=",")[:, 0]
    net = read_intnet(DATA / "lif_norse.nir", dt=1e-4)
    pop = net.population("1")
    assert (pop.du, pop.dv) == (4095, round(4096 * 1e-4 / 2.5e-3))  # no synaptic state; 4 % leak per step
    assert net.output == "1.count" and net.population("1.count").readout
    r = execute(net, x.reshape(1, -1, 1).astype(np.int64))
    assert torch.nonzero(r.spikes["1"][0, :, 0]).flatten().tolist() == PAPER_SPIKES
    assert int(r.scores[0, 0]) == 4 * 2 * 64  # the counter integrates 4 spikes of weight 2 (<< 6)


def _lif_graph(rng, delay_steps=0, dt=1e-3):
    w1, w2 = rng.normal(size=(6, 3)) * 2 + 0.5, rng.normal(size=(4, 6)) + 0.5
    nodes = {
        "x": nir.Input(input_type=np.array([3])),
        "fc1": nir.Affine(weight=w1, bias=np.full(6, 0.05)),
        "lif1": nir.LIF(tau=np.full(6, 4 * dt), r=np.full(6, 4.0), v_leak=np.zeros(6),
                        v_threshold=rng.uniform(0.5, 1.5, 6)),
        "fc2": nir.Linear(weight=w2),
        "lif2": nir.CubaLIF(tau_syn=np.full(4, 2 * dt), tau_mem=np.full(4, 8 * dt), r=np.full(4, 8.0),
                            v_leak=np.zeros(4), v_threshold=rng.uniform(0.5, 1.0, 4), w_in=np.full(4, 2.0)),
        "y": nir.Output(output_type=np.array([4])),
    }
    edges = [("x", "fc1"), ("fc1", "lif1"), ("fc2", "lif2"), ("lif2", "y")]
    if delay_steps:
        nodes["d"] = nir.Delay(delay=np.full(6, delay_steps * dt))
        edges += [("lif1", "d"), ("d", "fc2")]
    else:
        edges.append(("lif1", "fc2"))
    return nir.NIRGraph(nodes=nodes, edges=edges)


@pytest.mark.parametrize("delay_steps", [0, 2])
def test_quantized_graph_spikes_like_the_float_graph(tmp_path, delay_steps):
    rng = np.random.default_rng(delay_steps)
    path = tmp_path / "g.nir"
    nir.write(path, _lif_graph(rng, delay_steps))
    net = read_intnet(path, dt=1e-3, input_scale=32.0)
    proj = [p for p in net.projections if p.target == "lif2"][0]
    assert proj.taps == delay_steps + 1 and np.count_nonzero(proj.weights[:delay_steps]) == 0
    x = rng.uniform(0, 3, (8, 60, 3))
    x_int = net.quantize_input(x)
    r = execute(net, x_int)
    out, rec = load(path, dt=1e-3)(torch.as_tensor(x_int / 32.0), record=True)
    for name, fl in (("lif1", rec["lif1"]["out"]), ("lif2", out)):
        ours, theirs = r.spikes[name].sum(dim=1).double(), fl.sum(dim=1)
        assert theirs.sum() > 50, name
        # 8-bit weights and truncating decays flip a few marginal spikes; a wrong gain, delay or
        # threshold scale moves the totals by far more than 2 %
        assert abs(float(ours.sum() - theirs.sum())) <= 0.02 * float(theirs.sum()), name
        assert (r.spikes[name].double() == fl).double().mean() >= 0.97, name
        assert (ours - theirs).abs().max() <= 5, name


def _write(tmp_path, graph):
    path = tmp_path / "g.nir"
    nir.write(path, graph)
    return path


def test_recurrence_between_neurons_is_named(tmp_path):
    # a neuron feeding itself lowers to a recurrent projection (tests/converters/nir/test_nir_lowering_thirdparty.py);
    # a loop through two neuron nodes cannot be delivered by Lava within a step: refused by name
    lif = dict(tau=np.full(3, 1e-3), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.ones(3))
    g = nir.NIRGraph(
        nodes={"x": nir.Input(input_type=np.array([3])), "a": nir.LIF(**lif), "b": nir.LIF(**lif),
               "ab": nir.Linear(weight=np.eye(3)), "ba": nir.Linear(weight=np.eye(3)),
               "y": nir.Output(output_type=np.array([3]))},
        edges=[("x", "a"), ("a", "ab"), ("ab", "b"), ("b", "ba"), ("ba", "a"), ("b", "y")],
    )
    with pytest.raises(UserError, match=r"recurrent loop between neurons '(a|b)' and '(a|b)'"):
        read_intnet(_write(tmp_path, g))


def test_nonzero_reset_and_non_spiking_hidden_neurons_are_named(tmp_path):
    base = dict(tau=np.full(2, 1e-3), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2))
    g = nir.NIRGraph(
        nodes={"x": nir.Input(input_type=np.array([2])), "lif": nir.LIF(**dict(base, v_reset=np.full(2, 0.2))),
               "y": nir.Output(output_type=np.array([2]))},
        edges=[("x", "lif"), ("lif", "y")],
    )
    with pytest.raises(UserError, match=r"node 'lif': parameter 'v_reset'"):
        read_intnet(_write(tmp_path, g), dt=1e-4)
    g = nir.NIRGraph(
        nodes={"x": nir.Input(input_type=np.array([2])), "li": nir.LI(tau=np.full(2, 1e-3), r=np.ones(2), v_leak=np.zeros(2)),
               "w": nir.Linear(weight=np.eye(2)), "lif": nir.LIF(**base), "y": nir.Output(output_type=np.array([2]))},
        edges=[("x", "li"), ("li", "w"), ("w", "lif"), ("lif", "y")],
    )
    with pytest.raises(UserError, match=r"node 'li' \(LI\) is a non-spiking neuron feeding 'lif'"):
        read_intnet(_write(tmp_path, g), dt=1e-4)


def test_snntorch_export_with_per_neuron_beta_runs_in_integers(tmp_path):
    """snnTorch's per-neuron beta gives per-neuron tau: one population per Loihi decay, same spikes as snnTorch."""
    import warnings

    import snntorch as snn
    from snntorch.export_nir import export_to_nir

    g = torch.Generator().manual_seed(3)
    fc1, fc2 = torch.nn.Linear(4, 6), torch.nn.Linear(6, 3)
    with torch.no_grad():
        fc1.weight.copy_(torch.randn(6, 4, generator=g))
        fc1.bias.zero_()
        fc2.weight.copy_(torch.randn(3, 6, generator=g) + 0.6)
        fc2.bias.zero_()
    betas = [torch.tensor([0.5, 0.75, 0.5, 0.875, 0.75, 0.5]), torch.tensor([0.5, 0.75, 0.75])]
    lif1 = snn.Leaky(beta=betas[0], threshold=torch.rand(6, generator=g) + 0.5, reset_mechanism="zero")
    lif2 = snn.Leaky(beta=betas[1], threshold=torch.rand(3, generator=g) + 0.5, reset_mechanism="zero")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.lif1, self.fc2, self.lif2 = fc1, lif1, fc2, lif2

        def forward(self, x):
            s1, _ = self.lif1(self.fc1(x))
            return self.lif2(self.fc2(s1))[0]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = export_to_nir(Net(), torch.randn(2, 4), ignore_dims=[0])
    path = _write(tmp_path, graph)
    net = read_intnet(path, dt=1e-4, input_scale=32.0)
    names = [p.name for p in net.populations]
    # beta 0.5 / 0.75 / 0.875 in the first layer, 0.5 / 0.75 in the second
    assert names == ["lif1.0", "lif1.1", "lif1.2", "lif2.0", "lif2.1", "lif2.count"]
    assert net.population("lif1.2").dv == 512 and net.population("lif1.2").meta["neurons"] == [3]
    x_int = torch.randint(0, 64, (4, 40, 4), generator=g)
    r = execute(net, x_int)
    # snnTorch itself, step by step on the same (quantized) input
    x = x_int.double() / 32.0
    m1, m2 = torch.zeros(4, 6), torch.zeros(4, 3)
    ref = []
    with torch.no_grad():
        for t in range(40):
            s1, m1 = lif1(fc1(x[:, t].float()), m1)
            s2, m2 = lif2(fc2(s1), m2)
            ref.append(s2)
    ref = torch.stack(ref, 1)
    counts = r.scores.double() / (2 * 64)  # the added counter integrates 2 << 6 per output spike
    assert ref.sum() > 30
    assert (counts - ref.sum(1)).abs().max() <= 2
    assert abs(float(counts.sum() - ref.sum())) <= 0.03 * float(ref.sum())


@pytest.mark.lava
@needs_paper_data
def test_lif_norse_lowered_runs_in_lava_like_the_papers_lava_run():
    """Our integers for lif_norse.nir in Lava fixed_pt (Dense -> LIF) spike where the NIR paper's
    Lava CPU fixed-point run did: one step after the exact times (Dense latency)."""
    from converters.lava.check import run_lif_dense

    x = np.loadtxt(DATA / "lif_norse.csv", delimiter=",")[:, 0].astype(int)
    net = read_intnet(DATA / "lif_norse.nir", dt=1e-4)
    proj, pop = net.projections_into("1")[0], net.population("1")
    spikes, _ = run_lif_dense(x[None, :], proj.weights[0], proj.weight_exp, pop.du, pop.dv, pop.vth,
                              pop.bias_mant, pop.bias_exp)
    theirs = np.flatnonzero(np.loadtxt(DATA / "lif_lava_cpu_fixed.csv", delimiter=",")[:, 2])
    assert np.flatnonzero(spikes[:, 0]).tolist() == theirs.tolist() == [s + 1 for s in PAPER_SPIKES]
