"""Interrupted runs lose nothing: SIGKILL mid-epoch then --resume equals an uninterrupted run,
Ctrl-C during training exits cleanly, and every file the package writes goes through lmu2neuro.atomic.

Ctrl-C during a Lava simulation (no Lava process left, no traffic.json, no temporary file) is
tests/converters/lava/test_lava_runtime.py::test_ctrl_c_during_simulate_leaves_no_process_and_no_traffic.
"""

import ast
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lmu2neuro.training.checkpoint import load_checkpoint
from lmu2neuro.training.recipe import TrainConfig, train
from netgen import as_at_a_terminal

ROOT = Path(__file__).resolve().parents[2]
TINY = {"dim": 8, "memory_order": 4, "embed_convs": 1, "mlp_ratio": 1}
# 320 training samples in batches of 16: 20 steps per epoch, long enough to land a signal inside one
OPTIONS = dict(dataset="digits", preset="digits-small", epochs=3, limit=320, batch_size=16, seed=3)


def _argv(out, *extra):
    argv = [sys.executable, "-m", "lmu2neuro.cli", "train", "--dataset", OPTIONS["dataset"], "--preset",
            OPTIONS["preset"], "--epochs", str(OPTIONS["epochs"]), "--limit", str(OPTIONS["limit"]),
            "--batch-size", str(OPTIONS["batch_size"]), "--seed", str(OPTIONS["seed"]), "--threads", "1",
            "--data-option", "repeat=2", "--out", str(out)]
    for k, v in TINY.items():
        argv += ["--set", f"{k}={v}"]
    return argv + list(extra)


def _start(out, *extra):
    return subprocess.Popen(_argv(out, *extra), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True, preexec_fn=as_at_a_terminal)


def _epochs_done(out: Path) -> list:
    try:  # written atomically: either absent or complete
        return json.loads((out / "metrics.json").read_text())["epochs"]
    except FileNotFoundError:
        return []


def _wait_for_epoch(proc, out: Path, n: int, timeout: float = 120.0) -> list:
    deadline = time.time() + timeout
    while time.time() < deadline:
        done = _epochs_done(out)
        if len(done) >= n:
            return done
        if proc.poll() is not None:
            pytest.fail(f"training ended early: {proc.communicate()[1][-2000:]}")
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail("training made no progress")


def _strip_times(metrics: dict) -> dict:
    m = json.loads(json.dumps(metrics))
    for row in m["epochs"]:
        row.pop("seconds")
    return m


def test_sigkill_mid_epoch_then_resume_matches_uninterrupted_run(tmp_path):
    out = tmp_path / "killed"
    proc = _start(out)
    first = _wait_for_epoch(proc, out, 1)
    time.sleep(0.4 * first[0]["seconds"])  # well inside the second epoch
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    # the kill landed mid-epoch 2: epoch 1 is complete on disk, nothing of epoch 2 is
    assert load_checkpoint(out / "last.pt")["epoch"] == 1
    on_disk = json.loads((out / "metrics.json").read_text())
    assert len(on_disk["epochs"]) == 1 and "test" not in on_disk

    resumed = subprocess.run(_argv(out, "--resume"), cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    straight = train(TrainConfig(out=str(tmp_path / "straight"), overrides=dict(TINY), threads=1, progress=False,
                                 dataset_options={"repeat": 2}, **OPTIONS))
    after = json.loads((out / "metrics.json").read_text())
    assert _strip_times(after) == _strip_times(straight)
    assert len(after["epochs"]) == 3 and "integer_accuracy" in after["test"]
    wa = torch.load(out / "last.pt", weights_only=True)["state_dict"]
    wb = torch.load(tmp_path / "straight" / "last.pt", weights_only=True)["state_dict"]
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    # the comparison compares something: training moved the loss
    assert after["epochs"][0]["train_loss"] != after["epochs"][2]["train_loss"]


def test_ctrl_c_during_training_exits_cleanly_and_keeps_the_last_epoch(tmp_path):
    out = tmp_path / "interrupted"
    proc = _start(out)
    first = _wait_for_epoch(proc, out, 1)
    time.sleep(0.3 * first[0]["seconds"])
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends to the foreground group
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("training did not stop after Ctrl-C")
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and err.strip().splitlines()[-1] == "interrupted", err[-2000:]
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["epoch"] in (1, 2)
    assert len(json.loads((out / "metrics.json").read_text())["epochs"]) == ckpt["epoch"]
    assert [p.name for p in out.iterdir() if p.name.endswith(".tmp")] == []


# -- every output file is written atomically --------------------------------------------------------
WRITERS = {"write_text", "write_bytes", "save", "savez", "savez_compressed", "savefig", "dump", "write",
           "to_csv", "to_json", "tofile"}


def _is_atomic_context(node: ast.With) -> bool:
    return any(isinstance(it.context_expr, ast.Call) and "atomic_path" in ast.unparse(it.context_expr.func)
               for it in node.items)


def _write_sites(tree: ast.AST):
    """(line, call) for each call that writes a file and is not inside `with atomic_path(...)`."""
    sites = []

    def visit(node, guarded):
        if isinstance(node, ast.With) and _is_atomic_context(node):
            guarded = True
        if isinstance(node, ast.Call) and not guarded:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            owner = ast.unparse(func.value) if isinstance(func, ast.Attribute) else ""
            if name == "open" and len(node.args) > 1 and isinstance(node.args[1], ast.Constant) \
                    and any(c in str(node.args[1].value) for c in "wax+"):
                sites.append((node.lineno, ast.unparse(node)))
            elif name == "File" and "h5py" in owner and any(
                    isinstance(a, ast.Constant) and str(a.value) in ("w", "a", "r+", "x", "w-") for a in node.args[1:]):
                sites.append((node.lineno, ast.unparse(node)))
            elif name == "dump" and owner == "yaml" and len(node.args) < 2 and not any(
                    k.arg == "stream" for k in node.keywords):
                pass  # yaml.dump without a stream returns the text; it writes nothing
            elif name in WRITERS and owner not in ("atomic", "self", "f", "fh", "sys.stdout", "sys.stderr", "tqdm") \
                    and not ast.unparse(node).startswith(("write_json(", "write_text(", "write_bytes(")):
                # a write into an in-memory buffer is not a file
                first = ast.unparse(node.args[0]) if node.args else ""
                if first not in ("buf", "buffer", "io.BytesIO()"):
                    sites.append((node.lineno, ast.unparse(node)))
        for child in ast.iter_child_nodes(node):
            visit(child, guarded)

    visit(tree, False)
    return sites


def test_every_file_the_package_writes_goes_through_atomic():
    offenders = []
    for folder in ("lmu2neuro", "converters"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.name == "atomic.py":
                continue
            tree = ast.parse(path.read_text(), str(path))
            # names imported from lmu2neuro.core.atomic are the atomic writers themselves
            for line, call in _write_sites(tree):
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {call[:100]}")
    assert offenders == [], "\n".join(offenders)
