"""The Python API (benchmark.api) and the installed package: the same cells as the command line."""
from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

from benchmark import api
from benchmark.experiment.cli import main as cli_main
from benchmark.experiment.profiles import ProfileError

ROOT = Path(__file__).resolve().parents[1]


def test_run_grid_gives_the_command_lines_cells(tmp_path):
    outcomes = api.run_grid(["stoic"], ["stl", "hps"], seeds=[0], profile="smoke", data="synthetic",
                            results=tmp_path / "api", log=lambda _: None)
    assert [o.status for o in outcomes] == ["finished", "finished"]
    assert cli_main(["--dataset", "stoic", "--method", "stl", "--method", "hps", "--seeds", "0", "--profile", "smoke",
                     "--data", "synthetic", "--results", str(tmp_path / "cli"), "--no-progress", "--no-report",
                     "--jobs", "1"]) == 0
    ours, theirs = api.load_results(tmp_path / "api"), api.load_results(tmp_path / "cli")
    assert set(ours["method"]) == {"stl", "hps"} and len(ours) == len(theirs) > 0
    key = ["dataset", "method", "weighting", "seed", "split", "task", "metric"]
    both = ours.merge(theirs, on=key, suffixes=("_api", "_cli"))
    assert len(both) == len(ours)
    assert (both["value_api"] == both["value_cli"]).all()       # deterministic smoke cells: the same numbers
    files = api.render_report(tmp_path / "api", plots=False)
    assert (tmp_path / "api" / "report" / "table2.md") in files


def test_run_grid_rejects_an_unknown_profile(tmp_path):
    with pytest.raises(ProfileError, match="unknown profile 'fast'"):
        api.run_grid(["stoic"], ["stl"], seeds=[0], profile="fast", results=tmp_path)


@pytest.mark.skipif(sys.platform == "win32", reason="venv layout")
def test_editable_install_gives_the_console_command(tmp_path):
    """``pip install -e .`` in a fresh venv (the suite's packages from this machine's site-packages, so
    nothing is downloaded) and ``ctan-bench --dry-run`` from outside the tree."""
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=True)
    pip = subprocess.run([env_dir / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", "-e", ROOT],
                         capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stderr[-2000:]
    run = subprocess.run([env_dir / "bin" / "ctan-bench", "--dataset", "stoic", "--method", "hps", "--no-baseline", "--seeds", "0",
                          "--profile", "smoke", "--data", "synthetic", "--dry-run"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.startswith("profile smoke") and "1 cell\n" in run.stdout
