"""The Python API: `import lmu2neuro` is light, and the README's example runs as written."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _readme_example() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_every_api_function_has_a_docstring():
    import lmu2neuro

    for name in lmu2neuro.__all__:
        if name.startswith("__"):
            continue
        fn = getattr(lmu2neuro, name)
        assert callable(fn) and fn.__doc__ and len(fn.__doc__.split()) > 8, name


def test_importing_the_api_loads_no_heavy_library():
    code = ("import sys, lmu2neuro\n"
            "print(sorted(m for m in ('torch', 'lava', 'nir', 'snntorch', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


@pytest.mark.lava
def test_the_readme_example_runs(tmp_path):
    code = _readme_example()
    assert "lmu2neuro.train(" in code and "lmu2neuro.simulate(" in code
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert "Lava = reference on 1.0 of samples" in out.stdout, out.stdout
    assert lines[-1] == "loihi2" and "['loihi1', 'cpu']" in out.stdout
    for name in ("model.nir", "traffic.json", "report/report.json", "best.pt"):
        assert (tmp_path / "runs" / "api" / name).is_file(), name
