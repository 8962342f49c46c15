"""The traffic contract: what build_traffic writes is exactly what the schema declares and accepts."""

import numpy as np
import pytest

from lmu2neuro.analysis.traffic import Layer, Projection, Traffic, build_traffic, validate_traffic
from lmu2neuro.core.errors import UserError
from lmu2neuro.pipeline.simulate import run_reference
from netgen import random_network


def _declared(model) -> set[str]:
    return {f.alias or name for name, f in model.model_fields.items()}


@pytest.fixture(scope="module")
def traffic():
    net = random_network(seed=3)
    rng = np.random.default_rng(0)
    x = rng.integers(-20, 20, (5, 9, net.input_size))
    return build_traffic(net, x, run_reference(net, x), model="m.nir", model_sha256="0" * 64,
                         labels=rng.integers(0, 2, 5), backend="reference")


def test_every_field_the_builder_writes_is_declared_in_the_schema(traffic):
    assert set(traffic) == _declared(Traffic)
    for layer in traffic["layers"]:
        assert set(layer) <= _declared(Layer), set(layer) - _declared(Layer)
    for proj in traffic["projections"]:
        assert set(proj) <= _declared(Projection), set(proj) - _declared(Projection)
    # every declared layer field is written for some layer kind
    written = set().union(*(set(lay) for lay in traffic["layers"]))
    assert _declared(Layer) - written <= {"out_of_range_samples"}  # only for a readout output


def test_the_schema_refuses_what_the_builder_never_writes(traffic):
    bad = dict(traffic, layers=[dict(traffic["layers"][1], rate=1.5)] + traffic["layers"][2:])
    with pytest.raises(UserError, match=r"field 'layers\..*\.rate'"):
        validate_traffic(bad, "t.json")
