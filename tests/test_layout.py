"""The import rule (docs/ARCHITECTURE.md), checked by reading the source, not by importing it.

- each stage package imports only the packages below it (LAYERS);
- no cycle between modules, lazy imports inside functions included;
- no private name (``_x``) of one module used by another;
- importing the Lava backend installs its compatibility layer; nothing else does.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OURS = ("lmu2neuro", "converters", "hardware_profiles")

# package -> the packages its modules may import (its own included). Read top to bottom: the core
# is the bottom, converters sit on the core alone, the pipeline, the report and the CLI on top.
CORE = "lmu2neuro.core"
LAYERS: dict[str, set[str]] = {
    "lmu2neuro.core": {CORE},
    "converters": {"converters", CORE},
    "hardware_profiles": {"hardware_profiles"},
    "lmu2neuro.models": {"lmu2neuro.models", CORE},
    "lmu2neuro.datasets": {"lmu2neuro.datasets", CORE},
    "lmu2neuro.analysis": {"lmu2neuro.analysis", CORE, "hardware_profiles"},
    "lmu2neuro.deploy": {"lmu2neuro.deploy", "lmu2neuro.models", CORE},
    "lmu2neuro.training": {"lmu2neuro.training", "lmu2neuro.deploy", "lmu2neuro.models", "lmu2neuro.datasets", CORE},
    "lmu2neuro.reports": {"lmu2neuro.reports", "lmu2neuro.analysis", "converters", CORE, "hardware_profiles"},
    "lmu2neuro.pipeline": {"lmu2neuro.pipeline", "lmu2neuro.reports", "lmu2neuro.analysis", "lmu2neuro.training",
                           "lmu2neuro.deploy", "lmu2neuro.models", "lmu2neuro.datasets", "converters", CORE},
}
TOP = {"lmu2neuro", "lmu2neuro.__main__", "lmu2neuro.cli"}  # the Python API and the command line: anything below


def _modules() -> dict[str, Path]:
    mods = {}
    for top in OURS:
        for path in (ROOT / top).rglob("*.py"):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts.pop()
            mods[".".join(parts)] = path
    return mods


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The module of ours that `name` (a module, or module.attribute) refers to."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(mod: str, path: Path) -> list[tuple[str, str | None, int]]:
    """(imported module, imported attribute or None, line) for every import of ours in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in OURS:
                    out.append((a.name, None, node.lineno))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] not in OURS:
                continue
            for a in node.names:
                sub = f"{base}.{a.name}"
                out.append((sub, None, node.lineno) if sub in MODULES else (base, a.name, node.lineno))
    return out


def _layer(mod: str) -> str | None:
    best = None
    for pkg in LAYERS:
        if (mod == pkg or mod.startswith(pkg + ".")) and (best is None or len(pkg) > len(best)):
            best = pkg
    return best


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for mod, path in MODULES.items():
        for name, _, _ in _imports(mod, path):
            target = _resolve(name)
            if target and target != mod:
                graph[mod].add(target)
    return graph


def test_the_scan_sees_the_package():
    assert {"lmu2neuro.core.fixed_point", "lmu2neuro.core.executor", "converters.nir.read",
            "converters.lava.builder", "lmu2neuro.cli"} <= set(MODULES)
    g = _graph()
    # a lazy import inside a function counts as much as one at the top
    assert "converters.lava.builder" in g["lmu2neuro.pipeline.simulate"]


def test_each_package_imports_only_the_layers_below_it():
    bad = []
    for mod, path in MODULES.items():
        if mod in TOP or mod.startswith("lmu2neuro.cli."):
            continue
        layer = _layer(mod)
        assert layer is not None, f"{mod}: in no layer of the import rule; add its package to LAYERS"
        for name, _, line in _imports(mod, path):
            target = _resolve(name) or name
            if target in ("lmu2neuro",):  # the package root: only __version__ is read from it
                continue
            if _layer(target) not in LAYERS[layer]:
                bad.append(f"{path.relative_to(ROOT)}:{line}: {mod} imports {target}")
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_no_import_cycles_between_modules():
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles = []
    counter = [0]

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_no_private_names_across_modules():
    bad = []
    for mod, path in MODULES.items():
        imported_modules = {}
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for name, attr, line in _imports(mod, path):
            if attr and attr.startswith("_") and not attr.startswith("__"):
                bad.append(f"{path.relative_to(ROOT)}:{line}: imports {name}.{attr}")
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in OURS:
                for a in node.names:
                    if f"{node.module}.{a.name}" in MODULES:
                        imported_modules[a.asname or a.name] = f"{node.module}.{a.name}"
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name in MODULES and a.asname:
                        imported_modules[a.asname] = a.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in imported_modules and node.attr.startswith("_")
                    and not node.attr.startswith("__")):
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: uses {imported_modules[node.value.id]}.{node.attr}")
    assert not bad, "private names used across modules:\n" + "\n".join(bad)


def test_the_rule_catches_a_violation(tmp_path, monkeypatch):
    """The checks above can fail: a core module that imports a converter is reported."""
    fake = tmp_path / "lmu2neuro" / "core" / "bad.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("from converters.nir.read import read_intnet\nfrom lmu2neuro.core.intnet import _x\n")
    imports = _imports("lmu2neuro.core.bad", fake)
    assert ("converters.nir.read", None, 1) in imports or ("converters.nir.read", "read_intnet", 1) in imports
    assert _layer(_resolve("converters.nir.read")) not in LAYERS["lmu2neuro.core"]
    assert ("lmu2neuro.core.intnet", "_x", 2) in imports


@pytest.mark.parametrize("code, installed", [
    ("import lmu2neuro.core.executor, lmu2neuro.models.lmuformer, converters, converters.nir.read", False),
    ("import converters.lava", True),
])
def test_only_the_lava_backend_installs_the_compatibility_layer(code, installed):
    probe = (f"{code}\nimport sys\n"
             "print(any(type(f).__name__ == 'LavaCompatFinder' for f in sys.meta_path), "
             "any(m == 'lava' or m.startswith('lava.') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    finder, lava_loaded = out.stdout.split()
    assert finder == str(installed)
    assert lava_loaded == "False"  # installing the layer imports no Lava module by itself


# The neuron registry (lmu2neuro/core/neurons and its two halves outside the core: the QAT twins in
# models/neurons.py, the Lava processes in converters/lava/neuron_processes.py and their folders):
# only these may name a neuron's type to decide what to do. Everything else asks the registry
# (Population.kind, neurons.kind(...), NEURON_MODULES, process_for).
NEURON_TYPE_NAMES = {"LoihiLIF", "GatedLIF", "lif_step"}
NEURON_REGISTRY = ("lmu2neuro/core/neurons/", "lmu2neuro/core/fixed_point.py", "lmu2neuro/models/neurons.py",
                   "converters/lava/neuron_processes.py", "converters/lava/procs/gated_lif/",
                   # Lava's own LIF checked against the CUBA kind's step (the independent check)
                   "converters/lava/check.py")


def _type_switches(source: str) -> list[tuple[int, str]]:
    """(line, what) for every isinstance(..., <a neuron type>) and every use of lif_step."""
    def names(node):
        return {n.id if isinstance(n, ast.Name) else n.attr for n in ast.walk(node)
                if isinstance(n, (ast.Name, ast.Attribute))}

    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance" \
                and len(node.args) == 2 and names(node.args[1]) & NEURON_TYPE_NAMES:
            found.append((node.lineno, f"isinstance(..., {sorted(names(node.args[1]) & NEURON_TYPE_NAMES)[0]})"))
        elif isinstance(node, ast.Call) and names(node.func) & {"lif_step"}:
            found.append((node.lineno, "lif_step(...)"))
    return found


def test_nothing_outside_the_neuron_registry_switches_on_neuron_types():
    bad = []
    for path in MODULES.values():
        rel = path.relative_to(ROOT).as_posix()
        if rel.startswith(NEURON_REGISTRY):
            continue
        bad += [f"{rel}:{line}: {what}" for line, what in _type_switches(path.read_text(encoding="utf-8"))]
    assert not bad, "neuron types switched on outside the registry (use Population.kind / the registry):\n" + \
        "\n".join(bad)


def test_the_neuron_type_scan_catches_a_violation():
    planted = ("from lmu2neuro.models.neurons import LoihiLIF\nfrom lmu2neuro.core import fixed_point as fx\n"
               "def f(m, u):\n    if isinstance(m, (LoihiLIF, int)):\n        return fx.lif_step(u, u, u, 0, 0, 1)\n"
               "    return isinstance(m, str)\n")
    assert _type_switches(planted) == [(4, "isinstance(..., LoihiLIF)"), (5, "lif_step(...)")]
