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


@pytest.mark.lava
@pytest.mark.parametrize("name", ["own_mlp", "own_convnet", "own_recurrent"])
def test_own_model_examples_train_deploy_and_agree_spike_for_spike(name, tmp_path, capsys):
    # each example as a user runs it: QAT on digits, lowered, NIR, Lava + reference, report
    main = runpy.run_path(str(EXAMPLES / f"{name}.py"), run_name="example")["main"]
    result = main(out=str(tmp_path / name), progress=False)
    for check in ("lava_vs_reference", "lava_vs_integer_mode"):
        assert result[check]["samples"] == 50 and result[check]["identical_spikes"] == 1.0, result[check]
    assert result["integer_accuracy"] >= result["float_accuracy"] - 0.01, result  # the target
    assert result["integer_accuracy"] > 0.8, result
    assert (tmp_path / name / "report" / "report.md").is_file()
    assert "J per inference" in capsys.readouterr().out
