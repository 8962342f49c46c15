"""Your own model from a Python file: ``lmu2neuro train --model FILE.py:FUNCTION``.

FUNCTION is called with the keyword arguments it names among the dataset's facts
(``ARGUMENTS``: input_size, frame_shape, num_classes, timesteps; a ``**kwargs`` takes them all;
no arguments is fine) and returns either a ``LoihiModel`` or an ``nn.Module`` built from
``lmu2neuro.models.layers``, which is wrapped as ``LoihiModel(module, frame_shape, max_len=timesteps)``.

The file is code the user chose to run: it is imported like any Python module. A checkpoint
records the file's path, its sha256 and the function (``record``) and never the code itself, so
it still loads with ``torch.load(weights_only=True)``; rebuilding it imports the file again and
refuses a file whose sha256 differs, since other code could build another model under the same
weights.
"""

from __future__ import annotations

import importlib.util
import inspect
import math
import sys
from pathlib import Path

from torch import nn

from lmu2neuro.core.errors import UserError, first_line, printable
from lmu2neuro.core.guards import sha256_of
from lmu2neuro.models.trace import LoihiModel

ARGUMENTS = ("input_size", "frame_shape", "num_classes", "timesteps")
HOW = "expected FILE.py:FUNCTION, a function that returns your model (a LoihiModel or an nn.Module of lmu2neuro.models.layers)"
# `export --model`: FUNCTION returns the plain snnTorch model the state_dict was saved from
HOW_PLAIN = ("expected FILE.py:FUNCTION, a function that returns your plain snnTorch model (an nn.Module such as "
             "an nn.Sequential of nn.Linear / nn.Conv and snn.Leaky layers), the one CHECKPOINT's state_dict was "
             "saved from")


def parse_spec(spec: str, how: str = HOW) -> tuple[Path, str]:
    """'FILE.py:FUNCTION' -> (path, function); UserError for anything else."""
    file, sep, func = str(spec).rpartition(":")
    if not sep or not file or not func.isidentifier():
        raise UserError(f"--model {spec}: {how}")
    return Path(file), func


def data_facts(data) -> dict:
    """The keyword arguments a model function may take, from a ``DatasetSplits``."""
    frame = tuple(data.frame_shape) if data.frame_shape else (int(data.input_size),)
    return {"input_size": int(data.input_size), "frame_shape": frame, "num_classes": int(data.num_classes),
            "timesteps": int(data.timesteps)}


def _import(path: Path, how: str = HOW):
    name = f"lmu2neuro_user_model_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"{path}: model file cannot be imported as Python; {how}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look a module up by name while it runs
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:  # whatever the user's code raises (SyntaxError, ImportError, SystemExit, ...)
        sys.modules.pop(name, None)
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise UserError(f"{path}: model file fails to import ({first_line(exc)})") from None
    return module


def _call(path: Path, func_name: str, fn, facts: dict):
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        sig = None
    kwargs = {}
    if sig is not None:
        params = sig.parameters.values()
        if any(p.kind is p.VAR_KEYWORD for p in params):
            kwargs = dict(facts)
        else:
            kwargs = {k: v for k, v in facts.items() if k in sig.parameters}
        missing = [p.name for p in params if p.default is p.empty and p.name not in kwargs
                   and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
        if missing:
            raise UserError(f"{path}: function {func_name!r} requires argument {missing[0]!r}; it may take only "
                            f"{', '.join(ARGUMENTS)} (from the dataset), or nothing")
    try:
        return fn(**kwargs)
    except UserError as exc:
        raise UserError(f"{path}: {func_name}(): {exc}") from None
    except BaseException as exc:  # SystemExit (sys.exit(7)) included: one line, exit 2; Ctrl-C still stops
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise UserError(f"{path}: {func_name}() failed ({first_line(exc)})") from None


def _load_function(path: Path, func_name: str, facts: dict, expected_sha256: str | None = None,
                   checkpoint: str | None = None, how: str = HOW) -> tuple[object, str]:
    """Import the model file ``path`` and call ``func_name`` with the facts it names -> (what it
    returned, the file's sha256). With ``expected_sha256`` (rebuilding a checkpoint's model), a file
    that changed is refused. ``how``: what the command expects FUNCTION to return (its messages)."""
    recorded = f" (recorded in {checkpoint})" if checkpoint else ""
    try:
        regular, exists = path.is_file(), path.exists()
    except OSError as exc:  # a name too long, a loop of links
        raise UserError(f"{str(path)[:200]}: model file cannot be examined ({exc.strerror}); {how}") from None
    if not regular:
        what = "is not a regular file (a folder, device or pipe)" if exists else "model file not found"
        raise UserError(f"{path}: {what}{recorded}; {how}")
    digest = sha256_of(path)
    if expected_sha256 is not None and digest != expected_sha256:
        raise UserError(f"{path}: model file changed since {checkpoint or 'the checkpoint'} was trained (sha256 "
                        f"{digest[:12]}..., recorded {expected_sha256[:12]}...); restore the file that trained it")
    module = _import(path, how)
    fn = getattr(module, func_name, None)
    if fn is None or not callable(fn):
        what = "does not define" if fn is None else "has a non-callable"
        raise UserError(f"{path}: model file {what} function {func_name!r}; {how}")
    return _call(path, func_name, fn, facts), digest


def build(path, func_name: str, facts: dict, expected_sha256: str | None = None,
          checkpoint: str | None = None) -> tuple[LoihiModel, str]:
    """Import ``path``, call ``func_name`` with the facts it names, wrap the result -> (model, sha256).

    With ``expected_sha256`` (rebuilding a checkpoint's model), a file that changed is refused."""
    path = Path(path)
    model, digest = _load_function(path, func_name, facts, expected_sha256, checkpoint)
    if isinstance(model, LoihiModel):
        return model, digest
    if not isinstance(model, nn.Module):
        raise UserError(f"{path}: {func_name}() returned {type(model).__name__}, expected an nn.Module "
                        "(a LoihiModel or a model of lmu2neuro.models.layers)")
    try:
        return LoihiModel(model, facts["frame_shape"], max_len=facts["timesteps"]), digest
    except UserError as exc:  # the tracer names the layer it cannot lower
        raise UserError(f"{path}: {func_name}(): {exc}") from None


def record(path, func_name: str, digest: str, facts: dict, model: LoihiModel) -> dict:
    """What a checkpoint keeps to rebuild the model: file, sha256, function, its arguments, and the
    input scale when the model has no InputQuantizer (that scale is not in the state dict)."""
    rec = {"file": str(Path(path).resolve()), "sha256": digest, "function": func_name,
           "arguments": {k: list(v) if isinstance(v, tuple) else v for k, v in facts.items()},
           "input_scale": None}
    if model.quantizer is None and model.fixed_input_scale is not None:
        rec["input_scale"] = float(model.fixed_input_scale)
    return rec


def rebuild(rec, checkpoint: str) -> LoihiModel:
    """The model a checkpoint's ``user_model`` record describes (file unchanged, else UserError)."""
    if not isinstance(rec, dict) or not all(isinstance(rec.get(k), str) for k in ("file", "sha256", "function")):
        raise UserError(f"{checkpoint}: field 'user_model' is not a record of file, sha256 and function")
    args = rec.get("arguments") or {}
    if not isinstance(args, dict):
        raise UserError(f"{checkpoint}: field 'user_model' entry 'arguments' is a {type(args).__name__}, expected a dict")
    facts = {k: tuple(v) if isinstance(v, list) else v for k, v in args.items() if k in ARGUMENTS}
    model, _ = build(rec["file"], rec["function"], facts, expected_sha256=rec["sha256"], checkpoint=checkpoint)
    scale = rec.get("input_scale")
    if scale is not None and model.quantizer is None:
        if not (isinstance(scale, (int, float)) and math.isfinite(scale) and scale > 0):
            raise UserError(f"{checkpoint}: field 'user_model' entry 'input_scale' is {scale!r}, expected a positive number")
        model.fixed_input_scale = float(scale)
    return model


def calibrate_if_needed(model: LoihiModel, x) -> float | None:
    """Set the input scale from the training inputs unless the model already has one."""
    q = model.quantizer
    if (q is not None and not q.calibrated) or (q is None and model.fixed_input_scale is None):
        return model.calibrate(x)
    return None


def plain_model(path, func_name: str, checkpoint, facts: dict) -> tuple[nn.Module, str]:
    """Import ``path``, call ``func_name`` (code the user chose to run), load ``checkpoint`` (a plain
    state_dict, ``torch.load(weights_only=True)``) into the module -> (module in eval mode, sha256)."""
    path = Path(path)
    model, digest = _load_function(path, func_name, facts, how=HOW_PLAIN)
    if not isinstance(model, nn.Module):
        raise UserError(f"{path}: {func_name}() returned {type(model).__name__}, expected an nn.Module (your plain "
                        "snnTorch model)")
    state = load_state_dict_file(checkpoint)
    check_state_fits(checkpoint, state, model, func_name)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # anything the checks above did not foresee: still one whole line
        raise UserError(f"{checkpoint}: does not fit {func_name}()'s model ({first_line(exc)})") from None
    return model.eval(), digest


# -- the state_dict of export --model, checked at the boundary ------------------------------------------
MAX_KEYS_SHOWN = 3  # keys named in a mismatch message; the rest are counted


def load_state_dict_file(checkpoint) -> dict:
    """A plain state_dict (str -> real, finite tensor) from a regular file within the size limit,
    loaded with ``weights_only=True``; one UserError line for anything else. torch's own warnings
    (e.g. on a pickle protocol) are kept off the console: the one line says what is wrong."""
    import warnings

    import torch

    from lmu2neuro.core import guards

    ckpt = guards.require_file(checkpoint, "checkpoint", "the state_dict of your model (torch.save(model.state_dict()))")
    guards.check_file_size(ckpt, "checkpoint")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickles beyond plain tensors, truncated or foreign files
        raise UserError(f"{ckpt}: not a plain state_dict that loads with weights_only=True ({first_line(exc)})") from None
    if not isinstance(state, dict):
        raise UserError(f"{ckpt}: holds a {type(state).__name__}; expected a plain state_dict (parameter name -> "
                        "tensor), as model.state_dict() saves it")
    for key, value in state.items():
        if not isinstance(key, str):
            raise UserError(f"{ckpt}: a key of type {type(key).__name__} ({_short(repr(key))}); expected parameter "
                            "names (strings), as model.state_dict() saves them")
        if not isinstance(value, torch.Tensor):
            raise UserError(f"{ckpt}: entry '{_short(key)}' is a {type(value).__name__}; expected a tensor")
        if value.is_complex() or value.is_quantized or value.layout != torch.strided:
            raise UserError(f"{ckpt}: entry '{_short(key)}' is a {value.dtype} ({value.layout}) tensor; expected real "
                            "numbers (a complex part would be dropped)")
        if value.is_floating_point() and value.numel():
            if not bool(torch.isfinite(value).all()):
                raise UserError(f"{ckpt}: entry '{_short(key)}' holds NaN or infinite values; expected finite weights")
            big = float(value.detach().abs().max())
            if big > guards.FLOAT32_MAX:  # the float32 model would hold inf after load_state_dict's copy
                raise UserError(f"{ckpt}: entry '{_short(key)}' holds {big:.4g}, beyond float32's range; expected "
                                "weights a float32 model can hold")
    return state


def _short(text: str, n: int = 80) -> str:
    text = printable(text)
    return text if len(text) <= n else text[: n - 3] + "..."


def _names(keys: list[str]) -> str:
    shown = ", ".join(f"'{_short(k, 60)}'" for k in keys[:MAX_KEYS_SHOWN])
    return shown + (f" and {len(keys) - MAX_KEYS_SHOWN} more" if len(keys) > MAX_KEYS_SHOWN else "")


def check_state_fits(checkpoint, state: dict, model: nn.Module, func_name: str) -> None:
    """UserError naming the missing, unexpected or wrongly shaped entries (at most MAX_KEYS_SHOWN of
    each, the rest counted: whole names, never a message cut mid-word)."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    parts = []
    if missing:
        parts.append(f"missing {_names(missing)}")
    if unexpected:
        parts.append(f"unexpected {_names(unexpected)}")
    if parts:
        raise UserError(f"{checkpoint}: does not fit {func_name}()'s model: {'; '.join(parts)} (a state_dict of "
                        "another model?)")
    for k, v in own.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise UserError(f"{checkpoint}: entry '{_short(k, 60)}' has shape {tuple(state[k].shape)}, "
                            f"{func_name}()'s model has {tuple(v.shape)}")
