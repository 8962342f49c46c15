"""The Python 3.11 compatibility layer for lava-nc 0.10 / lava-dl 0.6.

These tests fail loudly when an upstream change makes the patch unnecessary (Python or lava
fixed the defaults) or wrong (the rewrite no longer matches the code).
"""

import dataclasses
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import converters.lava  # noqa: F401  (the compatibility layer before any Lava import)
from converters.lava import compat as lava_compat


def _var_model_path() -> Path:
    spec = importlib.util.find_spec("lava.magma.compiler")
    return Path(spec.submodule_search_locations[0]) / "var_model.py"


def test_unpatched_var_model_still_fails_on_this_python():
    """If this starts passing without the patch, the patch is no longer needed: remove it."""
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('var_model_unpatched', {str(_var_model_path())!r})\n"
        "m = importlib.util.module_from_spec(spec); sys.modules[spec.name] = m\n"
        "spec.loader.exec_module(m)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode != 0, "lava's var_model now imports unpatched: remove the patch"
    assert "mutable default" in out.stderr


def test_rewrite_matches_exactly_the_expected_defaults():
    source = _var_model_path().read_bytes()
    patched, count = lava_compat.patch_var_model_source(source)
    assert count == lava_compat.EXPECTED_REWRITES
    assert b"= ByteEncoder()" not in patched


def test_patched_module_gives_independent_defaults():
    from lava.magma.compiler.var_model import AxonEncoder, ChipEncoder, CoreEncoder

    for cls in (CoreEncoder, ChipEncoder, AxonEncoder):
        a, b = cls(), cls()
        first = dataclasses.fields(cls)[0].name
        assert getattr(a, first) == getattr(b, first)  # same default value ...
        assert getattr(a, first) is not getattr(b, first)  # ... no longer one shared object


def test_lava_dl_imports_and_object_detection_explains_itself():
    import lava.lib.dl.netx  # noqa: F401
    import lava.lib.dl.slayer as slayer

    if importlib.util.find_spec("torchvision") is None:
        with pytest.raises(ImportError, match="needs torchvision"):
            slayer.obd.models  # noqa: B018
    # slayer's own neuron code works
    assert hasattr(slayer.neuron, "cuba")


def test_lava_imports_in_a_fresh_interpreter_only_through_the_project():
    """Lava alone fails on 3.11; importing `converters.lava` first makes it work. Both halves matter."""
    bare = subprocess.run(
        [sys.executable, "-c", "import lava.magma.compiler.var_model"], capture_output=True, text=True
    )
    assert bare.returncode != 0 and "mutable default" in bare.stderr
    fixed = subprocess.run(
        [sys.executable, "-c", "import converters.lava, lava.magma.compiler.var_model, lava.lib.dl.netx"],
        capture_output=True,
        text=True,
    )
    assert fixed.returncode == 0, fixed.stderr


def test_install_refuses_after_lava_was_imported_unpatched(monkeypatch):
    monkeypatch.setattr(sys, "meta_path", [f for f in sys.meta_path if not isinstance(f, lava_compat.LavaCompatFinder)])
    monkeypatch.setitem(sys.modules, lava_compat.VAR_MODEL, object())
    with pytest.raises(lava_compat.LavaCompatError, match="before converters.lava.compat.install"):
        lava_compat.install()


def test_compat_touches_nothing_outside_lava():
    finder = next(f for f in sys.meta_path if isinstance(f, lava_compat.LavaCompatFinder))
    assert finder.find_spec("json", None) is None
    assert finder.find_spec("dataclasses", None) is None
    assert finder.find_spec("lava.proc.lif.process", None) is None


def test_start_method_rewrite_matches_once():
    spec = importlib.util.find_spec("lava.magma.runtime.message_infrastructure")
    path = Path(spec.submodule_search_locations[0]) / "multiprocessing.py"
    patched, count = lava_compat.patch_start_method_source(path.read_bytes())
    assert count == 1
    assert b"get_start_method(allow_none=True) != 'fork'" in patched


def test_lava_runs_after_tqdm_fixed_the_start_method():
    """tqdm's lock fixes multiprocessing's start method; unpatched lava then fails to import."""
    code = (
        "from tqdm import tqdm\n"
        "for _ in tqdm(range(2), disable=False): pass\n"
        "import converters.lava\n"
        "from converters.lava.check import tiny_network_check\n"
        "assert tiny_network_check(steps=10).matches\n"
        "print('ran')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "ran" in out.stdout, out.stderr[-2000:]
