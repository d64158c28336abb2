"""Scale-out (issue 6): Dask LocalCluster equals serial, SIGKILLed workers, determinism, device leases."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from benchmark.experiment import store
from benchmark.experiment.cell import resolve_config
from benchmark.experiment.parallel import lease_device
from benchmark.experiment.profiles import get_profile
from benchmark.experiment.runner import run_cell

ROOT = Path(__file__).resolve().parents[1]
KEY = ["dataset", "method", "seed", "task", "metric", "split"]


def _values(results: Path) -> pd.Series:
    df = pd.read_csv(results / "metrics.csv")
    return df.set_index(KEY)["value"].sort_index()


def test_same_cell_same_seed_gives_identical_metrics_on_cpu():
    cfg = resolve_config("ham10000", "ctan", 3, get_profile("smoke"), "synthetic")
    first, epochs1, _ = run_cell(cfg)
    second, epochs2, _ = run_cell(cfg)
    assert [r["value"] for r in first] == [r["value"] for r in second]
    assert [r["train_loss"] for r in epochs1] == [r["train_loss"] for r in epochs2]
    other = run_cell(resolve_config("ham10000", "ctan", 4, get_profile("smoke"), "synthetic"))[0]
    assert [r["value"] for r in other] != [r["value"] for r in first]   # the seed matters


def test_sigkilled_workers_lose_no_finished_cell_and_the_rerun_completes(tmp_path):
    args = [sys.executable, "reproduce.py", "--dataset", "stoic", "--dataset", "ham10000", "--profile", "smoke",
            "--seeds", "0", "--data", "synthetic", "--results", str(tmp_path), "--no-progress", "--no-report",
            "--jobs", "2", "--threads", "1"]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    parent = psutil.Process(proc.pid)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if list((tmp_path / "runs").rglob("seed*/metrics.csv")):
            break
        time.sleep(0.2)
    workers = [c for c in parent.children(recursive=True) if "python" in c.name().lower()]
    assert proc.poll() is None and workers, "the grid ended before a worker could be killed"
    for w in workers:
        w.send_signal(signal.SIGKILL)
    proc.wait(timeout=300)
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("seed*/metrics.csv")}
    assert 1 <= len(before) < 8
    subprocess.run(args, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)
    df = pd.read_csv(tmp_path / "metrics.csv")
    assert len(set(df[["dataset", "method", "seed"]].itertuples(index=False, name=None))) == 8
    assert not df.duplicated(KEY).any()
    for path, mtime in before.items():
        assert path.stat().st_mtime_ns == mtime


def test_each_running_cell_holds_its_own_device(tmp_path):
    devices = ("cuda:0", "cuda:1")
    with lease_device(devices, tmp_path) as first:
        with lease_device(devices, tmp_path) as second:
            assert {first, second} == set(devices)
    with lease_device(devices, tmp_path) as again:
        assert again == "cuda:0"                      # released leases are reused
    with lease_device(("cpu",), tmp_path) as cpu:
        assert cpu == "cpu"


def test_an_interrupted_write_leaves_the_old_file_intact(tmp_path, monkeypatch):
    target = tmp_path / "metrics.csv"
    store.atomic_write(target, "old\n")

    def crash(src, dst):
        raise KeyboardInterrupt("killed between write and rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        store.atomic_write(target, "new, half written")
    assert target.read_text() == "old\n"
