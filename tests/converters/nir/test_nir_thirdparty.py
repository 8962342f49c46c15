"""Our torch reader on other tools' graphs: the NIR paper's LIF benchmark and snnTorch exports."""

import warnings

import nir
import numpy as np
import pytest
import torch

from converters.nir.float_executor import load

from netgen import PAPER_DATA as DATA
from netgen import PAPER_SPIKES, needs_paper_data

LIF = DATA / "lif_norse.nir"
pytestmark = needs_paper_data


def _csv(name):
    return np.loadtxt(DATA / f"lif_{name}.csv", delimiter=",")


def _run(method):
    x = _csv("norse")[:, 0]
    model = load(LIF, dt=1e-4, method=method)
    out, rec = model(torch.as_tensor(x).reshape(1, -1, 1), record=True)
    return out[0, :, 0].numpy(), rec["1"]["v"][0, :, 0].numpy()


def test_lif_norse_euler_matches_norse_trace():
    spikes, v = _run("euler")
    assert np.flatnonzero(spikes).tolist() == PAPER_SPIKES
    norse = _csv("norse")
    np.testing.assert_array_equal(spikes, norse[:, 2])
    np.testing.assert_allclose(v, norse[:, 1], atol=1e-6)  # the CSV is float32


def test_lif_norse_exact_matches_the_exact_trace_until_the_first_spike():
    spikes, v = _run("exact")
    assert np.flatnonzero(spikes).tolist() == PAPER_SPIKES
    exact = _csv("exact")
    np.testing.assert_allclose(v[:460], exact[:460, 1], atol=1e-9)


@pytest.mark.parametrize("platform", ["exact", "norse", "snntorch", "spinnaker2", "lava_cpu_fixed", "lava_loihi_fixed"])
def test_every_platform_spikes_within_one_step_of_ours(platform):
    spikes, _ = _run("euler")
    theirs = np.flatnonzero(_csv(platform)[:, 2])
    ours = np.flatnonzero(spikes)
    assert len(theirs) == len(ours) == 4
    assert np.abs(theirs - ours).max() <= 1


# -- snnTorch exports ---------------------------------------------------------------------------------
class _Net(torch.nn.Module):
    """Linear -> Leaky / RLeaky / Synaptic -> Linear -> Leaky, per-neuron beta and threshold, reset to zero."""

    def __init__(self, kind: str):
        super().__init__()
        import snntorch as snn

        g = torch.Generator().manual_seed({"leaky": 0, "rleaky": 1, "synaptic": 2}[kind])
        self.fc1 = torch.nn.Linear(4, 6)
        beta1, thr1 = torch.rand(6, generator=g) * 0.5 + 0.4, torch.rand(6, generator=g) * 0.5 + 0.5
        recurrent = kind == "rleaky"
        self.kind = kind
        if kind == "synaptic":
            # reset_delay=False for the same reason; Synaptic exports as CubaLIF (w_in = tau_syn / dt)
            self.lif1 = snn.Synaptic(alpha=torch.rand(6, generator=g) * 0.5 + 0.3, beta=beta1, threshold=thr1,
                                     reset_mechanism="zero", reset_delay=False)
        elif recurrent:
            # reset_delay=False: the reset happens in the spiking step, as NIR's v_reset says; with the
            # default delayed zero reset RLeaky also drops the next step's input (see the README)
            self.lif1 = snn.RLeaky(beta=beta1, threshold=thr1, linear_features=6, reset_mechanism="zero",
                                   reset_delay=False)
        else:
            self.lif1 = snn.Leaky(beta=beta1, threshold=thr1, reset_mechanism="zero")
        self.fc2 = torch.nn.Linear(6, 3)
        self.lif2 = snn.Leaky(beta=torch.rand(3, generator=g) * 0.5 + 0.4,
                              threshold=torch.rand(3, generator=g) * 0.5 + 0.5, reset_mechanism="zero")
        with torch.no_grad():  # weights from our generator, strong enough that both layers spike
            for fc, shift in ((self.fc1, 0.0), (self.fc2, 0.6)):
                fc.weight.copy_(torch.randn(fc.weight.shape, generator=g) + shift)
                fc.bias.copy_(torch.rand(fc.bias.shape, generator=g) * 0.3)
        self.recurrent = recurrent
        self.reset_state(1)

    def reset_state(self, batch):
        self.m1, self.s1, self.m2 = torch.zeros(batch, 6), torch.zeros(batch, 6), torch.zeros(batch, 3)
        self.i1 = torch.zeros(batch, 6)

    def forward(self, x):  # one step
        if self.kind == "synaptic":
            self.s1, self.i1, self.m1 = self.lif1(self.fc1(x), self.i1, self.m1)
        elif self.recurrent:
            self.s1, self.m1 = self.lif1(self.fc1(x), self.s1, self.m1)
        else:
            self.s1, self.m1 = self.lif1(self.fc1(x), self.m1)
        s2, self.m2 = self.lif2(self.fc2(self.s1), self.m2)
        return s2

    def run(self, xs):
        self.reset_state(xs.shape[0])
        with torch.no_grad():
            return torch.stack([self(xs[:, t]) for t in range(xs.shape[1])], 1)


@pytest.mark.parametrize("kind", ["leaky", "rleaky", "synaptic"])
def test_snntorch_export_runs_and_matches_the_snntorch_model(kind, tmp_path):
    from snntorch.export_nir import export_to_nir

    recurrent = kind == "rleaky"
    net = _Net(kind)
    net.reset_state(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = export_to_nir(net, torch.randn(2, 4), ignore_dims=[0])
    types = {type(n).__name__ for n in graph.nodes.values()}
    assert ("CubaLIF" in types) == (kind == "synaptic")
    path = tmp_path / "snn.nir"
    nir.write(path, graph)
    model = load(path, dt=1e-4)
    xs = torch.rand(5, 40, 4, generator=torch.Generator().manual_seed(2)) * 2
    ref = net.run(xs)
    out = model(xs.double())
    assert ref.sum() > 20  # both layers are active
    assert torch.equal(out, ref.double())
    if recurrent:  # the recurrent weights really act: without them the spikes differ
        net.lif1.recurrent.weight.data.zero_()
        net.lif1.recurrent.bias.data.zero_()
        assert not torch.equal(net.run(xs).double(), out)


def test_nested_subgraph_equals_its_flat_version():
    rng = np.random.default_rng(0)
    w_in, w_rec = rng.normal(size=(3, 2)), rng.normal(size=(3, 3))
    lif = dict(tau=np.full(3, 2e-3), r=np.ones(3), v_leak=np.zeros(3), v_threshold=np.full(3, 0.05))
    sub = nir.NIRGraph(
        nodes={"in": nir.Input(input_type=np.array([3])), "lif": nir.LIF(**lif), "rec": nir.Linear(weight=w_rec),
               "out": nir.Output(output_type=np.array([3]))},
        edges=[("in", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "out")],
    )
    nested = nir.NIRGraph(
        nodes={"x": nir.Input(input_type=np.array([2])), "w": nir.Linear(weight=w_in), "layer": sub,
               "y": nir.Output(output_type=np.array([3]))},
        edges=[("x", "w"), ("w", "layer"), ("layer", "y")],
    )
    flat = nir.NIRGraph(
        nodes={"x": nir.Input(input_type=np.array([2])), "w": nir.Linear(weight=w_in), "lif": nir.LIF(**lif),
               "rec": nir.Linear(weight=w_rec), "y": nir.Output(output_type=np.array([3]))},
        edges=[("x", "w"), ("w", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "y")],
    )
    x = torch.as_tensor(rng.random((2, 30, 2)) * 3)
    a, b = load(nested, dt=1e-4)(x), load(flat, dt=1e-4)(x)
    assert a.sum() > 5
    assert torch.equal(a, b)


def test_conv_pool_flatten_chain_runs_per_step():
    """Conv2d -> SumPool2d -> Flatten -> Affine -> IF on each step's tensor."""
    rng = np.random.default_rng(1)
    conv_w, conv_b = rng.normal(size=(2, 1, 3, 3)), rng.normal(size=2)
    aff_w = rng.normal(size=(4, 8))
    g = nir.NIRGraph(
        nodes={
            "x": nir.Input(input_type=np.array([1, 4, 4])),
            "conv": nir.Conv2d(input_shape=(4, 4), weight=conv_w, stride=1, padding=1, dilation=1, groups=1, bias=conv_b),
            "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
            "flat": nir.Flatten(input_type={"input": np.array([2, 2, 2])}, start_dim=0, end_dim=-1),
            "fc": nir.Affine(weight=aff_w, bias=np.zeros(4)),
            "if": nir.IF(r=np.full(4, 1e4), v_threshold=np.ones(4)),
            "y": nir.Output(output_type=np.array([4])),
        },
        edges=[("x", "conv"), ("conv", "pool"), ("pool", "flat"), ("flat", "fc"), ("fc", "if"), ("if", "y")],
    )
    x = torch.as_tensor(rng.random((3, 6, 1, 4, 4)))
    out = load(g, dt=1e-4)(x)
    # the same computation written directly
    tf = torch.nn.functional
    cur = torch.zeros(3, 4, dtype=torch.float64)
    v = torch.zeros(3, 4, dtype=torch.float64)
    for t in range(6):
        y = tf.conv2d(x[:, t], torch.as_tensor(conv_w), torch.as_tensor(conv_b), padding=1)
        y = tf.avg_pool2d(y, 2) * 4
        cur = y.flatten(1) @ torch.as_tensor(aff_w).T
        v = v + 1e-4 * 1e4 * cur
        z = v > 1
        v = torch.where(z, torch.zeros_like(v), v)
        assert torch.equal(out[:, t], z.double())
    assert out.sum() > 0


def _single(node, shape, dt=1e-3, method="euler", pre=None):
    nodes = {"x": nir.Input(input_type=np.array(shape)), "n": node, "y": nir.Output(output_type=np.array(shape))}
    return load(nir.NIRGraph(nodes=nodes, edges=[("x", "n"), ("n", "y")]), dt=dt, method=method)


def test_node_semantics_against_closed_forms():
    rng = np.random.default_rng(4)
    x = torch.as_tensor(rng.normal(size=(2, 12, 3)))
    # Delay by a whole number of steps per element
    y = _single(nir.Delay(delay=np.array([0.0, 1e-3, 3e-3])), [3])(x)
    for k, d in enumerate([0, 1, 3]):
        assert torch.equal(y[:, d:, k], x[:, : 12 - d, k]) and torch.equal(y[:, :d, k], torch.zeros(2, d, dtype=y.dtype))
    # Scale and Threshold
    s = np.array([0.5, -2.0, 3.0])
    torch.testing.assert_close(_single(nir.Scale(scale=s), [3])(x), x * torch.as_tensor(s), rtol=0, atol=0)
    assert torch.equal(_single(nir.Threshold(threshold=np.full(3, 0.2)), [3])(x), (x > 0.2).double())
    # I: v = dt r sum x ; LI exact: v_t = v_inf + (v_{t-1} - v_inf) e^{-dt/tau}
    torch.testing.assert_close(_single(nir.I(r=np.full(3, 10.0)), [3])(x), 1e-2 * x.cumsum(1), rtol=1e-12, atol=1e-12)
    tau, r, vl = np.array([2e-3, 5e-3, 1e-2]), np.array([1.0, 2.0, 0.5]), np.array([0.1, 0.0, -0.2])
    got = _single(nir.LI(tau=tau, r=r, v_leak=vl), [3], method="exact")(x)
    v = torch.zeros(2, 3, dtype=torch.float64)
    k = torch.exp(-1e-3 / torch.as_tensor(tau))
    for t in range(12):
        vinf = torch.as_tensor(vl) + torch.as_tensor(r) * x[:, t]
        v = vinf + (v - vinf) * k
        torch.testing.assert_close(got[:, t], v, rtol=1e-12, atol=1e-12)
    # CubaLI Euler: the current updates first, the voltage sees the new current in the same step
    ts, tm, w_in = np.full(3, 4e-3), np.full(3, 8e-3), np.array([1.0, 2.0, 3.0])
    got = _single(nir.CubaLI(tau_syn=ts, tau_mem=tm, r=np.ones(3), v_leak=np.zeros(3), w_in=w_in), [3])(x)
    i = torch.zeros(2, 3, dtype=torch.float64)
    v = torch.zeros_like(i)
    for t in range(12):
        i = i + 0.25 * (torch.as_tensor(w_in) * x[:, t] - i)
        v = v + 0.125 * (i - v)
        torch.testing.assert_close(got[:, t], v, rtol=1e-12, atol=1e-12)


def test_conv1d_and_avgpool_per_step():
    rng = np.random.default_rng(6)
    w, b = rng.normal(size=(4, 2, 3)), rng.normal(size=4)
    conv = nir.Conv1d(input_shape=7, weight=w, stride=2, padding=1, dilation=1, groups=1, bias=b)
    x = torch.as_tensor(rng.normal(size=(2, 5, 2, 7)))
    out = load(nir.NIRGraph(nodes={"x": nir.Input(input_type=np.array([2, 7])), "c": conv,
                                   "y": nir.Output(output_type=np.array([4, 4]))},
                            edges=[("x", "c"), ("c", "y")]), dt=1e-3)(x)
    for t in range(5):
        ref = torch.nn.functional.conv1d(x[:, t], torch.as_tensor(w), torch.as_tensor(b), stride=2, padding=1)
        torch.testing.assert_close(out[:, t], ref, rtol=1e-12, atol=1e-12)
    pool = nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0]))
    g = nir.NIRGraph(nodes={"x": nir.Input(input_type=np.array([1, 4, 4])), "p": pool,
                            "y": nir.Output(output_type=np.array([1, 2, 2]))}, edges=[("x", "p"), ("p", "y")])
    x = torch.as_tensor(rng.normal(size=(2, 3, 1, 4, 4)))
    out = load(g, dt=1e-3)(x)
    torch.testing.assert_close(out[:, 1], torch.nn.functional.avg_pool2d(x[:, 1], 2), rtol=1e-12, atol=1e-12)
