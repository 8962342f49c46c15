"""Bring a network from snnTorch: export it with snnTorch's own NIR exporter, then simulate it
in Lava fixed point and cost it, with lmu2neuro.

Run: .venv/bin/python examples/snntorch_to_lava.py
"""

from pathlib import Path

import numpy as np
import snntorch as snn
import torch
from snntorch.export_nir import export_to_nir

import nir
from converters.nir.read import read_intnet
from lmu2neuro.pipeline.simulate import simulate_network

out = Path("runs/example_snntorch")
out.mkdir(parents=True, exist_ok=True)
torch.manual_seed(0)
n_in, n_hidden, n_out = 8, 16, 4
net = torch.nn.Sequential(
    torch.nn.Linear(n_in, n_hidden),
    snn.Leaky(beta=torch.full((n_hidden,), 0.9), threshold=torch.ones(n_hidden), init_hidden=True),
    torch.nn.Linear(n_hidden, n_out),
    snn.Leaky(beta=torch.full((n_out,), 0.9), threshold=torch.ones(n_out), init_hidden=True, output=True),
)
graph = export_to_nir(net, torch.rand(1, n_in), ignore_dims=[0])
nir.write(out / "snntorch.nir", graph)

# snnTorch writes no dt: state the one the network was trained for (the NIR convention is 1e-4 s)
intnet = read_intnet(out / "snntorch.nir", dt=1e-4)
x = np.random.default_rng(0).random((5, 50, n_in)) * 2.0
traffic, _ = simulate_network(intnet, x, backend="both", model=str(out / "snntorch.nir"))
for layer in traffic["layers"]:
    print(f"{layer['name']:>12}: {layer.get('spikes', '-')} spikes")
print("Lava vs reference identical spikes:", traffic["agreement"]["identical_spikes"])
