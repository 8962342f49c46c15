"""`--dataset npz:FILE` / `npy:DIR` through the CLI: train, export, simulate and `dataset` take them."""

import json

import numpy as np
import pytest

from lmu2neuro.cli import main


def _arrays(tmp_path):
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32).repeat(2, axis=1)[:, :, None, :]  # frames (1, 8)
    np.savez(tmp_path / "own.npz", x_train=x[:1400], y_train=d.target[:1400], x_test=x[1400:], y_test=d.target[1400:])
    (tmp_path / "dir").mkdir()
    np.save(tmp_path / "dir" / "x.npy", x)
    np.save(tmp_path / "dir" / "y.npy", d.target)
    return f"npz:{tmp_path / 'own.npz'}", f"npy:{tmp_path / 'dir'}"


def test_train_export_simulate_and_inspect_own_arrays(tmp_path, capsys):
    npz, npy = _arrays(tmp_path)
    assert main(["dataset", npy]) == 0
    out = capsys.readouterr().out
    assert "train 1257, val 180, test 360" in out and "16 steps x 8 features" in out
    run = tmp_path / "run"
    assert main(["train", "--dataset", npz, "--preset", "digits-small", "--epochs", "1", "--limit", "48",
                 "--threads", "1", "--out", str(run)]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["dataset"]["name"] == npz and metrics["dataset"]["test"] == 48
    assert metrics["model_config"]["input_size"] == 8 and metrics["model_config"]["num_classes"] == 10
    assert main(["export", str(run / "best.pt"), "-o", str(tmp_path / "m.nir")]) == 0
    assert main(["simulate", str(tmp_path / "m.nir"), "--dataset", npz, "--samples", "6", "--backend", "reference",
                 "-o", str(tmp_path / "t.json")]) == 0
    traffic = json.loads((tmp_path / "t.json").read_text())
    # the labels came with the arrays: the first 6 of y_test, scored against the predictions
    assert traffic["samples"] == 6 and traffic["labels"] == [int(v) for v in np.load(tmp_path / "own.npz")["y_test"][:6]]
    assert traffic["accuracy"] == np.mean(np.array(traffic["predictions"]) == np.array(traffic["labels"]))


@pytest.mark.parametrize("command", ["train", "simulate", "dataset"])
def test_bad_arrays_stop_every_command_with_one_line_and_nothing_written(tmp_path, capsys, command):
    bad = tmp_path / "bad.npz"
    np.savez(bad, x=np.zeros((10, 4, 3)), y=np.arange(9))
    out = tmp_path / "out"
    args = {
        "train": ["train", "--dataset", f"npz:{bad}", "--preset", "digits-small", "--epochs", "1", "--out", str(out)],
        "simulate": ["simulate", str(tmp_path / "model.nir"), "--dataset", f"npz:{bad}", "-o", str(out / "t.json")],
        "dataset": ["dataset", f"npz:{bad}"],
    }[command]
    if command == "simulate":
        _tiny_nir(tmp_path / "model.nir")
    rc = main(args)
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1, err
    assert err.startswith(f"error: {bad}: array 'y': 9 labels for 10 samples in 'x'"), err
    assert not out.exists()


def _tiny_nir(path):
    import nir

    w = np.ones((2, 3), dtype=np.float32)
    graph = nir.NIRGraph.from_list(nir.Input(input_type=np.array([3])), nir.Affine(weight=w, bias=np.zeros(2)),
                                   nir.LIF(tau=np.ones(2), r=np.ones(2), v_leak=np.zeros(2), v_threshold=np.ones(2)),
                                   nir.Output(output_type=np.array([2])))
    nir.write(str(path), graph)


def test_resume_after_the_data_changed_is_refused(tmp_path, capsys):
    npz, _ = _arrays(tmp_path)
    run = tmp_path / "run"
    args = ["train", "--dataset", npz, "--preset", "digits-small", "--limit", "48", "--threads", "1", "--out", str(run)]
    assert main(args + ["--epochs", "1"]) == 0
    assert json.loads((run / "metrics.json").read_text())["dataset"]["sha256"]
    with np.load(tmp_path / "own.npz") as z:
        arrays = dict(z)
    arrays["y_train"] = arrays["y_train"][::-1].copy()  # same shapes, other labels
    np.savez(tmp_path / "own.npz", **arrays)
    before = (run / "last.pt").read_bytes()
    capsys.readouterr()
    assert main(args + ["--epochs", "2", "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "the data changed since" in err[0] and "own.npz" in err[0], err
    assert (run / "last.pt").read_bytes() == before
