"""Our .nir files in other tools: snnTorch's importer and nirtorch.

Findings these tests pin (see the README):
- snnTorch 1.0 `import_from_nir` maps only Affine, Linear, Conv2d, Flatten, AvgPool2d, IF, LIF and
  CubaLIF, and hard-codes dt = 1e-4: a CubaLIF exported at another dt is rejected
  ("r not supported in CubaLIF"), v_leak != 0 is rejected, and I / LI / CubaLI / Delay have no
  mapping. So our LMU models (integrator memory, delay taps, integrating readout) do not load
  there; a feed-forward CubaLIF export at dt = 1e-4 loads and computes exactly what our own
  forward-Euler reader computes.
- nirtorch 2.6 loads every graph we write (given a module per neuron/Delay type, as every
  backend supplies) and runs the LMU loop: one call is one step, the loop edge is read from the
  previous call's state.
- Both run the continuous-time graph in float; the Loihi integers (truncating decays, 8-bit
  weights) live only in our metadata, so their spikes are close to, not equal to, the integer
  network's.
"""

import warnings

import nir
import numpy as np
import pytest
import torch

from converters.nir.export import export_nir
from converters.nir.float_executor import load
from lmu2neuro.core.intnet import IntNetwork, Population, Projection
from lmu2neuro.core.executor import execute


def _feed_forward(with_readout=False):
    """Two CubaLIF layers; `with_readout` adds an integrating readout (reference.simulate needs one)."""
    rng = np.random.default_rng(0)

    def even(shape, lo, hi):
        return (rng.integers(lo // 2, hi // 2, size=shape) * 2).astype(np.int64)

    pops = [
        Population("h1", 6, du=4095, dv=1024, vth=300, bias_mant=rng.integers(-3, 4, 6), bias_exp=4),
        Population("h2", 4, du=2047, dv=2048, vth=100, bias_mant=np.zeros(4, dtype=np.int64)),
    ]
    projs = [Projection("w1", "input", "h1", even((1, 6, 5), -60, 120)),
             Projection("w2", "h1", "h2", even((1, 4, 6), -100, 200))]
    if with_readout:
        pops.append(Population("ro", 4, du=4095, dv=0, vth=131071, bias_mant=np.zeros(4, dtype=np.int64), readout=True))
        projs.append(Projection("w3", "h2", "ro", 2 * np.eye(4, dtype=np.int64)[None]))
    return IntNetwork(input_size=5, input_scale=10.0, populations=pops, projections=projs,
                      output="ro" if with_readout else "h2")


def _snntorch_run(graph, x):
    import snntorch.utils
    from snntorch.import_nir import import_from_nir

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = import_from_nir(graph)
    snntorch.utils.reset(model)  # imported neurons keep hidden state between calls
    outs = []
    with torch.no_grad():
        for t in range(x.shape[1]):
            out = model(torch.as_tensor(x[:, t], dtype=torch.float32))
            outs.append(out[0] if isinstance(out, tuple) else out)
    return torch.stack(outs, 1).double()


def test_snntorch_loads_our_feed_forward_export_and_agrees_with_our_reader(tmp_path):
    net = _feed_forward()
    path = tmp_path / "ff.nir"
    export_nir(net, path)  # default dt = 1e-4
    x_int = np.random.default_rng(1).integers(-20, 60, (2, 30, 5))
    theirs = _snntorch_run(nir.read(path), x_int / 10.0)
    ours = load(path, dt=1e-4)(torch.as_tensor(x_int / 10.0))
    assert ours.sum() > 20
    assert torch.equal(theirs, ours)
    # float Euler vs the Loihi integers: close, not equal (truncating decays)
    integer = execute(_feed_forward(with_readout=True), x_int).spikes["h2"].double()
    assert (integer == ours).double().mean() > 0.9


def test_snntorch_rejects_what_it_cannot_express(tmp_path):
    from netgen import every_projection_kind as make_net

    path = tmp_path / "ff.nir"
    export_nir(_feed_forward(), path, dt=1e-3)
    with pytest.raises(AssertionError, match="r not supported in CubaLIF"):
        _snntorch_run(nir.read(path), np.zeros((1, 1, 5)))
    export_nir(make_net(), path, dt=1e-4)  # LMU integrator, Delay taps, integrating readout
    with pytest.raises(Exception):
        _snntorch_run(nir.read(path), np.zeros((1, 1, 8)))


def test_nirtorch_loads_and_steps_our_full_graph(tmp_path):
    import nirtorch
    from netgen import every_projection_kind as make_net

    path = tmp_path / "toy.nir"
    export_nir(make_net(), path)
    identity = {t: (lambda n: torch.nn.Identity()) for t in (nir.CubaLIF, nir.IF, nir.I, nir.Delay, nir.LI, nir.CubaLI)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = nirtorch.nir_to_torch(nir.read(path), identity)
    out, state = model(torch.ones(2, 8))
    assert out.shape == (2, 3)
    # the LMU loop runs through nirtorch's state: the recurrent A's output is kept for the next call
    assert any(k.startswith("mem_w_A") and k.endswith("prev_output") for k in state)
    out2, _ = model(torch.ones(2, 8), state)
    assert not torch.equal(out, out2)  # the fed-back memory changes the second step
