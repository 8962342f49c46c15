"""Counting, chip mapping, time model and SANA-FE export of convolutional projections: each answer
from the kernel equals the one from the same network with every convolution expanded to its dense
matrix (the twin), and the Dense count is NeuroBench's (all-one layer on an all-one input, per step)."""

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from converters.sanafe.export import network_description
from lmu2neuro.analysis.chip_mapping import map_to_chip
from lmu2neuro.analysis.counting import count_operations
from lmu2neuro.analysis.energy import dense_baseline
from lmu2neuro.analysis.profiles import Quantity, load_profile
from lmu2neuro.analysis.timing import core_loads
from lmu2neuro.analysis.traffic import build_traffic
from lmu2neuro.core.conv import ConvGeometry
from lmu2neuro.core.intnet import IntNetwork, Population, Projection
from lmu2neuro.pipeline.simulate import run_reference

STEPS = 6


def conv_net(seed=0) -> IntNetwork:
    """input (2, 9, 9) -> padded conv 4@3 -> 2x2 sum pool (depthwise) -> grouped 2-tap conv 6@2 -> dense readout."""
    rng = np.random.default_rng(seed)

    def kern(shape, amp=20):
        k = rng.integers(-amp // 2, amp // 2 + 1, size=shape) * 2
        k[rng.random(shape) < 0.2] = 0
        return k

    g1 = ConvGeometry((2, 9, 9), 1, 1, 1, 1)
    k1 = kern((1, 4, 2, 3, 3))
    g2 = ConvGeometry((4, 9, 9), 2, 0, 1, 4)
    k2 = np.full((1, 4, 1, 2, 2), 2)
    g3 = ConvGeometry((4, 4, 4), 1, 0, 1, 2)
    k3 = kern((2, 6, 2, 2, 2), 40)
    k3[0] = 0  # tap 0 empty, tap 1 a one-step delay: taps still count per synapse
    k3[1, 0, 0, 0, 0] = 0
    k3[1, 0, 1] = 0  # a kernel entry zero on every tap: no synapse, no pair
    k4 = kern((1, 3, 6 * 3 * 3), 30)

    def lif(name, shape, vth):
        n = int(np.prod(shape))
        return Population(name, n, 4095, 256, vth, np.zeros(n, np.int64), shape=shape)

    pops = [lif("c1", (4, 9, 9), 30), lif("p", (4, 4, 4), 1), lif("c2", (6, 3, 3), 20),
            Population("out", 3, 4095, 0, 0, np.zeros(3, np.int64), readout=True)]
    projs = [Projection("input->c1", "input", "c1", k1, 0, {"kind": "conv"}, g1),
             Projection("c1->p", "c1", "p", k2, 0, {"kind": "pool"}, g2),
             Projection("p->c2", "p", "c2", k3, 0, {"kind": "conv"}, g3),
             Projection("c2->out", "c2", "out", k4, 0, {"kind": "dense"})]
    return IntNetwork(162, 1.0, pops, projs, "out")


def dense_twin(net: IntNetwork) -> IntNetwork:
    projs = [Projection(p.name, p.source, p.target, p.dense(), p.weight_exp, {"kind": "dense"})
             for p in net.projections]
    return IntNetwork(net.input_size, net.input_scale, net.populations, projs, net.output)


def inputs(static: bool, seed=1):
    rng = np.random.default_rng(seed)
    if static:
        frame = rng.integers(0, 40, size=(3, 1, 162))
        return np.repeat(frame, STEPS, axis=1)
    return rng.integers(0, 40, size=(3, STEPS, 162))


def traffic_of(net, x):
    return build_traffic(net, x, run_reference(net, x), model="m.nir", model_sha256="0" * 64, backend="reference")


def small_cores(name: str, **limits):
    """A shipped profile with per-core limits small enough that these layers span several cores,
    packed in order (no slabs: a convolution and its dense twin then map alike)."""
    prof = load_profile(name)
    upd = {k: Quantity(value=v, unit="x", source="test") for k, v in limits.items()}
    return prof.model_copy(update={"chip": prof.chip.model_copy(update={**upd, "partition": None})})


@pytest.fixture(scope="module")
def nets():
    net = conv_net()
    return net, dense_twin(net)


def test_the_network_spikes_in_every_layer(nets):
    net, _ = nets
    t = traffic_of(net, inputs(False))
    spikes = {lay["name"]: lay.get("spikes") for lay in t["layers"]}
    assert all(spikes[n] > 0 for n in ("c1", "p", "c2"))


@pytest.mark.parametrize("profile", ["loihi1", "loihi2"])
def test_chip_mapping_of_a_convolution_equals_its_dense_twin(nets, profile):
    net, twin = nets
    prof = small_cores(profile, neurons_per_core=40, fan_in_axons_per_core=60, fan_out_axons_per_core=10_000,
                       synaptic_memory_per_core=200)
    prof_twin = prof.model_copy(update={"chip": prof.chip.model_copy(update={"conv_weights": None})})
    m, mt = map_to_chip(net, prof_twin), map_to_chip(twin, prof_twin)
    assert m.core_of == mt.core_of and m.cores == mt.cores > 4
    for a, b in zip(m.layers, mt.layers):
        for f in ("neurons", "cores", "synapses", "synaptic_bytes", "max_fan_in_axons", "max_core_fan_in_axons",
                  "max_core_fan_out_axons", "max_core_synaptic_bytes", "limited_by", "synaptic_bytes_per_synapse"):
            assert getattr(a, f) == getattr(b, f), (a.layer, f)
    assert [v.message for v in m.violations] == [v.message for v in mt.violations]
    # the twin stores every connection; the convolution stores its kernel
    assert sum(r.stored_weights for r in m.layers) < sum(r.stored_weights for r in mt.layers)


def test_shared_kernels_cost_each_channel_once_per_core(nets):
    net, _ = nets
    prof = small_cores("loihi2", neurons_per_core=40, synaptic_memory_per_core=10_000)
    assert prof.chip.conv_weights.storage == "shared"
    m = map_to_chip(net, prof)
    for row in m.layers:
        into = net.projections_into(row.layer)
        cores = np.asarray(m.core_of[row.layer])
        want = 0.0
        for p in into:
            w = np.asarray(p.weights)
            bits = 8 + (int(np.ceil(np.log2(p.taps))) if p.taps > 1 else 0)
            if p.conv is None:
                want += np.count_nonzero(w) * bits / 8
                continue
            c_out = w.shape[1]
            channel = np.arange(row.neurons) // (row.neurons // c_out)
            for c in np.unique(cores):
                for ch in np.unique(channel[cores == c]):
                    want += np.count_nonzero(w[:, ch]) * bits / 8
        assert row.synaptic_bytes == int(np.ceil(want)), row.layer
        if any(p.conv is not None for p in into):
            assert row.synaptic_bytes_shared == row.synaptic_bytes < row.synaptic_bytes_per_synapse
        else:
            assert row.synaptic_bytes_shared is None


def test_core_loads_of_a_convolution_equal_its_dense_twin(nets):
    net, twin = nets
    x = inputs(False)
    prof = small_cores("loihi1", neurons_per_core=40)
    m = map_to_chip(net, prof)
    a, b = core_loads(net, traffic_of(net, x), m), core_loads(twin, traffic_of(twin, x), map_to_chip(twin, prof))
    for f in ("neurons", "spikes", "messages_out", "messages_in", "acs", "macs"):
        assert np.allclose(getattr(a, f), getattr(b, f)), f
    assert a.acs.sum() > 0 and a.macs.sum() > 0


def test_a_plan_lists_each_projection_s_connections_once(nets, monkeypatch):
    """The chip mapping keeps the connections it packed with, and the time model's loads use them:
    one listing per projection per plan, the same loads as listing them afresh."""
    from lmu2neuro.analysis.plan import plan_profile

    net, _ = nets
    x = inputs(False)
    traffic = traffic_of(net, x)
    prof = small_cores("loihi1", neurons_per_core=40)
    calls = []
    listing = Projection.connections
    monkeypatch.setattr(Projection, "connections", lambda self: calls.append(self.name) or listing(self))
    plan = plan_profile(count_operations(traffic, net, "t"), net, traffic, prof)
    assert sorted(calls) == sorted(p.name for p in net.projections) and plan["time"] is not None
    fresh = core_loads(net, traffic, replace(plan["mapping"], links={}))
    assert len(calls) == 2 * len(net.projections)
    assert np.array_equal(fresh.acs, plan["loads"].acs) and np.array_equal(fresh.messages_in, plan["loads"].messages_in)
    assert "links" not in plan["mapping"].to_dict() and "core_of" not in plan["mapping"].to_dict()


def _neurobench_dense_per_step(geometry: ConvGeometry, kernel_shape) -> int:
    """NeuroBench's rule, independently: the layer with all-one weights on an all-one input, summed."""
    ones_in = torch.ones((1,) + geometry.in_shape, dtype=torch.float64)
    ones_k = torch.ones(kernel_shape[1:], dtype=torch.float64)
    out = F.conv2d(ones_in, ones_k, stride=geometry.stride, padding=geometry.padding, dilation=geometry.dilation,
                   groups=geometry.groups)
    return kernel_shape[0] * int(out.sum())


def test_dense_count_is_neurobench_and_the_ann_baseline_counts_one_pass_for_a_static_input(nets):
    net, twin = nets
    counts = {static: count_operations(traffic_of(net, inputs(static)), net) for static in (True, False)}
    for pc in counts[False].projections:
        proj = next(p for p in net.projections if p.name == pc.name)
        want = (_neurobench_dense_per_step(proj.conv, proj.weights.shape) if proj.conv is not None
                else proj.weights.size)
        assert pc.dense_macs == want * STEPS, pc.name
        assert pc.weights == proj.stored_weights()
    padded, first = counts[False].projections[0], net.projections[0]
    everywhere = first.taps * int(np.prod(first.out_shape)) * int(np.prod(first.weights.shape[2:]))
    assert padded.dense_macs < everywhere * STEPS  # padding adds no MACs
    assert padded.dense_macs == first.macs() * STEPS  # one definition: Projection.macs is NeuroBench's
    # the dense twin counts its full matrix: the old, wrong count for a convolution
    twin_counts = count_operations(traffic_of(twin, inputs(False)), twin)
    assert twin_counts.totals["dense"] > counts[False].totals["dense"]
    assert twin_counts.totals["effective_acs"] == counts[False].totals["effective_acs"]
    assert twin_counts.totals["effective_macs"] == counts[False].totals["effective_macs"]
    assert twin_counts.totals["footprint_bytes"] > counts[False].totals["footprint_bytes"]

    assert counts[True].static_input and not counts[False].static_input
    assert counts[True].totals["ann_passes"] == 1 and counts[False].totals["ann_passes"] == STEPS
    cpu = load_profile("cpu")
    one, many = dense_baseline(counts[True], cpu), dense_baseline(counts[False], cpu)
    assert one["dense_macs"] * STEPS == many["dense_macs"] == counts[False].totals["dense"]
    assert "static" in one["basis"] and one["passes"] == 1 and not counts[True].recurrent


def test_a_recurrent_network_on_a_static_input_needs_a_pass_per_step():
    """An ANN steps a recurrent state at every step even when the input frame never changes."""
    base = conv_net()
    rec = np.zeros((2, 54, 54), np.int64)
    rec[1] = np.random.default_rng(0).integers(-4, 4, (54, 54)) * 2
    net = IntNetwork(base.input_size, base.input_scale, base.populations,
                     base.projections + [Projection("c2->c2", "c2", "c2", rec)], base.output)
    c = count_operations(traffic_of(net, inputs(True)), net)
    assert c.static_input and c.recurrent and c.totals["ann_passes"] == STEPS
    baseline = dense_baseline(c, load_profile("cpu"))
    assert baseline["passes"] == STEPS and "recurrent" in baseline["basis"]
    assert c.totals["ann_baseline_macs"] == STEPS * sum(p.ann_macs_per_step for p in c.projections)


def test_folded_layers_count_their_own_macs():
    net = conv_net()
    net.projections[0].origin["ann_macs"] = 12345
    c = count_operations(traffic_of(net, inputs(False)), net)
    assert c.projections[0].dense_macs == 12345 * STEPS


def test_sanafe_export_of_a_convolution_equals_its_dense_twin(nets):
    net, twin = nets
    a = network_description(net)["network"]["edges"]
    b = network_description(twin)["network"]["edges"]

    def as_set(edges):
        return {(k, tuple(sorted(v[0].items()))) for e in edges for k, v in e.items()}
    assert len(a) == len(b) and as_set(a) == as_set(b)
