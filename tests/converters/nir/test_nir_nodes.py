"""The NIR node registry (converters.nir.nodes): one declaration per node kind, from which the file
checks, the float executor, the integer lowering and inspect derive what they accept."""

import dataclasses

import nir
import numpy as np
import pytest
import torch

from converters.nir import nodes
from converters.nir.float_executor import SUPPORTED, NIRTorch


def test_every_nir_node_class_is_declared_once():
    classes = {n for n in dir(nir) if isinstance(getattr(nir, n), type) and issubclass(getattr(nir, n), nir.NIRNode)}
    assert set(nodes.KINDS) == classes - {"NIRNode"}
    for kind in nodes.KINDS.values():
        fields = {f.name for f in dataclasses.fields(getattr(nir, kind.name))}
        assert set(kind.params) <= fields, kind.name
        assert kind.role in nodes.ROLES


def test_the_derived_sets_are_the_facts_the_readers_stated_before():
    assert nodes.REQUIRED_FIELDS["CubaLIF"] == ("tau_syn", "tau_mem", "r", "v_leak", "v_threshold", "w_in")
    assert nodes.REQUIRED_FIELDS["Conv2d"] == ("weight", "stride", "padding", "dilation", "groups", "bias")
    assert set(nodes.NEURON_TYPES) == {"I", "IF", "LI", "LIF", "CubaLI", "CubaLIF", "Threshold"}
    assert set(nodes.SPIKING_TYPES) == {"IF", "LIF", "CubaLIF", "Threshold"}
    assert set(nodes.STATEFUL_TYPES) == {"I", "IF", "LI", "LIF", "CubaLI", "CubaLIF", "Delay"}
    assert set(nodes.SYNAPSE_TYPES) == {"Linear", "Affine", "Scale", "Conv1d", "Conv2d", "SumPool2d", "AvgPool2d",
                                        "Flatten", "Delay"}
    assert set(nodes.INTNET_TYPES) == set(nodes.KINDS)
    assert set(SUPPORTED) == set(nodes.KINDS) - {"NIRGraph"}
    assert set(nodes.PARAM_FIELDS) == {"weight", "bias", "scale", "threshold", "r", "tau", "tau_mem", "tau_syn",
                                       "v_leak", "v_threshold", "v_reset", "w_in", "delay"}


def test_stateless_kinds_have_a_float_step_and_stateful_ones_do_not():
    for kind in nodes.KINDS.values():
        assert (kind.step is not None) == (not kind.stateful and kind.role != "graph"), kind.name
    with pytest.raises(ValueError, match="keeps state"):
        nodes.float_step("LIF", torch.zeros(1, 2), {})


@pytest.mark.parametrize("node, shape", [
    (nir.Affine(weight=np.arange(6.0).reshape(2, 3), bias=np.array([1.0, -1.0])), (3,)),
    (nir.Scale(scale=np.array([2.0, -0.5])), (2,)),
    (nir.Conv2d(input_shape=(4, 4), weight=np.ones((2, 1, 3, 3)), stride=1, padding=1, dilation=1, groups=1,
                bias=np.array([0.5, 0.0])), (1, 4, 4)),
    (nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])), (1, 4, 4)),
    (nir.Flatten(start_dim=0, end_dim=-1, input_type={"input": np.array([2, 2, 2])}), (2, 2, 2)),
])
def test_the_executor_runs_the_declared_step(node, shape):
    """NIRTorch steps a stateless node through nodes.float_step: the same numbers, one definition."""
    x = torch.randn((3,) + shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    want = nodes.float_step(type(node).__name__, x, nodes.prepare(node))
    graph = nir.NIRGraph(nodes={"n": node}, edges=[], type_check=False)
    model = NIRTorch(graph, dt=1e-3)
    assert torch.equal(model._step("n", x, {}), want)
