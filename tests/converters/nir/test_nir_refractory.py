"""The refractory period when reading and writing NIR: our files state it per population in their
metadata (NIR's LIF has no field for it), other tools' graphs take it by request; the float
executor holds neurons by the same rule.

Checked against: snnTorch 1.0's RLeaky with reset_mechanism="zero" (the source of such graphs: its
zero reset discards the whole step after a spike), exported by snnTorch's own export_to_nir.
"""

import nir
import numpy as np
import pytest
import torch
from netgen import random_network

from converters.nir.export import export_nir
from converters.nir.float_executor import load
from converters.nir.read import read_intnet
from lmu2neuro.core.errors import UserError
from lmu2neuro.core.executor import execute


def _third_party(tmp_path):
    rng = np.random.default_rng(2)

    def lif(n):
        return nir.LIF(tau=np.full(n, 1e-3), r=np.full(n, 10.0), v_leak=np.zeros(n), v_threshold=np.ones(n),
                       v_reset=np.zeros(n))

    g = nir.NIRGraph(nodes={"x": nir.Input(input_type=np.array([5])),
                            "fc": nir.Linear(weight=rng.normal(0.3, 0.5, (6, 5))),
                            "l1": lif(6), "y": nir.Output(output_type=np.array([6]))},
                     edges=[("x", "fc"), ("fc", "l1"), ("l1", "y")])
    nir.write(tmp_path / "g.nir", g)
    return tmp_path / "g.nir"


def test_third_party_graph_takes_the_refractory_period_by_request(tmp_path):
    path = _third_party(tmp_path)
    assert {p.refractory for p in read_intnet(path).populations} == {0}
    net = read_intnet(path, refractory=2)
    assert [(p.name, p.refractory) for p in net.populations] == [("l1", 2), ("l1.count", 0)]  # the readout integrates
    for bad in (-1, 63, 1.5, True):
        with pytest.raises(UserError, match=r"refractory .*: expected whole steps 0\.\.62"):
            read_intnet(path, refractory=bad)


def test_our_files_state_it_and_refuse_another(tmp_path):
    net = random_network(3)
    for pop, steps in zip(net.populations, (1, 0, 4, 2, 0)):
        pop.refractory = steps
    export_nir(net, tmp_path / "m.nir")
    back = read_intnet(tmp_path / "m.nir")
    assert [p.refractory for p in back.populations] == [1, 0, 4, 2, 0]
    x = np.random.default_rng(0).integers(-20, 40, (3, 20, net.input_size))
    a, b = execute(net, x), execute(back, x)
    assert all(torch.equal(a.spikes[p], b.spikes[p]) for p in a.spikes)
    with pytest.raises(UserError, match="refractory 3 given, but this file states"):
        read_intnet(tmp_path / "m.nir", refractory=3)


def _snntorch_rleaky(seed=0):
    import snntorch as snn

    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(5, 12),
                              snn.RLeaky(beta=torch.full((12,), 0.8), threshold=torch.ones(12), linear_features=12,
                                         reset_mechanism="zero", init_hidden=True),
                              torch.nn.Linear(12, 4),
                              snn.Leaky(beta=torch.full((4,), 0.8), threshold=torch.ones(4),
                                        reset_mechanism="zero", init_hidden=True, output=True))
    with torch.no_grad():
        net[0].weight.mul_(3.0)
    return net


def _snntorch_spikes(net, x):
    from snntorch import utils

    utils.reset(net)
    hidden = []
    with torch.no_grad():
        for t in range(x.shape[1]):
            net[1](net[0](x[:, t]))
            hidden.append(net[1].spk.clone())
            net[3](net[2](net[1].spk))
    return torch.stack(hidden, 1)


def test_snntorch_rleaky_zero_is_one_refractory_step(tmp_path):
    from snntorch.export_nir import export_to_nir

    net = _snntorch_rleaky()
    x = torch.rand(6, 40, 5, generator=torch.Generator().manual_seed(1))
    theirs = _snntorch_spikes(net, x).numpy() > 0
    assert 0.05 < theirs.mean() < 0.6
    path = tmp_path / "r.nir"
    nir.write(path, export_to_nir(net, torch.rand(1, 5), ignore_dims=[0]))
    # the float graph: identical spikes with the refractory step, not without it
    same = {}
    for steps in (0, 1):
        _, rec = load(path, dt=1e-4, refractory=steps)(x.double(), record=True)
        same[steps] = float(((rec["1.lif"]["out"].numpy() > 0) == theirs).mean())
    assert same[1] > 0.99 and same[0] < same[1] - 0.02, same
    # the integers read with refractory 1 follow snnTorch closer than without
    counts = {}
    for steps in (0, 1):
        ints = read_intnet(path, input_scale=100.0, refractory=steps)
        pop = next(p for p in ints.populations if p.size == 12 and not p.readout)
        s = execute(ints, ints.quantize_input(x.numpy())).spikes[pop.name].numpy()
        counts[steps] = float(np.abs(s.sum(1) - theirs.sum(1)).sum() / theirs.sum())
    assert counts[1] < 0.05 and counts[0] > 2 * counts[1], counts
