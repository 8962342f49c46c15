"""The examples a new user copies from must keep working."""

import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_user_profile_example_loads():
    from lmu2neuro.analysis.profiles import load_profile

    p = load_profile(EXAMPLES / "my_chip.yaml")
    assert p.name == "my_chip"


@pytest.mark.lava
def test_snntorch_to_lava_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(EXAMPLES / "snntorch_to_lava.py"), run_name="__main__")
    assert "Lava vs reference identical spikes: 1.0" in capsys.readouterr().out
