"""The command itself: help, version, doctor."""

import subprocess
import sys

import pytest

from lmu2neuro import __version__
from lmu2neuro.cli import main


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_help_lists_every_stage(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for cmd in ("doctor", "train", "export", "inspect", "simulate", "report", "profiles", "demo", "summary"):
        assert cmd in out, f"`{cmd}` missing from lmu2neuro --help"



def test_building_the_parser_loads_no_heavy_library():
    # `lmu2neuro --help` took 4 s when a command module imported torch at registration.
    code = ("import sys; from lmu2neuro.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'scipy', 'lava', 'nir', 'h5py', 'snntorch', 'matplotlib') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", f"parser construction imported {out.stdout.strip()}"

@pytest.mark.lava
def test_doctor_runs_the_installed_command():
    out = subprocess.run([sys.executable, "-m", "lmu2neuro.cli", "doctor"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "lava-nc     0.10.0" in out.stdout
    assert "spikes match" in out.stdout


def test_doctor_names_a_broken_part(monkeypatch, capsys):
    import converters.lava.check as lc

    def broken(*a, **k):
        raise RuntimeError("runtime would not start")

    monkeypatch.setattr(lc, "tiny_network_check", broken)
    assert main(["doctor"]) == 1
    captured = capsys.readouterr()
    assert "Lava fixed_pt run failed (RuntimeError)" in captured.err


def test_a_reader_that_goes_away_gets_no_traceback(tmp_path):
    # `lmu2neuro inspect m.nir | head -1`: the pipe closes while we print
    import os

    import nir

    from netgen import lif_chain_graph

    nir.write(tmp_path / "m.nir", lif_chain_graph())
    r, w = os.pipe()
    os.close(r)  # every write now fails with EPIPE
    try:
        out = subprocess.run([sys.executable, "-m", "lmu2neuro.cli", "inspect", str(tmp_path / "m.nir")],
                             stdout=w, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(w)
    assert out.returncode == 141 and out.stderr == "", out.stderr
