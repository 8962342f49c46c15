"""torchrun: two gloo processes train the model one process trains, and a run resumes across process counts."""

import json
import os
import subprocess
import sys

import pytest

from lmu2neuro.cli import main

ARGS = ["--dataset", "digits", "--preset", "digits-small", "--set", "dim=8", "--set", "memory_order=4",
        "--set", "embed_convs=1", "--set", "mlp_ratio=1", "--limit", "90", "--batch-size", "16", "--qat",
        "--qat-warmup", "1", "--threads", "1", "--recipe", "paper", "--lr", "0.01"]
KEYS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "qat")


def _single(out, epochs, *extra):
    assert main(["train", *ARGS, "--epochs", str(epochs), "--out", str(out), *extra]) == 0
    return json.loads((out / "metrics.json").read_text())


def _torchrun(out, epochs, *extra):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "lmu2neuro", "train", *ARGS, "--epochs", str(epochs), "--out", str(out), *extra]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    # rank 0 alone prints the result line
    assert done.stdout.count("test accuracy") == 1, done.stdout
    return json.loads((out / "metrics.json").read_text())


def _close(a, b, tol=1e-4):
    for key in KEYS:
        if isinstance(a[key], bool):
            assert a[key] == b[key], key
        else:
            assert abs(a[key] - b[key]) <= tol, (key, a[key], b[key])


@pytest.mark.timeout(600)
def test_two_processes_equal_one_and_resume_across_process_counts(tmp_path, capsys):
    # 90 training samples: five batches of 16 and one of 10, which splits 5/5 (uneven shares elsewhere)
    one = _single(tmp_path / "one", 2)
    assert [r["qat"] for r in one["epochs"]] == [False, True]
    # two processes for the first epoch ...
    two = _torchrun(tmp_path / "two", 1)
    _close(one["epochs"][0], two["epochs"][0])
    assert two["dataset"]["train"] == one["dataset"]["train"]
    assert not (tmp_path / "two" / "last.pt.tmp").exists()
    # ... then one process resumes them (2 -> 1)
    resumed = _single(tmp_path / "two", 2, "--resume")
    _close(one["epochs"][1], resumed["epochs"][1])
    # one process for the first epoch, two processes resume it (1 -> 2), QAT epoch and test included
    first = _single(tmp_path / "mixed", 1)
    _close(one["epochs"][0], first["epochs"][0])
    both = _torchrun(tmp_path / "mixed", 2, "--resume")
    _close(one["epochs"][1], both["epochs"][1])
    for key in ("accuracy", "integer_accuracy", "loss"):
        assert abs(one["test"][key] - both["test"][key]) <= 1e-4, key
    # the figures moved between epochs, so the comparisons compare something
    assert abs(one["epochs"][0]["train_loss"] - one["epochs"][1]["train_loss"]) > 1e-3
    capsys.readouterr()
