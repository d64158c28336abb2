"""The layout (issue 10): packages with docstrings, no import cycles, torch-free names and report,
one source of truth for every name, the documented entry points."""
from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.training import metrics as M
from data import DATASETS
from data.spec import METRICS, TASK_KINDS
from models.catalog import BASELINE, METHODS

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("benchmark", "data", "models")


def _modules() -> dict[str, Path]:
    """Every module of our packages, by dotted name (a package by its own name)."""
    out = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(path: Path, name: str, modules: dict[str, Path]) -> set[str]:
    """Our modules that ``path`` imports at import time (not inside functions, not for type checking)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def visit(body):
        for node in body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, (ast.If, ast.Try)):
                visit(node.body + node.orelse + getattr(node, "finalbody", [])
                      + [n for h in getattr(node, "handlers", []) for n in h.body])
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
                # `from pkg import sub` needs the module pkg.sub; `from pkg import name` needs pkg itself
                found.update(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names)
    visit(tree.body)
    # A parent package being initialised is not an edge: Python puts it in sys.modules first.
    return {m for m in found if m in modules and m != name}


def test_no_import_cycles_between_our_modules():
    modules = _modules()
    graph = {name: _imports(path, name, modules) for name, path in modules.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                dfs(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            dfs(name)


# The one module that imports by name at run time: it loads the *user's* plug-ins (--plugin,
# $CTAN_PLUGINS, entry points), never one of ours -- the registries import ours statically.
USER_CODE_LOADER = "benchmark.plugins"


def test_no_importlib_between_our_modules():
    for name, path in _modules().items():
        text = path.read_text()
        if name == USER_CODE_LOADER:
            literal = re.findall(r"import_module\(\s*[\"'](\w+)", text)
            assert not [m for m in literal if m in PACKAGES], f"{name} imports one of ours by name: {literal}"
            continue
        assert "importlib.import_module" not in text, name


def test_every_package_says_what_lives_in_it():
    for init in [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("__init__.py")]:
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc) > 40, f"{init.relative_to(ROOT)} has no docstring saying what lives there"


TORCH_FREE = ("benchmark.report.write", "benchmark.report.__main__", "benchmark.experiment.cli", "data",
              "data.prepare", "models.catalog")


def test_the_report_the_cli_and_the_names_import_no_torch():
    code = ("import importlib, sys\n"
            f"for m in {TORCH_FREE!r}:\n"
            "    importlib.import_module(m)\n"
            "    if 'torch' in sys.modules: print(m); break\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"importing {out.stdout.strip()} loads torch"


def test_the_method_catalog_names_exactly_the_registered_models():
    from models.registry import MODELS
    assert list(MODELS) == list(METHODS) and BASELINE in METHODS


def test_the_metric_table_is_the_one_source_of_names_and_directions():
    per_sample = {m for kind in TASK_KINDS.values() for m in kind.metrics}
    # OpenKBP's challenge scores are scored on whole volumes (training/volumes.py), not per sample
    assert set(METRICS) - per_sample == {"dose_score", "dvh_score"}
    for name in per_sample:
        assert callable(getattr(M, name)), f"no function computes metric {name!r}"
    for entry in DATASETS.values():
        for task in entry.spec.tasks:
            assert task.metric in METRICS and task.higher_is_better == METRICS[task.metric].higher_is_better


def test_the_kind_catalog_names_exactly_the_registered_kinds():
    from benchmark.training.kinds import KINDS
    assert list(KINDS) == list(TASK_KINDS)
    assert all(KINDS[name].info is TASK_KINDS[name] for name in KINDS)


@pytest.mark.parametrize("name", list(DATASETS))
def test_every_dataset_has_a_reader_following_the_protocol(name):
    reader = DATASETS[name].reader
    for attr in ("VERSION", "LAYOUT", "SUBDIRS", "looks_like", "inventory", "params", "read", "describe"):
        assert hasattr(reader, attr), f"{reader.__name__} lacks {attr}"
    assert DATASETS[name].spec.name == name
    assert isinstance(reader.params(32), dict) and reader.params(32) != reader.params(64)


@pytest.mark.parametrize("entry", ["reproduce.py", "-m data.prepare", "-m benchmark.report"])
def test_documented_entry_points_answer_help(entry):
    out = subprocess.run([sys.executable, *entry.split(), "--help"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "usage:" in out.stdout
