"""Stopping cleanly (issue 26), with real signals: SIGINT to the process group (Ctrl-C) or SIGTERM to the
runner leaves no claim behind, keeps every finished cell in the top-level CSVs and the report, prints one
line, exits 130 / 143, and the same command then finishes the rest; a second signal exits at once."""
from __future__ import annotations

import glob
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
GRID = ["--dataset", "stoic", "--method", "stl", "--method", "hps", "--profile", "smoke", "--seeds", "0", "1", "2",
        "--data", "synthetic", "--no-progress"]


def _finished(results: Path) -> list[str]:
    return glob.glob(f"{results}/runs/**/cell.json", recursive=True)


def _start_and_signal(results: Path, jobs: int, signals: list[tuple[int, bool]], gap: float = 0.0):
    """Start the grid, wait for its first finished cell, send ``signals`` ((signal, to the group?)) and
    return (return code, stderr, seconds from the first signal to the exit)."""
    proc = subprocess.Popen([sys.executable, "reproduce.py", *GRID, "--jobs", str(jobs), "--results", str(results)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 240
    while not _finished(results) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert proc.poll() is None, "the grid ended before it could be stopped"
    sent = time.time()
    for k, (sig, group) in enumerate(signals):
        if k:
            time.sleep(gap)
        os.killpg(proc.pid, sig) if group else proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    return proc.returncode, err, time.time() - sent


@pytest.mark.parametrize("sig,group,jobs,code", [(signal.SIGINT, True, 2, 130), (signal.SIGTERM, False, 1, 143)],
                         ids=["ctrl-c-jobs-2", "sigterm-serial"])
def test_a_stopped_run_keeps_what_finished_frees_the_rest_and_resumes(sig, group, jobs, code, tmp_path):
    results = tmp_path / "results"
    status, err, _ = _start_and_signal(results, jobs, [(sig, group)])
    assert status == code, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"stopped by {signal.Signals(sig).name}: "), err
    assert "cells finished and stored" in lines[0] and "the same command resumes them" in lines[0]
    assert not glob.glob(f"{results}/runs/**/claim.json", recursive=True)       # every claim released
    done = _finished(results)
    assert 1 <= len(done) < 6
    stored = pd.read_csv(results / "metrics.csv")
    assert len(stored[["method", "seed"]].drop_duplicates()) == len(done)     # the CSVs hold every finished cell
    assert (results / "report" / "table2.md").is_file()
    again = subprocess.run([sys.executable, "reproduce.py", *GRID, "--jobs", "2", "--results", str(results),
                            "--no-report"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    assert f"{len(done)} cell(s) already finished" in again.stdout and len(_finished(results)) == 6


def test_a_second_signal_exits_at_once(tmp_path):
    status, err, seconds = _start_and_signal(tmp_path / "results", 2, [(signal.SIGINT, True), (signal.SIGINT, False)],
                                             gap=0.3)
    assert status == 130 and "SIGINT again: exiting now" in err, err
    assert "Traceback" not in err
