"""`lmu2neuro train --model FILE.py:FUNCTION`: your own model from a file, trained with QAT, exported,
simulated; the changed-file refusal and each bad model file (one line, exit 2, no checkpoint)."""

import json

import numpy as np
import pytest
import torch

from lmu2neuro.cli import main

MODEL = '''
from torch import nn
from lmu2neuro.models import layers as L


class Net(nn.Module):
    def __init__(self, n_in, n_out, hidden=32):
        super().__init__()
        self.quant = L.InputQuantizer()
        self.fc1, self.lif1 = L.Linear(n_in, hidden), L.Leaky(beta=0.9, threshold=0.5)
        self.fc2 = L.Linear(hidden, n_out)

    def forward(self, x):
        return self.fc2(self.lif1(self.fc1(self.quant(x))))


def make(input_size, num_classes):
    return Net(input_size, num_classes)
'''

TRAIN = ["--dataset", "digits", "--epochs", "2", "--qat", "--qat-warmup", "1", "--limit", "240",
         "--batch-size", "16", "--lr", "1e-2", "--threads", "1"]


def _train(tmp_path, spec, out="run"):
    return main(["train", "--model", spec, *TRAIN, "--out", str(tmp_path / out)])


def test_own_model_trains_with_qat_exports_and_simulates_exactly(tmp_path, capsys):
    from lmu2neuro.datasets import get_dataset
    from lmu2neuro.deploy.lowering import integer_forward
    from lmu2neuro.training.checkpoint import load_checkpoint, model_from_checkpoint
    from lmu2neuro.core.guards import sha256_of

    src = tmp_path / "mine.py"
    src.write_text(MODEL)
    assert _train(tmp_path, f"{src}:make") == 0
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    assert [e["qat"] for e in metrics["epochs"]] == [False, True]
    assert metrics["config"]["model"] == f"{src}:make" and metrics["config"]["preset"] is None
    test = metrics["test"]
    assert test["qat"] is True and 0.0 <= test["integer_accuracy"] <= 1.0
    assert len(test["accuracy_by_frames"]) == len(test["integer_accuracy_by_frames"]) == 16
    ckpt = load_checkpoint(run / "best.pt")
    assert ckpt["user_model"]["file"] == str(src.resolve()) and ckpt["user_model"]["function"] == "make"
    assert ckpt["user_model"]["sha256"] == sha256_of(src)

    assert main(["export", str(run / "best.pt"), "-o", str(tmp_path / "m.nir")]) == 0
    n = 24
    assert main(["simulate", str(tmp_path / "m.nir"), "--dataset", "digits", "--samples", str(n),
                 "--backend", "reference", "-o", str(tmp_path / "t.json")]) == 0
    traffic = json.loads((tmp_path / "t.json").read_text())
    model, _ = model_from_checkpoint(run / "best.pt")
    x = get_dataset("digits").test.x[:n]
    scores = integer_forward(model, x)["scores"]
    # the exported graph, read back and simulated, predicts what the checkpoint's integer mode predicts
    assert traffic["predictions"] == scores.argmax(1).tolist()
    assert np.array_equal(np.asarray(traffic["scores"]), scores.numpy())

    # stopped after the float epoch and resumed: the same weights and test figures as the run above
    half = ["train", "--model", f"{src}:make", *TRAIN, "--out", str(tmp_path / "halves")]
    one_epoch = list(half)
    one_epoch[one_epoch.index("--epochs") + 1] = "1"
    assert main(one_epoch) == 0
    assert main([*half, "--resume"]) == 0
    resumed = json.loads((tmp_path / "halves" / "metrics.json").read_text())
    assert resumed["test"] == test
    assert all(torch.equal(v, ckpt["state_dict"][k])
               for k, v in load_checkpoint(tmp_path / "halves" / "best.pt")["state_dict"].items())


def test_export_refuses_a_changed_model_file(tmp_path, capsys):
    src = tmp_path / "mine.py"
    src.write_text(MODEL)
    assert main(["train", "--model", f"{src}:make", "--dataset", "digits", "--epochs", "1", "--limit", "32",
                 "--threads", "1", "--out", str(tmp_path / "run")]) == 0
    capsys.readouterr()
    src.write_text(MODEL.replace("hidden=32", "hidden=33"))
    out = tmp_path / "m.nir"
    assert main(["export", str(tmp_path / "run" / "best.pt"), "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(src.resolve()) in err and "changed" in err
    assert not out.exists()
    assert main(["train", "--model", f"{src}:make", "--dataset", "digits", "--epochs", "2", "--limit", "32",
                 "--threads", "1", "--out", str(tmp_path / "run"), "--resume"]) == 2
    assert "changed" in capsys.readouterr().err


BAD = {
    "missing": (None, "model file not found"),
    "import": ("import not_a_module_anywhere_xyz\n", "fails to import (ModuleNotFoundError"),
    "no_function": (MODEL.replace("def make(", "def other("), "does not define function 'make'"),
    "not_module": ("def make():\n    return 42\n", "returned int, expected an nn.Module"),
    "unlowerable": (MODEL.replace("self.fc2 = L.Linear(hidden, n_out)",
                                  "self.fc2 = L.Linear(hidden, n_out)\n        self.drop = nn.Dropout(0.1)")
                    .replace("return self.fc2(self.lif1", "return self.fc2(self.drop(self.lif1").replace(
                        "self.quant(x))))", "self.quant(x)))))"), "model layer 'drop' (Dropout)"),
    "bad_argument": ("def make(width):\n    pass\n", "requires argument 'width'"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_model_file_is_one_line_and_writes_nothing(tmp_path, capsys, case):
    text, expected = BAD[case]
    src = tmp_path / "mine.py"
    if text is not None:
        src.write_text(text)
    assert _train(tmp_path, f"{src}:make") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {src}") and expected in err, err
    assert not list(tmp_path.glob("run/*.pt")) and not (tmp_path / "run" / "metrics.json").exists()


def test_model_and_preset_are_exclusive_and_spec_is_checked(tmp_path, capsys):
    assert main(["train", "--model", "x.py:make", "--preset", "digits-small", *TRAIN, "--out", str(tmp_path)]) == 2
    assert "give exactly one" in capsys.readouterr().err
    assert main(["train", "--model", "nocolon.py", *TRAIN, "--out", str(tmp_path / "r")]) == 2
    assert "expected FILE.py:FUNCTION" in capsys.readouterr().err
