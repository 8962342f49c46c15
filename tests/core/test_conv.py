"""Convolutional projections: every answer from the kernel equals the one from its dense matrix,
the dense matrix equals PyTorch's convolution, and the executor runs both to the same spikes."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lmu2neuro.core.conv import ConvGeometry, compose, composed_kernel_size, regroup, resolve_padding, ungroup
from lmu2neuro.core.errors import UserError
from lmu2neuro.core.executor import execute
from lmu2neuro.core.intnet import IntNetwork, IntNetworkError, Population, Projection

CASES = [  # in_shape, (C_out, *k), stride, padding, dilation, groups
    ((3, 9, 11), (4, 3, 3), 1, 0, 1, 1),
    ((4, 10, 7), (6, 3, 2), (2, 1), (1, 2), 1, 2),
    ((4, 12, 12), (4, 3, 3), 2, 1, 2, 4),  # depthwise, dilated
    ((2, 8, 8), (2, 2, 2), 2, 0, 1, 2),  # a pooling
    ((3, 17), (5, 4), 3, 2, 1, 1),  # 1-D over features
    ((4, 13), (4, 3), 1, 1, 2, 2),
]


def _case(case, taps=1, seed=0):
    in_shape, kshape, stride, padding, dilation, groups = case
    g = ConvGeometry(in_shape, stride, padding, dilation, groups)
    rng = np.random.default_rng(seed)
    kernel = rng.integers(-3, 4, size=(taps, kshape[0], in_shape[0] // groups) + tuple(kshape[1:])) * 2
    kernel[rng.random(kernel.shape) < 0.3] = 0
    return g, kernel


def _torch_conv(g, k, x):
    fn = F.conv2d if g.dims == 2 else F.conv1d
    return fn(torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(k, dtype=torch.float64),
              stride=g.stride, padding=g.padding, dilation=g.dilation, groups=g.groups)


@pytest.mark.parametrize("case", CASES)
def test_kernel_answers_equal_the_dense_matrix_and_torch(case):
    g, kernel = _case(case, taps=2)
    assert g.problem(kernel.shape) is None
    dense = g.dense(kernel)
    out_shape = g.out_shape(kernel.shape)
    assert dense.shape == (2, int(np.prod(out_shape)), g.in_size)
    x = np.random.default_rng(1).integers(-5, 6, size=(3,) + g.in_shape)
    for j in range(2):
        want = _torch_conv(g, kernel[j], x).reshape(3, -1).numpy()
        assert np.array_equal(x.reshape(3, -1) @ dense[j].T, want)
        got = g.apply(torch.as_tensor(kernel[j]), torch.as_tensor(x.reshape(3, -1), dtype=torch.float32))
        assert np.array_equal(got.numpy(), want)
    assert np.array_equal(g.fan_out(kernel), np.count_nonzero(dense, axis=(0, 1)))
    assert np.array_equal(g.fan_in(kernel), np.count_nonzero(dense, axis=(0, 2)))
    tgt, src, _ = g.pairs(kernel)
    reach = np.zeros(dense.shape[1:], dtype=bool)
    reach[tgt, src] = True
    assert np.array_equal(reach, np.any(dense != 0, axis=0))
    assert len(tgt) == reach.sum()  # each pair once
    # NeuroBench's count: an all-one copy of the layer on an all-one input (padding adds nothing)
    ones = _torch_conv(g, np.ones(kernel.shape[1:]), np.ones((1,) + g.in_shape))
    assert g.macs(kernel.shape) == 2 * int(ones.sum())
    assert g.macs(kernel.shape) <= 2 * int(np.prod(out_shape)) * int(np.prod(kernel.shape[2:]))


def test_a_small_chunk_gives_the_same_columns():
    g, kernel = _case(CASES[1])
    x = torch.as_tensor(np.random.default_rng(2).integers(-3, 4, size=(5, g.in_size)), dtype=torch.float64)
    assert torch.equal(g.apply(torch.as_tensor(kernel[0]), x), g.apply(torch.as_tensor(kernel[0]), x, chunk_elements=1))


@pytest.mark.parametrize("first,second", [
    (((3, 14, 14), (5, 5, 5), 1, 2, 1, 1), ((5, 14, 14), (5, 2, 2), 2, 0, 1, 5)),  # conv then 2x2 pool
    (((2, 12, 12), (2, 2, 2), 2, 0, 1, 2), ((2, 6, 6), (4, 3, 3), 1, 0, 1, 1)),  # pool then conv
    (((4, 20), (4, 3), 2, 1, 1, 2), ((4, 10), (6, 2), 1, 0, 2, 2)),  # 1-D, grouped, dilated
])
def test_compose_is_one_convolution_equal_to_both(first, second):
    g1, k1 = _case(first, seed=3)
    g2, k2 = _case(second, seed=4)
    assert g2.in_shape == g1.out_shape(k1.shape)
    g, k = compose(g1, k1[0], g2, k2[0])
    x = np.random.default_rng(5).normal(size=(2,) + g1.in_shape)
    want = _torch_conv(g2, k2[0], _torch_conv(g1, k1[0], x).numpy())
    assert torch.allclose(_torch_conv(g, k, x), want, atol=1e-9)
    assert g.groups == min(g1.groups, g2.groups)


def test_compose_of_tensors_is_differentiable_and_equals_the_numpy_answer():
    g1, k1 = _case(CASES[1], seed=6)
    g2 = ConvGeometry(g1.out_shape(k1.shape), 2, 0, 1, 6)
    pool = np.ones((6, 1, 2, 2))
    want_geo, want = compose(g1, k1[0], g2, pool)
    t1 = torch.tensor(k1[0], dtype=torch.float64, requires_grad=True)
    geo, got = compose(g1, t1, g2, torch.tensor(pool))
    assert geo == want_geo and isinstance(want, np.ndarray) and np.array_equal(got.detach().numpy(), want)
    assert got.shape[2:] == composed_kernel_size(g1, k1.shape[3:], g2, pool.shape[2:])
    got.sum().backward()
    assert t1.grad is not None and bool(t1.grad.abs().sum() > 0)
    # groups=1 keeps the full kernel: ungrouping the grouped answer gives it
    full = compose(g1, k1[0], g2, pool, groups=1)[1]
    assert np.array_equal(full, ungroup(want, g1.in_shape[0], want_geo.groups))
    assert np.array_equal(regroup(full, want_geo.groups), want)


@pytest.mark.parametrize("padding,kernel,dilation,want", [
    ("valid", (3, 5), (1, 1), (0, 0)), ("same", (3, 5), (1, 2), (1, 4)), ("same", (2,), (1,), None),
    (2, (3, 3), 1, (2, 2)), ((1, 0), (3, 3), 1, (1, 0))])
def test_resolve_padding_is_torchs(padding, kernel, dilation, want):
    assert resolve_padding(padding, kernel, dilation) == want
    if want is not None:  # the geometry's output shape is PyTorch's for that string
        g = ConvGeometry((2,) + (9,) * len(kernel), 1, want, dilation, 1)
        x = torch.zeros((1, 2) + (9,) * len(kernel), dtype=torch.float64)
        fn = F.conv2d if len(kernel) == 2 else F.conv1d
        y = fn(x, torch.zeros((3, 2) + kernel, dtype=torch.float64), padding=padding, dilation=dilation)
        assert g.out_shape((1, 3, 2) + kernel) == tuple(y.shape[1:])


def test_pool_pointwise_and_row_sums_are_torchs():
    x = torch.as_tensor(np.random.default_rng(7).normal(size=(2, 3, 6, 8)))
    g, k = ConvGeometry.pool((3, 6, 8), (2, 4), (2, 2), 1, mean=True, dtype=torch.float64)
    want = F.avg_pool2d(x, (2, 4), (2, 2), 1, count_include_pad=True)
    assert torch.allclose(g.apply(k, x.reshape(2, -1)), want.reshape(2, -1), atol=1e-12)
    p = ConvGeometry.pointwise((3, 5))
    assert torch.equal(p.apply(torch.ones(3, 1, 1, dtype=torch.float64), x[:, :, 0, :5].reshape(2, -1)),
                       x[:, :, 0, :5].reshape(2, -1))
    g, kernel = _case(CASES[1], seed=8)
    rows = g.row_sums(torch.as_tensor(np.abs(kernel[0]), dtype=torch.float64)).numpy()
    assert np.array_equal(rows, np.abs(g.dense(kernel)[0]).sum(axis=1))
    mask = g.offsets_in_frame(kernel.shape[3:])  # offset meets a real source exactly where the fan-in counts it
    assert int(mask.sum()) == g.macs((1, 1, 1) + kernel.shape[3:])


def test_compose_refuses_a_padded_second_convolution():
    g1, k1 = _case(CASES[0])
    g2 = ConvGeometry(g1.out_shape(k1.shape), 1, 1, 1, 1)
    assert compose(g1, k1[0], g2, np.ones((2, 4, 3, 3))) is None


def _net(proj_kwargs, in_size, out_size, shape=None):
    pops = [Population("conv", out_size, du=1024, dv=128, vth=40, bias_mant=np.zeros(out_size, dtype=np.int64),
                       shape=shape),
            Population("out", 3, du=4095, dv=0, vth=1, bias_mant=np.zeros(3, dtype=np.int64), readout=True)]
    rng = np.random.default_rng(7)
    readout = rng.integers(-20, 21, size=(1, 3, out_size)) * 2
    return IntNetwork(in_size, 1.0, pops, [Projection("c", "input", "conv", **proj_kwargs),
                                           Projection("r", "conv", "out", readout)], "out")


@pytest.mark.parametrize("case", CASES)
def test_executor_runs_a_convolution_as_its_dense_matrix(case):
    g, kernel = _case(case, taps=2)
    kernel *= 8
    out_shape = g.out_shape(kernel.shape)
    n_out = int(np.prod(out_shape))
    conv = _net({"weights": kernel, "conv": g}, g.in_size, n_out, out_shape)
    dense = _net({"weights": g.dense(kernel)}, g.in_size, n_out)
    x = np.random.default_rng(8).integers(-60, 61, size=(2, 6, g.in_size))
    a, b = execute(conv, x), execute(dense, x)
    assert a.spikes["conv"].any()
    assert torch.equal(a.spikes["conv"], b.spikes["conv"]) and torch.equal(a.scores, b.scores)
    proj = conv.projections[0]
    assert np.array_equal(proj.fan_out(), dense.projections[0].fan_out())
    assert proj.stored_weights() == kernel.size < proj.dense_elements() == dense.projections[0].weights.size
    # the synapses and per-pair tap counts asked of the kernel are the dense matrix's (in some order)
    twin = dense.projections[0]

    def rows(arrays):
        return sorted(zip(*(a.tolist() for a in arrays)))
    assert rows(proj.synapse_list()) == rows(twin.synapse_list()) == rows(np.nonzero(twin.weights) + (
        twin.weights[np.nonzero(twin.weights)],))
    assert rows(proj.connections()) == rows(twin.connections())
    assert sum(n for *_, n in rows(proj.connections())) == proj.synapses()


@pytest.mark.parametrize("case", [((4, 7, 6), (4, 3, 3), 1, 1, 1, 2), ((3, 13), (3, 5), 1, 2, 1, 1)])
def test_a_recurrent_convolution_runs_as_its_dense_matrix(case):
    """A population's kernel onto itself (taps 1..3 late, the frame kept by padding) gives the
    spikes of its dense twin step by step."""
    g, kernel = _case(case, taps=4, seed=3)
    kernel[0] = 0
    kernel *= 6
    shape = g.in_shape
    n = g.in_size
    assert g.out_shape(kernel.shape) == shape

    def net(rec):
        rng = np.random.default_rng(4)
        pop = Population("conv", n, du=1000, dv=200, vth=60, bias_mant=np.zeros(n, dtype=np.int64), shape=shape)
        inp = Projection("in", "input", "conv", rng.integers(-20, 21, size=(1, n, 5)) * 2)
        return IntNetwork(5, 1.0, [pop], [inp, Projection("rec", "conv", "conv", **rec)], "conv")
    conv, dense = net({"weights": kernel, "conv": g}), net({"weights": g.dense(kernel)})
    x = np.random.default_rng(5).integers(-60, 61, size=(2, 12, 5))
    a, b = execute(conv, x), execute(dense, x)
    assert a.spikes["conv"].any() and not a.spikes["conv"].all()
    assert torch.equal(a.spikes["conv"], b.spikes["conv"]) and a.peak_current == b.peak_current


def test_a_kernel_that_does_not_fit_is_named():
    g, kernel = _case(CASES[0])
    with pytest.raises(IntNetworkError, match="projection 'c': convolution maps"):
        _net({"weights": kernel, "conv": g}, g.in_size, 7)
    with pytest.raises(IntNetworkError, match="groups"):
        _net({"weights": kernel, "conv": ConvGeometry(g.in_shape, 1, 0, 1, 2)}, g.in_size, 7)


def test_subtract_reset_keeps_the_excess():
    from lmu2neuro.core.fixed_point import lif_step
    u = v = torch.zeros(1, 2, dtype=torch.int64)
    a = torch.tensor([[300, 30]])
    zero = lif_step(u, v, a, 4095, 0, 100, reset="zero")
    sub = lif_step(u, v, a, 4095, 0, 100, reset="subtract")
    assert zero.spikes.tolist() == sub.spikes.tolist() == [[True, False]]
    assert zero.v.tolist() == [[0, 30 << 6]]
    assert sub.v.tolist() == [[(300 - 100) << 6, 30 << 6]]


def test_listing_synapses_is_bounded_by_the_element_limit(monkeypatch):
    """pairs() and dense() refuse, naming the projection, before they allocate past the limit;
    the counts that need no list (fan-out, MACs) still answer."""
    g = ConvGeometry((4, 16, 16), 1, 1, 1, 1)
    kernel = np.full((1, 8, 4, 3, 3), 2)
    pop = Population("c", 8 * 256, 100, 100, 50, np.zeros(8 * 256, np.int64), shape=(8, 16, 16))
    proj = Projection("c.w", "input", "c", kernel, conv=g)
    IntNetwork(4 * 256, 1.0, [pop], [proj], "c")
    assert proj.pairs()[0].size > 20_000  # within the default limit
    monkeypatch.setenv("LMU2NEURO_MAX_ELEMENTS", "20000")
    for call in (proj.pairs, proj.dense):
        with pytest.raises(UserError, match=r"projection 'c.w'.*LMU2NEURO_MAX_ELEMENTS") as err:
            call()
        assert "\n" not in str(err.value)
    assert proj.synapses() > 20_000 and proj.macs() > 20_000


def test_ann_macs_is_kept_only_where_it_differs_from_the_projections_count():
    g, kernel = _case(CASES[0])
    same = Projection("p", "input", "q", kernel, conv=g, origin={"kind": "conv", "ann_macs": g.macs(kernel.shape)})
    pooled = Projection("p", "input", "q", kernel, conv=g, origin={"kind": "conv", "ann_macs": 7})
    dense = Projection("d", "input", "q", np.ones((1, 2, 3), dtype=np.int64), origin={"ann_macs": 6})
    assert same.origin == {"kind": "conv"} and pooled.origin["ann_macs"] == 7 and "ann_macs" not in dense.origin
