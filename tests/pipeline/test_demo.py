"""`lmu2neuro demo` wires every stage together; a short run must still agree spike for spike."""

import json
from pathlib import Path

import pytest

from lmu2neuro.cli import main


@pytest.mark.lava
def test_short_demo_runs_every_stage_and_the_back_ends_agree(tmp_path, capsys):
    # issue 5: a QAT-trained model (one float epoch, one QAT epoch), 50 test samples, Lava fixed_pt =
    # reference = the QAT model in integer mode on every spike of every layer
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--epochs", "2", "--samples", "50"]) == 0
    summary = json.loads((out / "demo.json").read_text())
    assert json.loads((out / "train" / "metrics.json").read_text())["epochs"][-1]["qat"] is True
    for name, agree in summary["agreement"].items():
        assert agree["identical_spikes"] == 1.0 and agree["samples"] == 50, name
    for path in summary["artifacts"].values():
        assert Path(path).exists(), path
    assert set(summary["energy_per_inference_j"]) >= {"loihi1", "loihi2", "cpu", "mac45nm"}
    assert all(j > 0 for j in summary["energy_per_inference_j"].values())
    traffic = json.loads((out / "traffic.json").read_text())
    assert traffic["agreement_qat_integer"]["identical_predictions"] == 1.0
    printed = capsys.readouterr().out
    assert "report" in printed and "report.html" in printed
