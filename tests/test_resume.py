"""Long runs (issue 14): checkpoints, mid-cell resume after SIGKILL with identical numbers, stored
models re-evaluated, live curves."""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from benchmark import evaluate as E
from benchmark.experiment import store

ROOT = Path(__file__).resolve().parents[1]
CELL = ["--dataset", "stoic", "--method", "stl", "--profile", "smoke", "--seeds", "0", "--data", "synthetic",
        "--set", "epochs=4", "synthetic_sizes=96x16x16", "--checkpoint-every", "0", "--no-progress", "--no-report", "--jobs", "1"]
LABEL = "smoke+epochs=4+synthetic_sizes=96x16x16"


def _run(results: Path, extra=(), stdout=subprocess.DEVNULL) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "reproduce.py", *CELL, "--results", str(results), *extra], cwd=ROOT,
                            stdout=stdout, stderr=subprocess.DEVNULL)


def _numbers(results: Path) -> tuple[pd.Series, pd.DataFrame]:
    cell = store.cell_dir(results, LABEL, "synthetic", "stoic", "stl", 0)
    metrics = pd.read_csv(cell / "metrics.csv").set_index(["task", "metric", "split"])["value"].sort_index()
    epochs = pd.read_csv(cell / "epochs.csv").drop(columns="seconds")
    return metrics, epochs


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The cell run once without interruption (its numbers do not depend on the backend: test_reliability)."""
    results = tmp_path_factory.mktemp("whole")
    assert _run(results).wait(timeout=600) == 0
    return _numbers(results)


@pytest.mark.parametrize("backend", ["loky", "dask"])
def test_a_cell_killed_mid_epoch_resumes_and_gives_the_uninterrupted_numbers(tmp_path, backend, uninterrupted):
    extra = ["--backend", backend] if backend == "dask" else []
    # Kill the second network (STL: covid, then severity) after its first saved epoch, mid-epoch.
    proc = _run(tmp_path / "killed", extra)
    cell = store.cell_dir(tmp_path / "killed", LABEL, "synthetic", "stoic", "stl", 0)
    last = cell / "checkpoints" / "severity" / "last.pt"
    deadline = time.time() + 300
    while not last.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the cell finished before it could be killed"
    time.sleep(0.2)
    for child in _descendants(proc.pid):
        child.send_signal(signal.SIGKILL)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not store.is_finished(cell) and (cell / "checkpoints" / "covid" / "result.json").is_file()
    with open(tmp_path / "resumed.log", "w") as out:
        assert _run(tmp_path / "killed", extra, out).wait(timeout=600) == 0
    said = (tmp_path / "resumed.log").read_text()       # a resume is said, per network, never silent
    assert f"[resume] {cell / 'checkpoints' / 'covid'}: this network finished before the interruption" in said
    assert re.search(rf"\[resume\] {re.escape(str(cell / 'checkpoints' / 'severity'))}: resuming at epoch [1-9]", said)
    whole, killed = uninterrupted, _numbers(tmp_path / "killed")
    pd.testing.assert_series_equal(whole[0], killed[0], check_exact=True)
    pd.testing.assert_frame_equal(whole[1], killed[1], check_exact=True)
    assert not list(cell.rglob("last.pt")) and len(list(cell.rglob("selected.pt"))) == 2   # bounded disk


def _descendants(pid: int):
    import psutil
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def test_a_stored_cell_re_evaluates_to_its_metrics_and_writes_live_curves(tmp_path, capsys):
    import reproduce
    args = ["--dataset", "ham10000", "--method", "hps", "--no-baseline", "--profile", "smoke", "--seeds", "0", "--data", "synthetic",
            "--no-progress", "--no-report", "--jobs", "1", "--results", str(tmp_path)]
    assert reproduce.main(args) == 0
    cell = store.cell_dir(tmp_path, "smoke", "synthetic", "ham10000", "hps", 0)
    assert E.main([str(cell), "--export", str(tmp_path / "pred")]) == 0
    again = pd.read_csv(cell / "evaluation_test.csv").set_index(["task", "metric"])["value"]
    stored = pd.read_csv(cell / "metrics.csv")
    stored = stored[stored.split == "test"].set_index(["task", "metric"])["value"]
    pd.testing.assert_series_equal(again.sort_index(), stored.sort_index(), check_exact=True)
    preds = __import__("numpy").load(tmp_path / "pred" / "predictions_test.npz")
    assert preds["segmentation"].shape[0] == len(preds["case_id"]) and preds["diagnosis"].shape[1] == 7
    events = list((cell / "tensorboard" / "joint").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 100
    assert E.main([str(tmp_path)]) == 2 and "not a stored cell" in capsys.readouterr().err
