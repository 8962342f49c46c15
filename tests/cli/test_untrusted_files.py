"""Files from elsewhere cannot run code or take unbounded memory.

- a checkpoint carrying a pickle payload that would run code is refused by every command that
  loads checkpoints, and the payload never runs (the same file's pickle does run it when
  unpickled plainly, so the payload is live);
- an input .npy holding pickled objects, or declaring a huge shape, is refused with one line;
- files above the configured size are refused before they are parsed.
"""

import io
import pickle
import sys
import zipfile

import numpy as np
import pytest
import torch

from converters.nir.export import export_nir
from lmu2neuro.training.checkpoint import FORMAT, load_checkpoint, model_from_checkpoint
from lmu2neuro.cli import main
from lmu2neuro.core.errors import UserError

sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[1]))
from netgen import random_network  # noqa: E402


class Payload:
    """Unpickling this calls open(marker, "w"): a file appears if the payload runs."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _evil_checkpoint(path, marker):
    ckpt = {"format": FORMAT, "model_config": {}, "dataset": {"name": None, "options": {}},
            "state_dict": {}, "epoch": 1, "metrics": {"note": Payload(marker)},
            "optimizer": None, "rng": None, "qat": False}
    torch.save(ckpt, path)
    return path


def test_pickle_payload_is_refused_without_running(tmp_path, capsys):
    marker = tmp_path / "pwned"
    evil = _evil_checkpoint(tmp_path / "evil.pt", marker)
    with pytest.raises(UserError, match=r"evil.pt: .*refused for safety") as e:
        load_checkpoint(evil)
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match="refused for safety"):
        model_from_checkpoint(evil)
    assert main(["export", str(evil), "-o", str(tmp_path / "m.nir")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "refused for safety" in err
    # resuming a run whose last.pt was swapped for the payload
    run = tmp_path / "run"
    run.mkdir()
    _evil_checkpoint(run / "last.pt", marker)
    rc = main(["train", "--dataset", "digits", "--preset", "digits-small", "--epochs", "1", "--out", str(run),
               "--resume", "--limit", "16"])
    assert rc == 2 and "refused for safety" in capsys.readouterr().err
    assert not marker.exists()
    # the control: the payload is live. The file's pickle (torch.save's data.pkl; no tensors, so
    # plain pickle reads it) runs it when unpickled without weights_only's allow-list.
    with zipfile.ZipFile(evil) as archive:
        data = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    pickle.loads(data)
    assert marker.exists()


def test_input_npy_with_objects_or_huge_shape_is_refused(tmp_path, capsys):
    model = tmp_path / "m.nir"
    export_nir(random_network(), model)
    marker = tmp_path / "pwned"
    objs = np.empty((1, 2, 4), dtype=object)
    objs[0, 0, 0] = Payload(marker)
    np.save(tmp_path / "objects.npy", objs, allow_pickle=True)
    # a header declaring 10**13 float64 values, followed by 64 bytes
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6, 10)})
    (tmp_path / "huge.npy").write_bytes(buf.getvalue() + bytes(64))
    for name, pattern in (("objects.npy", "objects.npy: not a numpy .npy array"),
                          ("huge.npy", r"huge.npy: .*10,000,000,000,000 elements .*exceeds the limit")):
        rc = main(["simulate", str(model), "--input", str(tmp_path / name), "--backend", "reference",
                   "-o", str(tmp_path / "t.json")])
        err = capsys.readouterr().err
        assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1, err
        assert __import__("re").search(pattern, err), err
    assert not marker.exists() and not (tmp_path / "t.json").exists()


def test_files_above_the_size_limit_are_refused_before_parsing(tmp_path, monkeypatch, capsys):
    model = tmp_path / "m.nir"
    export_nir(random_network(), model)
    ckpt = tmp_path / "c.pt"
    torch.save({"format": FORMAT, "big": torch.zeros(4096)}, ckpt)
    monkeypatch.setenv("LMU2NEURO_MAX_FILE_BYTES", "4096")
    assert main(["inspect", str(model)]) == 2
    assert "exceeds the size limit of 4,096 bytes" in capsys.readouterr().err
    with pytest.raises(UserError, match=r"c.pt: checkpoint of [\d,]+ bytes exceeds the size limit of 4,096 bytes"):
        load_checkpoint(ckpt)
