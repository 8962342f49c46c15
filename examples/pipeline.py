"""The whole pipeline from Python: train, export, simulate in Lava, report.

Run: .venv/bin/python examples/pipeline.py  (about two minutes on 2 CPU cores)
Each call is the function behind one `lmu2neuro` command.
"""

from pathlib import Path

from converters.nir.export import export_nir
from converters.nir.read import read_intnet
from lmu2neuro.core.atomic import write_json
from lmu2neuro.training.checkpoint import model_from_checkpoint
from lmu2neuro.deploy.lowering import lower
from lmu2neuro.core.guards import sha256_of
from lmu2neuro.reports.build import make_report
from lmu2neuro.pipeline.simulate import load_inputs, simulate_network
from lmu2neuro.training.recipe import TrainConfig, train

out = Path("runs/example")

# 1. train a Spiking LMUFormer with Loihi quantization-aware training on the built-in digits
train(TrainConfig(dataset="digits", preset="digits-small", overrides={"dim": 64}, qat=True,
                  epochs=10, lr=1e-2, out=str(out / "train"), overwrite=True, threads=1))

# 2. lower it to Loihi integers and export standard NIR
model, _ = model_from_checkpoint(out / "train" / "best.pt")
export_nir(lower(model), out / "model.nir")

# 3. simulate 20 test samples in Lava fixed_pt and the reference simulator
net = read_intnet(out / "model.nir")
x, y = load_inputs(net, dataset="digits", samples=20)
traffic, runs = simulate_network(net, x, y, backend="both", model=str(out / "model.nir"),
                                 model_sha256=sha256_of(out / "model.nir"))
write_json(out / "traffic.json", traffic)
print("Lava vs reference:", traffic["agreement"]["identical_spikes"], "of samples spike-identical")

# 4. energy and chip report
report = make_report(out / "traffic.json", out / "model.nir", ["loihi1", "loihi2", "cpu"], out / "report")
for p in report["profiles"]:
    print(f"{p['profile']:>8}: {p['energy_per_inference_j']:.2e} J per inference")
