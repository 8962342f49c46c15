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

from lmu2neuro.core.errors import UserError
from lmu2neuro.core.guards import sha256_of
from lmu2neuro.models.trace import LoihiModel

ARGUMENTS = ("input_size", "frame_shape", "num_classes", "timesteps")
HOW = "expected FILE.py:FUNCTION, a function that returns your model (a LoihiModel or an nn.Module of lmu2neuro.models.layers)"


def parse_spec(spec: str) -> tuple[Path, str]:
    """'FILE.py:FUNCTION' -> (path, function); UserError for anything else."""
    file, sep, func = str(spec).rpartition(":")
    if not sep or not file or not func.isidentifier():
        raise UserError(f"--model {spec}: {HOW}")
    return Path(file), func


def data_facts(data) -> dict:
    """The keyword arguments a model function may take, from a ``DatasetSplits``."""
    frame = tuple(data.frame_shape) if data.frame_shape else (int(data.input_size),)
    return {"input_size": int(data.input_size), "frame_shape": frame, "num_classes": int(data.num_classes),
            "timesteps": int(data.timesteps)}


def _import(path: Path):
    name = f"lmu2neuro_user_model_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"{path}: model file cannot be imported as Python; {HOW}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look a module up by name while it runs
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:  # whatever the user's code raises (SyntaxError, ImportError, SystemExit, ...)
        sys.modules.pop(name, None)
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise UserError(f"{path}: model file fails to import ({_first_line(exc)})") from None
    return module


def _first_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


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
    except Exception as exc:
        raise UserError(f"{path}: {func_name}() failed ({_first_line(exc)})") from None


def build(path, func_name: str, facts: dict, expected_sha256: str | None = None,
          checkpoint: str | None = None) -> tuple[LoihiModel, str]:
    """Import ``path``, call ``func_name`` with the facts it names, wrap the result -> (model, sha256).

    With ``expected_sha256`` (rebuilding a checkpoint's model), a file that changed is refused."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: model file not found{' (recorded in ' + checkpoint + ')' if checkpoint else ''}; "
                        f"{HOW}")
    digest = sha256_of(path)
    if expected_sha256 is not None and digest != expected_sha256:
        raise UserError(f"{path}: model file changed since {checkpoint or 'the checkpoint'} was trained (sha256 "
                        f"{digest[:12]}..., recorded {expected_sha256[:12]}...); restore the file that trained it")
    module = _import(path)
    fn = getattr(module, func_name, None)
    if fn is None or not callable(fn):
        what = "does not define" if fn is None else "has a non-callable"
        raise UserError(f"{path}: model file {what} function {func_name!r}; {HOW}")
    model = _call(path, func_name, fn, facts)
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
