"""Checkpoints: the weights plus the config that built them, as a plain dict of tensors and data.

Format "lmu2neuro.checkpoint/1" (docs/CONTRACTS.md): `torch.save` of
`{"format", "model_config", "dataset": {"name", "options"}, "state_dict", "epoch", "metrics",
"optimizer", "rng", "qat"}` (training may add more keys, e.g. "scheduler", "train"). A model from the user's own file
(`train --model FILE.py:FUNCTION`) adds "user_model": `{"file", "sha256", "function", "arguments",
"input_scale"}` (training.user_model.record) and is rebuilt by importing that file again, refused
if its sha256 changed; checkpoints without the key are the presets' and load as before.
Only plain data is stored, so loading uses `torch.load(weights_only=True)` and a file from
elsewhere cannot run code. Saving is atomic: an interrupted save keeps the previous file.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from lmu2neuro.core import guards
from lmu2neuro.core.atomic import atomic_path
from lmu2neuro.core.errors import UserError

FORMAT = "lmu2neuro.checkpoint/1"
FIELDS = ("format", "model_config", "dataset", "state_dict", "epoch", "metrics", "optimizer", "rng", "qat")


def save_checkpoint(path, model: torch.nn.Module, model_config: dict, *, dataset: dict | None = None,
                    epoch: int = 0, metrics: Any = None, optimizer: dict | None = None,
                    rng: dict | None = None, qat: bool = False, **extra) -> None:
    """Write `model`'s weights and `model_config` (a `ModelConfig.to_dict()`) to `path` atomically.

    `dataset` is `{"name": str, "options": dict}`; `optimizer` an optimizer `state_dict()`;
    `rng` the random states needed to resume; `extra` keys are stored beside the standard ones.
    """
    ckpt = {
        "format": FORMAT,
        "model_config": dict(model_config),
        "dataset": dict(dataset) if dataset else {"name": None, "options": {}},
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "epoch": int(epoch),
        "metrics": metrics if metrics is not None else {},
        "optimizer": optimizer,
        "rng": rng,
        "qat": bool(qat),
    }
    clash = set(extra) & set(ckpt)
    if clash:
        raise ValueError(f"extra checkpoint keys clash with standard fields: {sorted(clash)}")
    ckpt.update(extra)
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)


def load_checkpoint(path) -> dict:
    """Read and validate a checkpoint; `UserError` naming the file and the field for anything wrong."""
    path = Path(path)
    guards.require_file(path, "checkpoint file", "a .pt file written by `lmu2neuro train`")
    guards.check_file_size(path, "checkpoint")
    with open(path, "rb") as fh:
        head = fh.read(4)
    # torch.save writes a zip archive (a raw pickle before torch 1.6); anything else would reach
    # the weights-only unpickler and be misreported as an unsafe payload
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
        kind = {b"\x89HDF": "an HDF5 file (a .nir graph?)", b"{": "a JSON file"}
        what = next((v for k, v in kind.items() if head.startswith(k)), f"a file starting with {head!r}")
        raise UserError(f"{path}: not a torch checkpoint file, {what}; expected a checkpoint written by "
                        "`lmu2neuro train`")
    try:
        with warnings.catch_warnings():  # e.g. on a pickle protocol: the one error line says what is wrong
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for non-torch or unsafe files
        text = str(exc)
        if "Weights only load failed" in text or "weights_only" in text:
            why = "it holds Python objects beyond tensors and plain data (refused for safety)"
        else:
            why = "not a torch checkpoint file (" + (text.strip().splitlines() or [type(exc).__name__])[0][:120] + ")"
        raise UserError(f"{path}: {why}; expected a checkpoint written by `lmu2neuro train`") from None
    if not isinstance(ckpt, dict):
        raise UserError(f"{path}: holds a {type(ckpt).__name__}, expected a dict with format {FORMAT!r}")
    fmt = ckpt.get("format")
    if fmt != FORMAT:
        found = "no 'format' field" if "format" not in ckpt else f"format {fmt!r}"
        raise UserError(f"{path}: {found}; expected format {FORMAT!r} (a checkpoint written by `lmu2neuro train`)")
    missing = [f for f in FIELDS if f not in ckpt]
    if missing:
        raise UserError(f"{path}: field {missing[0]!r} missing; expected fields {', '.join(FIELDS)}")
    checks = {"model_config": dict, "state_dict": dict, "dataset": dict, "epoch": int, "qat": bool}
    for field, kind in checks.items():
        if not isinstance(ckpt[field], kind):
            raise UserError(f"{path}: field {field!r} is a {type(ckpt[field]).__name__}, expected a {kind.__name__}")
    for key, value in ckpt["state_dict"].items():
        if not isinstance(value, torch.Tensor):
            raise UserError(f"{path}: field 'state_dict' entry {key!r} is a {type(value).__name__}, expected a tensor")
    return ckpt


def model_from_checkpoint(path):
    """Rebuild the model a checkpoint describes and load its weights -> `(model, ckpt)`.

    The model is in eval mode, with fake quantization on if it was trained with QAT.
    """
    from lmu2neuro.models.config import ModelConfig
    from lmu2neuro.models.registry import build_model

    ckpt = load_checkpoint(path)
    if ckpt.get("user_model") is not None:
        from lmu2neuro.training.user_model import rebuild

        model = rebuild(ckpt["user_model"], str(path))
        check_state_dict(path, model, ckpt["state_dict"])
        model.load_state_dict(ckpt["state_dict"])
        model.set_qat(bool(ckpt["qat"]))
        model.eval()
        return model, ckpt
    try:
        model = build_model(ModelConfig.from_dict(ckpt["model_config"]))
    except UserError as exc:
        raise UserError(f"{path}: field 'model_config' does not rebuild a model: {exc}") from None
    except Exception as exc:  # any failure here means the stored config is not one we can build
        msg = (str(exc).strip().splitlines() or [""])[0][:200]
        raise UserError(f"{path}: field 'model_config' does not rebuild a model "
                        f"({type(exc).__name__}: {msg})") from None
    check_state_dict(path, model, ckpt["state_dict"])
    model.load_state_dict(ckpt["state_dict"])
    if ckpt["qat"] and hasattr(model, "set_qat"):
        model.set_qat(True)
    model.eval()
    return model, ckpt


def check_state_dict(path, model: torch.nn.Module, state: dict) -> None:
    """UserError naming the first key of `state` that is missing, unexpected or of the wrong shape."""
    expected = model.state_dict()
    for key, tensor in expected.items():
        if key not in state:
            raise UserError(f"{path}: field 'state_dict' lacks {key!r} (shape {tuple(tensor.shape)}) "
                            f"that the model config needs")
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise UserError(f"{path}: field 'state_dict' entry {key!r} has shape {tuple(state[key].shape)}, "
                            f"expected {tuple(tensor.shape)} for the model config")
    for key in state:
        if key not in expected:
            raise UserError(f"{path}: field 'state_dict' has {key!r}, which the model config does not use")
