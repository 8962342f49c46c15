"""Training: metrics and checkpoints on disk, exact resume, reproducibility, QAT, CLI and bad input."""

import json

import pytest
import torch

from lmu2neuro.training.checkpoint import load_checkpoint, model_from_checkpoint
from lmu2neuro.cli import main
from lmu2neuro.core.errors import UserError
from lmu2neuro.training.recipe import TrainConfig, train

TINY = dict(dim=8, memory_order=4, embed_convs=1, mlp_ratio=1)


def _cfg(out, **kw):
    base = dict(dataset="digits", out=str(out), preset="digits-small", overrides=dict(TINY), epochs=2,
                batch_size=16, limit=48, progress=False, threads=1, dataset_options={"repeat": 2})
    base.update(kw)
    return TrainConfig(**base)


def _strip_times(metrics):
    m = json.loads(json.dumps(metrics))
    for row in m["epochs"]:
        row.pop("seconds")
    return m


class Interrupt(Exception):
    pass


def test_resume_after_kill_mid_epoch_matches_uninterrupted_run(tmp_path):
    straight = train(_cfg(tmp_path / "a"))

    def kill_in_second_epoch(epoch, batch):
        if epoch == 1 and batch == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(_cfg(tmp_path / "b"), on_batch=kill_in_second_epoch)
    assert load_checkpoint(tmp_path / "b" / "last.pt")["epoch"] == 1
    on_disk = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert len(on_disk["epochs"]) == 1 and "test" not in on_disk
    resumed = train(_cfg(tmp_path / "b", resume=True))

    a, b = _strip_times(straight), _strip_times(resumed)
    assert a["epochs"] == b["epochs"] and a["test"] == b["test"] and a["best"] == b["best"]
    wa = torch.load(tmp_path / "a" / "last.pt", weights_only=True)["state_dict"]
    wb = torch.load(tmp_path / "b" / "last.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    # the loss moved, so the comparison compares something
    assert a["epochs"][0]["train_loss"] != a["epochs"][1]["train_loss"]


def test_outputs_and_test_metrics(tmp_path):
    m = train(_cfg(tmp_path / "run", epochs=1))
    on_disk = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert _strip_times(on_disk) == _strip_times(m)
    row = m["epochs"][0]
    assert set(row) >= {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "qat"}
    assert row["lr"] == pytest.approx(2.5e-3)
    test = m["test"]
    assert test["samples"] == 48 and 0.0 <= test["accuracy"] <= 1.0
    assert 0.0 <= test["integer_accuracy"] <= 1.0
    assert len(test["accuracy_by_frames"]) == 16 and len(test["integer_accuracy_by_frames"]) == 16
    # accuracy after all frames is the model's accuracy
    assert test["accuracy_by_frames"][-1] == pytest.approx(test["accuracy"])
    model, ckpt = model_from_checkpoint(tmp_path / "run" / "best.pt")
    assert ckpt["dataset"] == {"name": "digits", "options": {"repeat": 2}} and ckpt["epoch"] == 1
    assert ckpt["model_config"]["dim"] == 8 and ckpt["model_config"]["spiking"] is True
    last = load_checkpoint(tmp_path / "run" / "last.pt")
    assert last["optimizer"]["state"] and "torch" in last["rng"] and last["scheduler"]["last_epoch"] == 1


def test_same_seed_same_run_other_seed_differs(tmp_path):
    a = _strip_times(train(_cfg(tmp_path / "a", epochs=1)))
    b = _strip_times(train(_cfg(tmp_path / "b", epochs=1)))
    c = _strip_times(train(_cfg(tmp_path / "c", epochs=1, seed=7)))
    assert a["epochs"] == b["epochs"]
    assert a["epochs"][0]["train_loss"] != c["epochs"][0]["train_loss"]


def test_qat_switches_after_warmup_and_best_is_quantized(tmp_path):
    m = train(_cfg(tmp_path / "q", qat=True, epochs=2))
    assert [r["qat"] for r in m["epochs"]] == [False, True]
    best = load_checkpoint(tmp_path / "q" / "best.pt")
    assert best["qat"] is True and best["epoch"] == 2 and m["best"]["epoch"] == 2
    assert m["test"]["qat"] is True and "accuracy_without_fake_quant" in m["test"]


def test_ann_model_has_no_integer_metrics(tmp_path):
    m = train(_cfg(tmp_path / "ann", spiking=False, epochs=1))
    assert "integer_accuracy" not in m["test"] and 0.0 <= m["test"]["accuracy"] <= 1.0
    assert m["test"]["accuracy_by_frames"][-1] == pytest.approx(m["test"]["accuracy"])


def test_refuses_to_clobber_and_checks_resume_options(tmp_path):
    with pytest.raises(UserError, match="last.pt: not found; --resume"):
        train(_cfg(tmp_path / "r", resume=True))
    train(_cfg(tmp_path / "r", epochs=1))
    with pytest.raises(UserError, match="already holds a training run"):
        train(_cfg(tmp_path / "r", epochs=1))
    with pytest.raises(UserError, match=r"started with lr=0.0025, got 0.01"):
        train(_cfg(tmp_path / "r", resume=True, lr=1e-2))
    with pytest.raises(UserError, match="preset 'nope' is unknown"):
        train(_cfg(tmp_path / "p", preset="nope"))


def test_cli_train_and_errors(tmp_path, capsys):
    out = tmp_path / "cli"
    rc = main(["train", "--dataset", "digits", "--preset", "digits-small", "--epochs", "1", "--out", str(out),
               "--limit", "32", "--threads", "1", "--batch-size", "16", "--data-option", "repeat=2",
               *sum((["--set", f"{k}={v}"] for k, v in TINY.items()), [])])
    assert rc == 0
    assert "test accuracy" in capsys.readouterr().out
    assert (out / "best.pt").is_file() and (out / "last.pt").is_file()
    rc = main(["train", "--dataset", "mnist", "--preset", "mnist-small", "--epochs", "1", "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and "--data-root" in err and err.count("\n") == 1
    rc = main(["train", "--dataset", "digits", "--preset", "digits-small", "--epochs", "1", "--out", str(out),
               "--set", "dim"])
    assert rc == 2 and "--set 'dim': expected KEY=VALUE" in capsys.readouterr().err


def test_resume_with_more_epochs_keeps_the_qat_schedule(tmp_path):
    def stop_after_first_epoch(epoch, batch):
        if epoch == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(_cfg(tmp_path / "s", qat=True, epochs=4, limit=16), on_batch=stop_after_first_epoch)
    m = train(_cfg(tmp_path / "s", qat=True, epochs=6, limit=16, resume=True))
    # warm-up was resolved as 4 // 2 = 2 when the run started; 6 // 2 would give 3
    assert [r["qat"] for r in m["epochs"]] == [False, False, True, True, True, True]


def test_read_metrics_errors(tmp_path):
    from lmu2neuro.training.recipe import read_metrics

    with pytest.raises(UserError, match="metrics.json: metrics file not found"):
        read_metrics(tmp_path / "metrics.json")
    (tmp_path / "metrics.json").write_text("{half")
    with pytest.raises(UserError, match="metrics.json: not valid JSON"):
        read_metrics(tmp_path / "metrics.json")
