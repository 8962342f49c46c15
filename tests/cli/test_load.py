"""Runs at once: two simulations and a training into different folders all finish with the results
each gives alone; two runs pointed at one output folder do not interleave (the second is refused
while the first holds the folder's lock, and the first finishes intact)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from netgen import random_inputs, random_network

from converters.nir.export import export_nir
from lmu2neuro.training.checkpoint import load_checkpoint
from lmu2neuro.core.errors import UserError
from lmu2neuro.core.outdir import LOCK_NAME, holder_pid, output_lock
from lmu2neuro.pipeline.simulate import simulate_network
from lmu2neuro.training.recipe import TrainConfig, train

ROOT = Path(__file__).resolve().parents[2]
TINY = {"dim": 8, "memory_order": 4, "embed_convs": 1, "mlp_ratio": 1}


def _cli(*args):
    return [sys.executable, "-m", "lmu2neuro.cli", *map(str, args)]


def _train_argv(out, epochs, limit):
    argv = _cli("train", "--dataset", "digits", "--preset", "digits-small", "--epochs", epochs, "--limit", limit,
                "--batch-size", 16, "--threads", 1, "--data-option", "repeat=2", "--out", out)
    for k, v in TINY.items():
        argv += ["--set", f"{k}={v}"]
    return argv


def _popen(argv):
    return subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _model(tmp_path):
    net = random_network(4)
    model = tmp_path / "model.nir"
    export_nir(net, model)
    x = random_inputs(4, 6, 12).astype(np.float64) / net.input_scale  # quantizes back to the same integers
    np.save(tmp_path / "x.npy", x)
    return net, model, x


def _strip(metrics):
    m = json.loads(json.dumps(metrics))
    for row in m["epochs"]:
        row.pop("seconds")
    return m


@pytest.mark.lava
def test_two_simulations_and_a_training_at_once(tmp_path):
    net, model, x = _model(tmp_path)
    procs = {
        "lava": _popen(_cli("simulate", model, "--input", tmp_path / "x.npy", "--backend", "both",
                            "-o", tmp_path / "a" / "traffic.json")),
        "reference": _popen(_cli("simulate", model, "--input", tmp_path / "x.npy", "--backend", "reference",
                                 "-o", tmp_path / "b" / "traffic.json")),
        "train": _popen(_train_argv(tmp_path / "c", 1, 64)),
    }
    try:
        results = {k: p.communicate(timeout=400) for k, p in procs.items()}
    finally:
        for p in procs.values():
            if p.poll() is None:
                os.killpg(p.pid, 9)
    for k, p in procs.items():
        assert p.returncode == 0, (k, results[k][1][-2000:])

    alone, _ = simulate_network(net, x, backend="reference", progress=False)
    a = json.loads((tmp_path / "a" / "traffic.json").read_text())
    b = json.loads((tmp_path / "b" / "traffic.json").read_text())
    assert a["agreement"]["identical_spikes"] == 1.0 and a["agreement"]["identical_predictions"] == 1.0
    for key in ("scores", "predictions", "layers", "projections"):
        assert b[key] == alone[key], key
        assert a[key] == alone[key], key  # Lava under load counted the same spikes and events
    assert sum(layer.get("spikes", 0) for layer in alone["layers"]) > 0

    straight = train(TrainConfig(dataset="digits", out=str(tmp_path / "alone"), preset="digits-small",
                                 overrides=dict(TINY), epochs=1, batch_size=16, limit=64, threads=1,
                                 progress=False, dataset_options={"repeat": 2}))
    assert _strip(json.loads((tmp_path / "c" / "metrics.json").read_text())) == _strip(straight)
    for folder in ("a", "b", "c"):
        assert holder_pid(tmp_path / folder) is None  # every lock was released
        assert not [p.name for p in (tmp_path / folder).iterdir() if p.name.endswith(".tmp")]


def test_second_run_on_the_same_folder_is_refused_and_the_first_is_intact(tmp_path):
    _, model, _ = _model(tmp_path)
    out = tmp_path / "shared"
    # several seconds of training (6 epochs: the fused LIF scan made 2 too short to outlast two
    # clashing interpreters starting together on a loaded 2-core machine)
    first = _popen(_train_argv(out, 6, 640))
    try:
        deadline = time.time() + 120
        while holder_pid(out) != first.pid:
            assert first.poll() is None and time.time() < deadline, first.communicate()[1][-2000:]
            time.sleep(0.02)
        clashing = [_popen(_train_argv(out, 2, 640) + ["--overwrite"]),
                    _popen(_cli("simulate", model, "--input", tmp_path / "x.npy", "--backend", "reference",
                                "-o", out / "traffic.json"))]
        for p in clashing:
            p.stderr_text = p.communicate(timeout=120)[1]
        second, sim = clashing
        still_running = first.poll() is None
        _, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, 9)
    assert still_running, "the first run ended before the others tried: the test proves nothing"
    expected = f"error: {out} is in use by another lmu2neuro run (pid {first.pid})"
    for refused in (second, sim):
        assert refused.returncode == 2, refused.stderr_text[-2000:]
        assert refused.stderr_text.startswith(expected) and refused.stderr_text.count("\n") == 1, refused.stderr_text
    assert first.returncode == 0, err[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert [r["epoch"] for r in metrics["epochs"]] == [1, 2, 3, 4, 5, 6] and "test" in metrics
    assert load_checkpoint(out / "last.pt")["epoch"] == 6
    assert not (out / "traffic.json").exists()
    assert holder_pid(out) is None


def test_lock_names_the_holder_and_is_released(tmp_path):
    out = tmp_path / "o"
    with output_lock(out):
        (out / "result.json").write_text("{}")
        assert holder_pid(out) == os.getpid()
        # a second open of the lock file is a second lock, as another process's would be
        with pytest.raises(UserError, match=rf"{out} is in use by another lmu2neuro run \(pid {os.getpid()}\)"):
            with output_lock(out):
                pass
    assert holder_pid(out) is None and (out / LOCK_NAME).exists()
    with output_lock(out):  # free again
        pass
    # a run that fails before writing anything leaves no new folder behind
    with pytest.raises(UserError, match="bad input"):
        with output_lock(tmp_path / "new"):
            raise UserError("bad input")
    assert not (tmp_path / "new").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="cannot create the output folder|not a folder"):
        with output_lock(tmp_path / "file"):
            pass
