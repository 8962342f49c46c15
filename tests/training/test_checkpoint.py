"""Checkpoints: round trip through the real model, and one-line errors for every kind of bad file."""

import pytest
import torch

from lmu2neuro.training.checkpoint import FORMAT, load_checkpoint, model_from_checkpoint, save_checkpoint
from lmu2neuro.core.errors import UserError
from lmu2neuro.models.config import ModelConfig
from lmu2neuro.models.registry import build_model


def _tiny(spiking=True):
    cfg = ModelConfig.from_preset("digits-small", input_size=8, num_classes=10, spiking=spiking, dim=8,
                                  memory_order=4, embed_convs=1, mlp_ratio=1)
    torch.manual_seed(0)
    return cfg, build_model(cfg)


@pytest.fixture
def saved(tmp_path):
    cfg, model = _tiny()
    path = tmp_path / "m.pt"
    save_checkpoint(path, model, cfg.to_dict(), dataset={"name": "digits", "options": {"repeat": 3}},
                    epoch=3, metrics={"val_accuracy": 0.5}, qat=True)
    return path, cfg, model


def test_round_trip_rebuilds_identical_model(saved):
    path, cfg, model = saved
    loaded, ckpt = model_from_checkpoint(path)
    assert ckpt["format"] == FORMAT and ckpt["epoch"] == 3 and ckpt["dataset"]["options"] == {"repeat": 3}
    assert ckpt["model_config"] == cfg.to_dict() and ckpt["qat"] is True
    assert loaded.qat is True and not loaded.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    x = torch.rand(3, 24, 8)
    model.eval()
    model.set_qat(True)
    assert torch.equal(model(x), loaded(x))
    # weights_only loading: the file holds plain data only
    assert isinstance(torch.load(path, weights_only=True), dict)
    assert not list(path.parent.glob(".m.pt.*"))  # no temporary left beside it


def _rewrite(path, mutate):
    ckpt = torch.load(path, weights_only=True)
    mutate(ckpt)
    torch.save(ckpt, path)


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(UserError, match=r"nothere.pt: checkpoint file not found"):
        load_checkpoint(tmp_path / "nothere.pt")
    junk = tmp_path / "junk.pt"
    junk.write_text("hello, not a checkpoint")
    with pytest.raises(UserError, match=r"junk.pt: not a torch checkpoint file"):
        load_checkpoint(junk)
    lst = tmp_path / "list.pt"
    torch.save([1, 2, 3], lst)
    with pytest.raises(UserError, match=r"list.pt: holds a list, expected a dict"):
        load_checkpoint(lst)
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"format": FORMAT, "obj": ModelConfig(8, 10)}, unsafe)  # a class instance: refused by weights_only
    with pytest.raises(UserError, match=r"unsafe.pt: .*refused for safety"):
        load_checkpoint(unsafe)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda c: c.pop("format"), "no 'format' field"),
        (lambda c: c.update(format="other/2"), "format 'other/2'; expected format 'lmu2neuro.checkpoint/1'"),
        (lambda c: c.pop("state_dict"), "field 'state_dict' missing"),
        (lambda c: c.pop("rng"), "field 'rng' missing"),
        (lambda c: c.update(epoch="3"), "field 'epoch' is a str, expected a int"),
        (lambda c: c["state_dict"].update(bogus=[1, 2]), "entry 'bogus' is a list, expected a tensor"),
    ],
)
def test_malformed_fields(saved, mutate, message):
    path = saved[0]
    _rewrite(path, mutate)
    with pytest.raises(UserError) as e:
        load_checkpoint(path)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert str(path) in str(e.value)


def test_config_that_does_not_rebuild(saved):
    path = saved[0]
    _rewrite(path, lambda c: c["model_config"].update(dim=-4))
    with pytest.raises(UserError, match=r"m.pt: field 'model_config' does not rebuild a model.*'dim'"):
        model_from_checkpoint(path)
    _rewrite(path, lambda c: c["model_config"].update(dim=8, colour="red"))
    with pytest.raises(UserError, match=r"model_config' does not rebuild.*colour"):
        model_from_checkpoint(path)


def test_state_dict_mismatch_names_key_and_shapes(saved):
    path, cfg, model = saved
    key = "head.weight"
    _rewrite(path, lambda c: c["state_dict"].update({key: torch.zeros(10, 5)}))
    with pytest.raises(UserError, match=r"entry 'head.weight' has shape \(10, 5\), expected \(10, 8\)"):
        model_from_checkpoint(path)
    _rewrite(path, lambda c: c["state_dict"].pop(key))
    with pytest.raises(UserError, match=r"lacks 'head.weight' \(shape \(10, 8\)\)"):
        model_from_checkpoint(path)
    _rewrite(path, lambda c: c["state_dict"].update({key: torch.zeros(10, 8), "extra.w": torch.zeros(1)}))
    with pytest.raises(UserError, match=r"has 'extra.w', which the model config does not use"):
        model_from_checkpoint(path)
