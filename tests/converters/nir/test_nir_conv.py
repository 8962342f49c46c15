"""Third-party NIR convolutions read as convolutional projections (the kernel stored once).

What is checked against what: every graph is read twice, through the convolution path and with
``conv=False`` (every chain composed into a dense matrix, the reader's older and independent
path); the integers must be the same (kernel expanded = dense matrix, same exponents, same
thresholds and biases) and so must the reference simulator's spikes on random inputs.
"""

import nir
import numpy as np
import pytest

from converters.nir.read import read_intnet
from lmu2neuro.core.errors import UserError
from lmu2neuro.core.executor import execute

DT = 1e-4


def _lif(shape, thr=1.0, tau=1e-3):
    return nir.LIF(tau=np.full(shape, tau), r=np.full(shape, 10.0), v_leak=np.zeros(shape),
                   v_threshold=np.broadcast_to(np.asarray(thr, dtype=float), shape).copy())


def _pool(kind, k=2, s=2, p=0):
    cls = nir.AvgPool2d if kind == "avg" else nir.SumPool2d
    return cls(kernel_size=np.array([k, k]), stride=np.array([s, s]), padding=np.array([p, p]))


def _chain_graph(in_shape, synapses, neuron_shape, thr=1.0, head=3):
    """Input -> synapses... -> LIF (neuron_shape) -> Flatten -> Linear -> LIF(head) -> Output."""
    rng = np.random.default_rng(7)
    n = int(np.prod(neuron_shape))
    nodes = {"x": nir.Input(input_type=np.array(in_shape))}
    names = []
    for i, node in enumerate(synapses):
        nodes[f"s{i}"] = node
        names.append(f"s{i}")
    nodes.update({"l1": _lif(neuron_shape, thr),
                  "f": nir.Flatten(input_type={"input": np.array(neuron_shape)}, start_dim=0, end_dim=-1),
                  "fc": nir.Linear(weight=rng.normal(0.2, 0.3, (head, n))), "l2": _lif((head,)),
                  "y": nir.Output(output_type=np.array([head]))})
    chain = ["x"] + names + ["l1", "f", "fc", "l2", "y"]
    return nir.NIRGraph(nodes=nodes, edges=list(zip(chain, chain[1:])))


def _conv2d(rng, c_in, c_out, k, hw, stride=1, padding=0, dilation=1, groups=1, bias=True):
    return nir.Conv2d(input_shape=hw, weight=rng.normal(0.05, 0.4, (c_out, c_in // groups, k, k)), stride=stride,
                      padding=padding, dilation=dilation, groups=groups,
                      bias=rng.normal(0, 0.1, c_out) if bias else np.zeros(c_out))


def _cases():
    rng = np.random.default_rng(1)
    return {
        # the snnTorch tutorial's block: Conv2d then AvgPool, composed into one stride-2 kernel
        "conv_avgpool": ((2, 10, 10), [_conv2d(rng, 2, 4, 3, (10, 10)), _pool("avg")], (4, 4, 4)),
        "conv_sumpool_padded": ((2, 9, 9), [_conv2d(rng, 2, 3, 3, (9, 9), stride=2, padding=1), _pool("sum", 2, 1)],
                                (3, 4, 4)),
        "avgpool_then_conv": ((3, 8, 8), [_pool("avg"), _conv2d(rng, 3, 4, 3, (4, 4), dilation=1)], (4, 2, 2)),
        # (nir 1.0.8 infers a grouped Conv2d's input channels wrongly, so no third-party file has groups)
        "strided_dilated_padded": ((4, 9, 9), [_conv2d(rng, 4, 6, 3, (9, 9), stride=2, padding=2, dilation=2)],
                                   (6, 5, 5)),
        "pool_with_padding": ((2, 7, 7), [_pool("avg", 3, 2, 1)], (2, 4, 4)),
        "scale_per_channel": ((2, 6, 6), [nir.Scale(scale=np.repeat([0.5, 2.0], 36).reshape(2, 6, 6)),
                                          _conv2d(rng, 2, 3, 3, (6, 6))], (3, 4, 4)),
        "conv1d_delay": ((2, 12), [nir.Conv1d(input_shape=12, weight=rng.normal(0.1, 0.5, (3, 2, 3)), stride=2,
                                              padding=1, dilation=2, groups=1, bias=rng.normal(0, 0.1, 3)),
                                   nir.Delay(delay=np.full((3, 5), 2 * DT))], (3, 5)),
        # PyTorch's string paddings, resolved by core.conv.resolve_padding (drawn last: the cases above
        # keep their weights)
        "same_then_sumpool": ((2, 8, 8), [_conv2d(rng, 2, 3, 3, (8, 8), padding="same", dilation=2), _pool("sum")],
                              (3, 4, 4)),
        "valid": ((2, 7, 7), [_conv2d(rng, 2, 3, 3, (7, 7), padding="valid")], (3, 5, 5)),
    }


CASES = _cases()


@pytest.mark.parametrize("case", sorted(CASES))
def test_conv_path_equals_dense_path_bit_for_bit(case, tmp_path):
    in_shape, synapses, neuron_shape = CASES[case]
    path = tmp_path / "g.nir"
    nir.write(path, _chain_graph(in_shape, synapses, neuron_shape, thr=0.6))
    conv = read_intnet(path, dt=DT, input_scale=40.0)
    dense = read_intnet(path, dt=DT, input_scale=40.0, conv=False)
    first = conv.projections[0]
    assert first.conv is not None and dense.projections[0].conv is None
    assert first.stored_weights() < dense.projections[0].stored_weights()
    for a, b in zip(conv.projections, dense.projections):
        assert (a.name, a.source, a.target, a.weight_exp) == (b.name, b.source, b.target, b.weight_exp)
        np.testing.assert_array_equal(a.dense(), b.weights)
    for a, b in zip(conv.populations, dense.populations):
        assert (a.vth, a.bias_exp, a.du, a.dv) == (b.vth, b.bias_exp, b.du, b.dv)
        np.testing.assert_array_equal(a.bias_mant, b.bias_mant)
    assert conv.population("l1").shape == tuple(neuron_shape)
    x = conv.quantize_input(np.random.default_rng(4).random((3, 25, conv.input_size)) * 1.5)
    got, want = execute(conv, x), execute(dense, x)
    assert sum(int(s.sum()) for s in want.spikes.values()) > 50
    for name, s in want.spikes.items():
        assert np.array_equal(got.spikes[name].numpy(), s.numpy()), name
    if case == "conv1d_delay":  # a uniform delay moves the kernel to a later tap
        assert first.taps == 3 and not first.weights[:2].any()


def test_tutorial_cnn_reads_at_the_default_limits_with_real_macs(tmp_path):
    rng = np.random.default_rng(0)
    g = _chain_graph((1, 28, 28), [_conv2d(rng, 1, 12, 5, (28, 28)), _pool("avg")], (12, 12, 12))
    nodes = dict(g.nodes)
    nodes["fc"] = _conv2d(rng, 12, 64, 5, (12, 12))
    nodes["p2"] = _pool("avg")
    nodes["l2"] = _lif((64, 4, 4))
    nodes["f2"] = nir.Flatten(input_type={"input": np.array([64, 4, 4])}, start_dim=0, end_dim=-1)
    nodes["fc2"] = nir.Linear(weight=rng.normal(0, 0.05, (10, 1024)))
    nodes["l3"] = _lif((10,))
    nodes["y"] = nir.Output(output_type=np.array([10]))
    del nodes["f"]
    chain = ["x", "s0", "s1", "l1", "fc", "p2", "l2", "f2", "fc2", "l3", "y"]
    path = tmp_path / "cnn.nir"
    nir.write(path, nir.NIRGraph(nodes=nodes, edges=list(zip(chain, chain[1:]))))
    net = read_intnet(path, input_scale=127)
    c1, c2, fc = net.projections[:3]
    assert c1.weights.shape == (1, 12, 1, 6, 6) and c2.weights.shape == (1, 64, 12, 6, 6)
    # NeuroBench counts each Conv2d at every output position, the pooling not at all
    assert c1.origin["ann_macs"] == 12 * 24 * 24 * 25 and c2.origin["ann_macs"] == 64 * 8 * 8 * 12 * 25
    assert fc.conv is None and "ann_macs" not in fc.origin
    assert [p.shape for p in net.populations[:2]] == [(12, 12, 12), (64, 4, 4)]
    # the dense path composes the 1728 x 1728 identity and the 1024 x 1728 matrix: refused at the default limit
    with pytest.raises(UserError, match="exceeds the limit"):
        read_intnet(path, input_scale=127, conv=False)


def test_a_padded_conv_counts_neurobench_s_macs_whichever_path_lowers_it(tmp_path):
    """NeuroBench's Dense of a padded Conv2d (its all-one copy on an all-one input: padding adds
    nothing) is the same alone or with a pooling folded in, through the conv or the dense path."""
    import torch

    from lmu2neuro.analysis.counting import dense_per_step

    rng = np.random.default_rng(0)
    layer = torch.nn.Conv2d(2, 4, 3, padding=1, bias=False)
    torch.nn.init.ones_(layer.weight)
    with torch.no_grad():
        want = int(layer(torch.ones(1, 2, 8, 8)).sum())
    assert want < 4 * 8 * 8 * 18  # the padded border counts less than the kernel at every position
    got = set()
    for synapses, shape in (([_conv2d(rng, 2, 4, 3, (8, 8), padding=1)], (4, 8, 8)),
                            ([_conv2d(rng, 2, 4, 3, (8, 8), padding=1), _pool("avg")], (4, 4, 4))):
        path = tmp_path / f"g{len(synapses)}.nir"
        nir.write(path, _chain_graph((2, 8, 8), synapses, shape))
        for conv in (True, False):
            proj = read_intnet(path, dt=DT, input_scale=40.0, conv=conv).projections[0]
            assert (proj.conv is not None) == conv
            got.add(dense_per_step(proj))
    assert got == {want}


def test_what_is_not_one_convolution_stays_dense(tmp_path):
    rng = np.random.default_rng(2)
    cases = {
        "per-element scale": ([nir.Scale(scale=rng.random((2, 6, 6)) + 0.5), _conv2d(rng, 2, 3, 3, (6, 6))], (3, 4, 4),
                              1.0),
        "thresholds differ within a channel": ([_conv2d(rng, 2, 3, 3, (6, 6))], (3, 4, 4),
                                               rng.uniform(0.5, 1.5, (3, 4, 4))),
        "second conv pads": ([_pool("avg"), _conv2d(rng, 2, 3, 3, (3, 3), padding=1)], (3, 3, 3), 1.0),
        # PyTorch pads the far side one more: no geometry states it
        "uneven 'same' padding": ([_conv2d(rng, 2, 3, 2, (6, 6), padding="same")], (3, 6, 6), 1.0),
    }
    for what, (synapses, shape, thr) in cases.items():
        path = tmp_path / "g.nir"
        nir.write(path, _chain_graph((2, 6, 6), synapses, shape, thr=thr))
        net = read_intnet(path, dt=DT, input_scale=40.0)
        dense = read_intnet(path, dt=DT, input_scale=40.0, conv=False)
        assert net.projections[0].conv is None, what
        np.testing.assert_array_equal(net.projections[0].weights, dense.projections[0].weights)


def test_conv_kernel_and_synapses_are_bounded(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    path = tmp_path / "g.nir"
    nir.write(path, _chain_graph((16, 12, 12), [_conv2d(rng, 16, 4, 5, (12, 12))], (4, 8, 8)))
    synapses = 4 * 8 * 8 * 16 * 25  # more than the kernel (1,600) and the head's 256 x 256 composition
    monkeypatch.setenv("LMU2NEURO_MAX_ELEMENTS", str(synapses - 1))
    with pytest.raises(UserError, match=r"'x' -> 'l1': convolution synapses: 102,400 elements"):
        read_intnet(path, dt=DT)
    monkeypatch.setenv("LMU2NEURO_MAX_ELEMENTS", str(synapses))
    assert read_intnet(path, dt=DT).projections[0].conv is not None
