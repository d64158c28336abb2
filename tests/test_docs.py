"""The commands and paths README.md and docs/ show still exist: each ``python reproduce.py`` line
parses with the current options, each ``python -m`` module is there and answers ``--help``, and each
repository path named in backticks exists — so the docs cannot drift from the code unnoticed."""
from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.experiment.cli import parse_args

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_START = r"(?:python reproduce\.py|python -m [\w.]+)"
_LINE = re.compile(rf"^({_START}(?: [^#\n]*)?)")          # a line of a code block (comments dropped)
_INLINE = re.compile(rf"`({_START}(?: [^`\n]*)?)`")         # inline code closed on the same line
_PATH = re.compile(r"`((?:benchmark|data|models|docs|tests|results)/[\w./-]*)`")


def _commands() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        for line in doc.read_text().replace("\\\n", " ").splitlines():     # shell continuations joined
            for command in _LINE.findall(line.strip()) + _INLINE.findall(line):
                found.append((doc.name, command.strip()))
    return sorted(set(found))


def _arguments(command: str) -> list[str]:
    """The options of a documented command: optional parts (``[--size 32 128]``) and ``...`` dropped."""
    text = re.sub(r"\[[^\]]*\]", " ", command).replace("...", " ")
    return shlex.split(text)[2:]


COMMANDS = _commands()
REPRODUCE = [(d, c) for d, c in COMMANDS if c.startswith("python reproduce.py")]
MODULES = sorted({c.split()[2] for _, c in COMMANDS if c.startswith("python -m ") and c.split()[2] != "pytest"})


def test_the_docs_show_commands():
    assert len(REPRODUCE) >= 10 and "benchmark.report" in MODULES       # the patterns still find them


@pytest.mark.parametrize("doc,command", REPRODUCE, ids=[c for _, c in REPRODUCE])
def test_documented_reproduce_command_parses(doc, command, capsys):
    args = _arguments(command)
    if "--help" in args or "help=1" in args:
        return                                     # shown to print help, nothing to parse
    if "--plugin" in args:       # parsed in its own process: this one's registries stay the suite's own
        run = subprocess.run([sys.executable, "reproduce.py", *args, "--help"], capture_output=True, text=True,
                             cwd=ROOT, timeout=300)   # --help last: every option before it is checked first
        assert run.returncode == 0, f"{doc}: `{command}` no longer parses: {run.stderr.strip()[-1500:]}"
        return
    try:
        parse_args(args)
    except SystemExit as exc:
        pytest.fail(f"{doc}: `{command}` no longer parses: {capsys.readouterr().err.strip()} ({exc})")


@pytest.mark.parametrize("module", MODULES)
def test_documented_module_exists_and_answers_help(module):
    assert importlib.util.find_spec(module) is not None, f"the docs name `python -m {module}`, which is gone"
    run = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, cwd=ROOT,
                         timeout=120)
    assert run.returncode == 0 and "usage" in run.stdout.lower(), run.stderr[-1500:]


def test_documented_paths_exist():
    missing = [(doc.name, path) for doc in DOCS for path in _PATH.findall(doc.read_text())
               if not any(ch in path for ch in "*<>") and not (ROOT / path).exists()
               and not path.startswith(("results/", "data/cache"))]       # made at run time, git-ignored
    assert not missing, f"paths the docs name that do not exist: {missing}"
