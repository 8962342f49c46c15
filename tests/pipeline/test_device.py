"""--device for the reference executor: the same integers wherever it runs; no GPU is a clear line."""

import numpy as np
import pytest
import torch

from lmu2neuro.cli import main
from lmu2neuro.core.executor import execute
from netgen import random_network


def test_execute_on_a_named_device_gives_the_same_integers():
    net = random_network(seed=5)
    x = np.random.default_rng(1).integers(-30, 30, (4, 9, net.input_size))
    a, b = execute(net, x), execute(net, x, device=torch.device("cpu"))
    assert all(torch.equal(a.spikes[k], b.spikes[k]) for k in a.spikes)
    assert torch.equal(a.readout_trace, b.readout_trace) and a.readout_trace.device.type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_simulate_device_cuda_without_a_gpu_is_one_line_and_writes_nothing(tmp_path, capsys):
    from converters.nir.export import export_nir

    export_nir(random_network(seed=5), tmp_path / "m.nir")
    np.save(tmp_path / "x.npy", np.zeros((2, 5, 4)))
    out = tmp_path / "t.json"
    code = main(["simulate", str(tmp_path / "m.nir"), "--input", str(tmp_path / "x.npy"), "--backend", "reference",
                 "--device", "cuda", "-o", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--device cuda" in err[0], err
    assert not out.exists()
