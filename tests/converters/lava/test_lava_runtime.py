"""Lava's runtime is stopped on every path: no Lava process outlives a failed or interrupted run."""

import multiprocessing
import os
import signal
import subprocess
import sys
import time

import pytest
from netgen import as_at_a_terminal, random_inputs, random_network

import converters.lava.builder as lb

pytestmark = pytest.mark.lava


def _lava_children():
    return [p for p in multiprocessing.active_children() if p.is_alive()]


def _run_folders(pid):
    """The private folders (inputs and records) of the Lava runs of process pid."""
    import glob
    import tempfile

    return [f for d in ("/dev/shm", tempfile.gettempdir()) for f in glob.glob(f"{d}/lmu2neuro-lava-{pid}-*")]


@pytest.mark.parametrize("error", [RuntimeError("user code failed"), KeyboardInterrupt()])
def test_runtime_stops_when_the_run_fails(monkeypatch, error):
    def boom(*a, **k):
        raise error

    monkeypatch.setattr(lb, "_read", boom)  # fails after the network compiled and ran
    before = _lava_children()
    with pytest.raises(type(error)):
        lb.run_lava(random_network(), random_inputs(0, 5, 6), progress=False, lanes=2)
    deadline = time.time() + 10
    while _lava_children() != before and time.time() < deadline:
        time.sleep(0.1)
    assert _lava_children() == before
    assert _run_folders(os.getpid()) == []  # the run's inputs and records are gone too


def _descendants(pid):
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
    children = {}
    for line in out.split():
        pass
    pairs = [tuple(map(int, l.split())) for l in out.strip().splitlines()]
    for p, pp in pairs:
        children.setdefault(pp, []).append(p)
    found, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            found.append(c)
            todo.append(c)
    return found


def test_ctrl_c_during_simulate_leaves_no_process_and_no_traffic(tmp_path):
    """SIGINT to `lmu2neuro simulate` mid-run: it exits, takes Lava's processes with it, writes nothing.

    Two samples side by side: 200 rounds of 20 steps, long enough to be interrupted mid-stream.
    """
    import numpy as np

    from converters.nir.export import export_nir

    model = tmp_path / "m.nir"
    export_nir(random_network(4), model)
    np.save(tmp_path / "x.npy", random_inputs(4, 400, 20).astype(np.float64) / 10.0)
    out = tmp_path / "traffic.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "lmu2neuro.cli", "simulate", str(model), "--input", str(tmp_path / "x.npy"),
         "--backend", "lava", "--lava-batch", "2", "-o", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, preexec_fn=as_at_a_terminal,
    )
    # wait until Lava's worker processes exist, then interrupt the whole run as a terminal would
    deadline = time.time() + 60
    while len(_descendants(proc.pid)) < 3 and time.time() < deadline:
        time.sleep(0.2)
    workers = _descendants(proc.pid)
    assert len(workers) >= 3, "Lava never started"
    assert _run_folders(proc.pid), "the run keeps its inputs and records in a folder of its own"
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("simulate did not stop after Ctrl-C")
    assert proc.returncode != 0
    assert "Traceback" not in err, err[-2000:]
    time.sleep(0.5)
    alive = [p for p in workers if os.path.exists(f"/proc/{p}") and "Z" not in open(f"/proc/{p}/stat").read().split()[2]]
    assert alive == [], f"Lava processes survived: {alive}"
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".traffic")] == []
    assert _run_folders(proc.pid) == []
