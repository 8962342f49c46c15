"""Make lava-nc 0.10.0 and lava-dl 0.6.0 import and run on Python 3.11.

Upstream is archived and declares Python <3.11. Two things break on 3.11 and nothing else:

1. ``lava.magma.compiler.var_model`` gives dataclass fields a default instance of another
   dataclass (``x: ByteEncoder = ByteEncoder()``). Python 3.11 rejects unhashable defaults, so
   the module raises ``ValueError`` at import, which takes every Lava compile path with it.
   We compile that one module from its own source with those defaults rewritten to
   ``field(default_factory=ByteEncoder)``: the same values, and no longer shared between
   instances.
2. ``lava.lib.dl.slayer`` imports its ``object_detection`` subpackage, which needs
   torchvision (no CPU build exists for torch 2.13). When torchvision is missing, that one
   subpackage is replaced by a module whose every attribute raises a clear ImportError, so
   slayer and netx import; object detection alone stays unavailable.

3. (Not about 3.11, but it breaks the same imports.) ``message_infrastructure.multiprocessing``
   calls ``mp.set_start_method('fork')`` at import, which raises if anything (tqdm's lock, for
   one) already fixed the start method, even to 'fork'. It is rewritten to set the method only
   when it is not already 'fork', so a different method set by the user still fails loudly.

All three are done by an import hook on exactly those module names: nothing outside lava is
touched, and nothing happens until lava is imported. ``install()`` is idempotent and is run by
``converters/__init__.py``, so every project import of lava goes through it. If upstream code
changes so that a rewrite no longer matches, the import fails with ``LavaCompatError`` instead
of running a half-patched Lava.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import re
import sys
import types

VAR_MODEL = "lava.magma.compiler.var_model"
MULTIPROCESSING = "lava.magma.runtime.message_infrastructure.multiprocessing"
OBJECT_DETECTION = "lava.lib.dl.slayer.object_detection"

# `name: ByteEncoder = ByteEncoder()` inside CoreEncoder, ChipEncoder and AxonEncoder.
_MUTABLE_DEFAULT = re.compile(rb"^(\s+\w+: ByteEncoder) = ByteEncoder\(\)\s*$", re.MULTILINE)
EXPECTED_REWRITES = 8
_START_METHOD = re.compile(rb"^(\s+)mp\.set_start_method\('fork'\)\s*$", re.MULTILINE)


class LavaCompatError(ImportError):
    """The installed lava no longer looks like the version this layer was written for."""


def patch_var_model_source(source: bytes) -> tuple[bytes, int]:
    """Return the var_model source with its mutable dataclass defaults made factories."""
    patched, count = _MUTABLE_DEFAULT.subn(
        rb"\1 = __import__('dataclasses').field(default_factory=ByteEncoder)", source
    )
    return patched, count


def patch_start_method_source(source: bytes) -> tuple[bytes, int]:
    """Return the multiprocessing source that accepts an already chosen 'fork' start method."""
    return _START_METHOD.subn(
        rb"\1if mp.get_start_method(allow_none=True) != 'fork': mp.set_start_method('fork')", source
    )


# module -> (rewrite, how many matches the rewrite must find, what it rewrites)
_REWRITES = {
    VAR_MODEL: (patch_var_model_source, EXPECTED_REWRITES, "'ByteEncoder = ByteEncoder()' defaults"),
    MULTIPROCESSING: (patch_start_method_source, 1, "mp.set_start_method('fork') calls"),
}


class _RewritingLoader(importlib.machinery.SourceFileLoader):
    def get_code(self, fullname):
        # Always compile from source: a cached .pyc holds the unpatched module.
        rewrite, expected, what = _REWRITES[fullname]
        patched, count = rewrite(self.get_data(self.path))
        if count != expected:
            raise LavaCompatError(
                f"{self.path}: expected {expected} {what} to rewrite, found {count}; "
                "lava changed, update converters/lava_compat.py"
            )
        return compile(patched, self.path, "exec", dont_inherit=True)


class _MissingTorchvisionModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        raise ImportError(
            f"{OBJECT_DETECTION}.{name} needs torchvision, which is not installed "
            "(no CPU build exists for torch 2.13); everything else in lava-dl works"
        )


class _PlaceholderLoader(importlib.abc.Loader):
    def create_module(self, spec):
        return _MissingTorchvisionModule(spec.name)

    def exec_module(self, module):
        module.__path__ = []  # a package, so `from .object_detection import x` fails cleanly


class LavaCompatFinder(importlib.abc.MetaPathFinder):
    """Import hook for the lava modules that break on Python 3.11 (and the start-method one)."""

    def find_spec(self, fullname, path, target=None):
        if fullname in _REWRITES:
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
            if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
                raise LavaCompatError(f"{fullname}: source file not found, cannot patch it")
            spec.loader = _RewritingLoader(fullname, spec.origin)
            return spec
        if fullname == OBJECT_DETECTION and importlib.util.find_spec("torchvision") is None:
            return importlib.util.spec_from_loader(fullname, _PlaceholderLoader(), is_package=True)
        return None


def install() -> None:
    """Put the hook first on sys.meta_path (once). Must run before lava is first imported."""
    if any(isinstance(f, LavaCompatFinder) for f in sys.meta_path):
        return
    if VAR_MODEL in sys.modules:
        raise LavaCompatError(
            f"{VAR_MODEL} was imported before converters.lava.compat.install(); "
            "import lmu2neuro or converters before lava"
        )
    sys.meta_path.insert(0, LavaCompatFinder())
