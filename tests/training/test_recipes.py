"""The paper's recipe: resolved options, augmentation draws, the BCE-on-mixup loss; devices and bad input."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lmu2neuro.cli import main
from lmu2neuro.core.errors import UserError
from lmu2neuro.training.augment import MASK_FRACTION, Augmentation, augment, batch_rng, soft_target_bce
from lmu2neuro.training.recipe import RECIPES, TrainConfig, train

TINY = dict(dim=8, memory_order=4, embed_convs=1, mlp_ratio=1)


def _cfg(out, **kw):
    base = dict(dataset="digits", out=str(out), preset="digits-small", overrides=dict(TINY), epochs=2,
                limit=48, progress=False, threads=1)
    base.update(kw)
    return TrainConfig(**base)


def test_paper_recipe_resolves_the_papers_options_and_plain_stays_the_default():
    plain, paper = TrainConfig(epochs=30), TrainConfig(epochs=30, recipe="paper")
    assert (plain.global_batch(), plain.step_size(), plain.qat_enabled()) == (64, 3, False)
    assert (paper.global_batch(), paper.step_size(), paper.qat_enabled()) == (128, 10, True)
    assert TrainConfig(recipe="paper", spiking=False).qat_enabled() is False  # QAT needs the spiking model
    assert TrainConfig(recipe="paper", qat=False).qat_enabled() is False
    assert RECIPES["paper"].loss == "bce_mixup" and RECIPES["paper"].augmentation.mixup == 0.6
    assert RECIPES["plain"].augmentation == Augmentation()


def test_mixup_draws_are_seeded_per_batch_and_labels_mix_like_inputs():
    x = torch.rand(200, 16, 8)
    y = torch.randint(0, 10, (200,))
    aug = Augmentation(mixup=0.6)
    xa, ta = augment(x, y, 10, aug, batch_rng(0, 3, 7))
    xb, tb = augment(x, y, 10, aug, batch_rng(0, 3, 7))
    assert torch.equal(xa, xb) and torch.equal(ta, tb)
    xc, _ = augment(x, y, 10, aug, batch_rng(0, 3, 8))
    assert not torch.equal(xa, xc)
    assert torch.allclose(ta.sum(1), torch.ones(200))
    # replay the draws: which samples mix (60 %), with whom, and with which weight
    rng = batch_rng(0, 3, 7)
    mixed = rng.random(200) < 0.6
    partner = rng.integers(0, 200, 200)
    lam = np.where(mixed, rng.beta(10, 10, 200), 1.0)
    assert 0.5 < mixed.mean() < 0.7 and 0.1 < lam[mixed].min() and lam[mixed].max() < 0.9  # Beta(10, 10)
    lam_t = torch.from_numpy(lam).float()[:, None]
    expect_t = lam_t * F.one_hot(y, 10) + (1 - lam_t) * F.one_hot(y[partner], 10)
    assert torch.allclose(ta, expect_t)
    expect_x = lam_t[:, :, None] * x + (1 - lam_t[:, :, None]) * x[partner]
    assert torch.allclose(xa, expect_x) and torch.equal(xa[~mixed], x[~mixed])


def test_spec_augment_noise_and_roll_only_for_speech():
    x = torch.ones(64, 40, 20)
    y = torch.zeros(64, dtype=torch.int64)
    aug = Augmentation(spec_augment=True)
    same, _ = augment(x, y, 2, aug, batch_rng(1, 0, 0), speech=False)
    assert torch.equal(same, x)
    out, target = augment(x, y, 2, aug, batch_rng(1, 0, 0), speech=True)
    assert torch.equal(target, F.one_hot(y, 2).float())
    zero_bins = (out.abs() < 0.11).all(dim=1)  # masked bins hold only noise (< 0.1)
    zero_frames = (out.abs() < 0.11).all(dim=2)
    assert zero_bins.sum(1).max() < MASK_FRACTION * 20 + 1 and zero_bins.any()
    assert zero_frames.sum(1).max() < MASK_FRACTION * 40 + 1 and zero_frames.any()
    noise = out - torch.round(out)
    assert float(noise.min()) >= 0 and float(noise.max()) <= 0.1 and float(noise.max()) > 0


def test_roll_is_torch_roll_of_each_sample():
    x = torch.arange(3 * 30 * 2, dtype=torch.float32).reshape(3, 30, 2)
    rng = batch_rng(5, 0, 0)
    out, _ = augment(x, torch.zeros(3, dtype=torch.int64), 2, Augmentation(spec_augment=True), rng, speech=True)
    # replay the generator to learn the shifts: masks, noise, noise level, then the roll
    rng = batch_rng(5, 0, 0)
    for size in (2, 30):
        rng.random(3), rng.random(3)
    rng.random((3, 30, 2)), rng.random(3)
    shifts = rng.integers(-10, 10, 3)
    for i in range(3):
        # every value of the rolled sample comes from torch.roll of the (masked, noised) input
        rolled_back = torch.roll(out[i], -int(shifts[i]), dims=0)
        kept = rolled_back > 0.5
        assert torch.allclose(rolled_back[kept].floor(), x[i][kept])


def test_bce_on_label_weights_is_torchs_mean_bce():
    logits = torch.randn(7, 5)
    target = torch.softmax(torch.randn(7, 5), 1)
    assert torch.allclose(soft_target_bce(logits, target) / 7,
                          F.binary_cross_entropy_with_logits(logits, target))


def test_paper_recipe_trains_resumes_exactly_and_records_its_options(tmp_path):
    class Stop(Exception):
        pass

    straight = train(_cfg(tmp_path / "a", recipe="paper", batch_size=16))
    assert straight["config"]["recipe"] == "paper" and straight["config"]["qat"] is True
    assert straight["config"]["batch_size"] == 16 and straight["config"]["lr_step_epochs"] == 10
    assert [r["qat"] for r in straight["epochs"]] == [False, True]

    def stop(epoch, batch):
        if epoch == 1 and batch == 1:
            raise Stop

    with pytest.raises(Stop):
        train(_cfg(tmp_path / "b", recipe="paper", batch_size=16), on_batch=stop)
    resumed = train(_cfg(tmp_path / "b", recipe="paper", batch_size=16, resume=True))
    for a, b in zip(straight["epochs"], resumed["epochs"]):
        a, b = dict(a), dict(b)
        a.pop("seconds"), b.pop("seconds")
        assert a == b
    assert straight["test"] == resumed["test"]
    plain = train(_cfg(tmp_path / "c", batch_size=16, qat=True))
    assert plain["epochs"][0]["train_loss"] != straight["epochs"][0]["train_loss"]
    with pytest.raises(UserError, match="started with recipe='paper', got 'plain'"):
        train(_cfg(tmp_path / "a", batch_size=16, resume=True, epochs=3))


def _cli_fails(capsys, tmp_path, *extra, env=None):
    out = tmp_path / "run"
    rc = main(["train", "--dataset", "digits", "--preset", "digits-small", "--epochs", "1", "--out", str(out),
               "--limit", "16", *extra])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert not out.exists()  # nothing written, not even the folder
    return err


def test_bad_recipe_device_and_world_size_are_one_line_and_write_nothing(tmp_path, capsys, monkeypatch):
    assert "--recipe fancy: unknown recipe; expected one of plain, paper" in _cli_fails(
        capsys, tmp_path, "--recipe", "fancy")
    assert "--device tpu: expected cpu or cuda" in _cli_fails(capsys, tmp_path, "--device", "tpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "--device cuda: no CUDA GPU is visible to torch" in _cli_fails(capsys, tmp_path, "--device", "cuda")
    # what torchrun sets for 3 processes: 64 samples do not split three ways
    for key, value in {"WORLD_SIZE": "3", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                       "MASTER_PORT": "1"}.items():
        monkeypatch.setenv(key, value)
    err = _cli_fails(capsys, tmp_path, "--batch-size", "64")
    assert "--batch-size 64: torchrun started 3 processes, which do not divide the global batch" in err
    monkeypatch.setenv("RANK", "2")  # the other processes stop quietly: one line in all
    rc = main(["train", "--dataset", "digits", "--preset", "digits-small", "--epochs", "1",
               "--out", str(tmp_path / "r2"), "--batch-size", "64"])
    assert rc == 2 and capsys.readouterr().err == "" and not (tmp_path / "r2").exists()


@pytest.mark.parametrize("name", ["digits", "mnist1d", "mnist1d-ann"])
def test_documented_commands_are_the_benchmarked_options(name):
    # the README, `train --help`, the demo and benchmarks/train_accuracy.py share training.examples:
    # the printed command must parse back into exactly those options
    import shlex
    from dataclasses import asdict

    from lmu2neuro.cli import build_parser
    from lmu2neuro.cli.train import config_from_args
    from lmu2neuro.training.examples import EXAMPLES, MEASURED, command

    line = command(name, "runs/x")
    parsed = config_from_args(build_parser().parse_args(shlex.split(line)[1:]))
    expected = TrainConfig(out="runs/x", progress=True, **EXAMPLES[name])
    assert asdict(parsed) == asdict(expected)
    assert "%" in MEASURED[name] and "seed 0" in MEASURED[name]
    if name != "mnist1d-ann":
        from lmu2neuro.cli.train import _examples

        assert line.replace("runs/x", f"runs/{name}") in _examples()
