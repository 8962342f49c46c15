"""The NIR paper's single-LIF benchmark through read_intnet and our Lava build."""

import numpy as np
import pytest

from converters.lava.builder import run_lava
from converters.lava.plan import schedule
from converters.nir.read import read_intnet
from lmu2neuro.pipeline.simulate import run_reference

from netgen import PAPER_DATA as DATA
from netgen import needs_paper_data

pytestmark = needs_paper_data


def _csv(name):
    return np.loadtxt(DATA / name, delimiter=",")


@pytest.mark.lava
def test_lif_norse_in_lava_reproduces_lavas_published_spike_steps():
    net = read_intnet(DATA / "lif_norse.nir", dt=1e-4)
    exact = _csv("lif_exact.csv")
    x = exact[:, 0].reshape(1, -1, 1)  # the input spike train every platform received
    lava = run_lava(net, net.quantize_input(x), progress=False)
    ref = run_reference(net, net.quantize_input(x))
    spiking = [p.name for p in net.populations if not p.readout]
    steps = np.flatnonzero(lava.raster0[spiking[0]].any(axis=1))
    # latency-compensated: the exact solution's steps
    assert steps.tolist() == [460, 510, 710, 760]
    assert steps.tolist() == np.flatnonzero(ref.raster0[spiking[0]].any(axis=1)).tolist()
    # raw Lava steps = compensated + the Dense latency, as in Lava's own published trace
    published = np.flatnonzero(_csv("lif_lava_cpu_fixed.csv")[:, 2])
    lag = schedule(net, x.shape[1], 1).latency[spiking[0]]
    assert lag == 1
    assert (steps + lag).tolist() == published.tolist() == [461, 511, 711, 761]
