"""`lmu2neuro demo` wires every stage together; a short run must still agree spike for spike."""

import json
from pathlib import Path

import pytest

from lmu2neuro.cli import main


@pytest.mark.lava
def test_short_demo_runs_every_stage_and_the_back_ends_agree(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--epochs", "1", "--samples", "6"]) == 0
    summary = json.loads((out / "demo.json").read_text())
    for name, agree in summary["agreement"].items():
        assert agree["identical_spikes"] == 1.0 and agree["samples"] == 6, name
    for path in summary["artifacts"].values():
        assert Path(path).exists(), path
    assert set(summary["energy_per_inference_j"]) >= {"loihi1", "loihi2", "cpu", "mac45nm"}
    assert all(j > 0 for j in summary["energy_per_inference_j"].values())
    traffic = json.loads((out / "traffic.json").read_text())
    assert traffic["agreement_qat_integer"]["identical_predictions"] == 1.0
    printed = capsys.readouterr().out
    assert "report" in printed and "report.html" in printed
