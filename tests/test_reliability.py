"""Reliability (issue 16): numbers independent of how the grid was run, runners sharing a folder,
store and report failures that lose nothing, CLI validation, divergence."""
from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import reproduce
from benchmark import atomic
from benchmark.experiment import claims, store
from benchmark.experiment.cell import resolve_config
from benchmark.experiment.precision import cpu_info
from benchmark.experiment.profiles import get_profile

ROOT = Path(__file__).resolve().parents[1]
KEY = ["dataset", "method", "seed", "task", "metric", "split"]
SMOKE = ["--dataset", "stoic", "--profile", "smoke", "--seeds", "0", "--data", "synthetic", "--no-progress"]


def _values(results: Path) -> pd.Series:
    return pd.read_csv(results / "metrics.csv").set_index(KEY)["value"].sort_index()


def test_numbers_do_not_depend_on_jobs_or_backend(tmp_path):
    """Each cell runs with its profile's thread count, whatever --jobs, the backend or the cores."""
    runs = {"serial": ["--jobs", "1"], "loky": ["--jobs", "2"], "dask": ["--jobs", "2", "--backend", "dask"]}
    for name, extra in runs.items():
        assert reproduce.main(SMOKE + ["--no-report", "--results", str(tmp_path / name)] + extra) == 0
    serial = _values(tmp_path / "serial")
    assert len(serial) > 0
    for name in ("loky", "dask"):
        pd.testing.assert_series_equal(serial, _values(tmp_path / name), check_exact=True)
    meta = (store.cell_dir(tmp_path / "dask", "smoke", "synthetic", "stoic", "ctan", 0) / "cell.json").read_text()
    assert '"threads": 1' in meta
    from benchmark.experiment.precision import describe_cpu
    assert json.loads(meta)["cpu"] == describe_cpu()           # which CPU kind made the numbers


def test_a_thread_count_is_part_of_the_cells_identity(tmp_path, capsys):
    assert reproduce.main(SMOKE + ["--method", "hps", "--no-baseline", "--threads", "2", "--dry-run", "--results", str(tmp_path)]) == 0
    assert "profile smoke+threads=2" in capsys.readouterr().out
    one = resolve_config("stoic", "hps", 0, get_profile("smoke"), "synthetic")
    from benchmark.experiment.profiles import with_overrides
    two = resolve_config("stoic", "hps", 0, with_overrides(get_profile("smoke"), {"threads": "2"}), "synthetic")
    assert one.hash() != two.hash() and one.directory(tmp_path) != two.directory(tmp_path)


def _runner(results: Path, log: Path) -> subprocess.Popen:
    args = [sys.executable, "reproduce.py", *SMOKE, "--results", str(results), "--no-report", "--jobs", "1"]
    return subprocess.Popen(args, cwd=ROOT, stdout=open(log, "w"), stderr=subprocess.STDOUT)


def test_two_runners_on_one_folder_compute_each_cell_once(tmp_path):
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    procs = [_runner(tmp_path / "results", log) for log in logs]
    assert [p.wait(timeout=600) for p in procs] == [0, 0]
    computed = []
    for log in logs:
        text = log.read_text()
        computed.append(set(re.findall(r"\] (\S+ seed \d+): finished \(", text)))
    assert not (computed[0] & computed[1]), computed
    assert len(computed[0] | computed[1]) == 4
    df = pd.read_csv(tmp_path / "results" / "metrics.csv")
    assert len(set(df[["method", "seed"]].itertuples(index=False, name=None))) == 4
    assert not df.duplicated(KEY).any()
    assert not list((tmp_path / "results" / "runs").rglob(claims.CLAIM))


def test_a_stale_claim_is_taken_over_and_a_live_one_is_not(tmp_path):
    cell = tmp_path / "cell"
    first = claims.try_claim(cell)
    assert first is not None and claims.try_claim(cell) is None            # held by a live process
    first._stop.set()
    old = time.time() - 2 * claims.STALE
    os.utime(cell / claims.CLAIM, (old, old))                               # its heartbeat stopped
    second = claims.try_claim(cell)
    assert second is not None and second.held() and not first.held()
    first.release()                                                         # not its claim any more
    assert (cell / claims.CLAIM).is_file()
    second.release()
    assert not (cell / claims.CLAIM).exists()


def test_results_that_cannot_hold_results_give_one_clear_error(tmp_path, capsys, monkeypatch):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert reproduce.main(SMOKE + ["--results", str(afile)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err

    def read_only(src, dst):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(dst))
    monkeypatch.setattr(atomic.os, "replace", read_only)
    assert reproduce.main(SMOKE + ["--results", str(tmp_path / "ro")]) == 2
    err = capsys.readouterr().err
    assert "read-only" in err and "Traceback" not in err
    assert not list((tmp_path / "ro").glob(".*.tmp"))


def test_a_cell_that_trained_but_could_not_be_stored_says_so_and_loses_nothing(tmp_path, monkeypatch):
    results = tmp_path / "results"
    assert reproduce.main(SMOKE + ["--method", "stl", "--no-report", "--results", str(results), "--jobs", "1"]) == 0
    finished = store.cell_dir(results, "smoke", "synthetic", "stoic", "stl", 0) / "metrics.csv"
    before = finished.read_bytes()
    real = atomic.write_text

    def full_for_ctan(path, text):
        if "ctan" in str(path) and Path(path).name == "epochs.csv":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, text)
    monkeypatch.setattr(store, "atomic_write", full_for_ctan)
    from benchmark.experiment import runner
    outcomes = runner.run_grid([resolve_config("stoic", m, 0, get_profile("smoke"), "synthetic")
                                for m in ("stl", "hps", "ctan")], str(results), progress=False, log=lambda _: None)
    by = {o.config.method: o for o in outcomes}
    assert by["stl"].status == "skipped" and by["hps"].status == "finished"
    assert by["ctan"].status == "failed"
    assert "trained but could not be stored" in by["ctan"].message and "no space left" in by["ctan"].message
    assert finished.read_bytes() == before
    assert not list(results.rglob(".*.tmp")) and not list(results.rglob(claims.CLAIM))


def test_a_kill_while_rendering_leaves_no_truncated_report_file(tmp_path):
    from tests.test_report import _epochs, metrics_rows
    df = metrics_rows()
    df.to_csv(tmp_path / "metrics.csv", index=False)
    _epochs(df).to_csv(tmp_path / "epochs.csv", index=False)
    args = [sys.executable, "-m", "benchmark.report", "--metrics", str(tmp_path / "metrics.csv"), "--compare-paper"]
    subprocess.run(args + ["--out", str(tmp_path / "full")], cwd=ROOT, check=True, capture_output=True, timeout=300)
    complete = {p.name: p.read_bytes() for p in (tmp_path / "full").iterdir()}
    out = tmp_path / "killed"
    for delay in (1.0, 2.0, 3.0, 4.0):
        proc = subprocess.Popen(args + ["--out", str(out)], cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        for path in out.iterdir() if out.is_dir() else ():
            if not path.name.startswith("."):
                assert path.read_bytes() == complete[path.name], f"{path.name} truncated after a kill at {delay} s"


@pytest.mark.parametrize("args,message", [
    (["--seeds", "-1"], "seeds are 0 or more"),
    (["--jobs", "0"], "0 is below 1"),
    (["--jobs", "-1"], "-1 is below 1"),
    (["--threads", "0"], "0 is below 1"),
    (["--seeds", "x"], "not a whole number"),
])
def test_the_cli_rejects_bad_values(args, message, capsys):
    with pytest.raises(SystemExit) as info:
        reproduce.main(args + ["--dry-run"])
    assert info.value.code == 2 and message in capsys.readouterr().err


def test_duplicate_seeds_run_once_and_say_so(tmp_path, capsys):
    assert reproduce.main(SMOKE + ["--seeds", "0", "0", "1", "--dry-run", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "repeats a seed; running 0 1" in out and "8 cells" in out


def test_a_diverging_run_fails_naming_task_and_epoch_and_stores_nothing(tmp_path, capsys):
    status = reproduce.main(SMOKE + ["--method", "hps", "--no-baseline", "--set", "lr=1e6", "--no-report", "--results", str(tmp_path),
                                     "--jobs", "1"])
    assert status == 1
    err = capsys.readouterr().err
    assert "Diverged" in err and "task 'covid'" in err and "epoch 0" in err
    assert not list(tmp_path.rglob("metrics.csv")) or pd.read_csv(tmp_path / "metrics.csv").empty


def test_finished_cells_made_with_other_settings_are_not_reused(tmp_path, capsys):
    args = SMOKE + ["--method", "hps", "--no-baseline", "--no-report", "--results", str(tmp_path), "--jobs", "1"]
    assert reproduce.main(args) == 0
    meta = store.cell_dir(tmp_path, "smoke", "synthetic", "stoic", "hps", 0) / "cell.json"
    meta.write_text(meta.read_text().replace('"config_hash": "', '"config_hash": "0'))  # as if the profile changed
    assert reproduce.main(args) == 2
    assert "made with other settings" in capsys.readouterr().err
    assert reproduce.main(args + ["--force"]) == 0


def test_a_validation_spike_warns_but_a_training_spike_stops():
    """Divergence is judged on training losses: a validation loss 200× its first epoch's (seen on real
    OpenKBP after three healthy epochs) only warns — model selection skips that epoch — while the same
    jump in a training loss, or an absurd or NaN validation loss, stops the run naming task and epoch."""
    import types

    from benchmark.training.loop import Diverged, NonFiniteLoss, _check_losses
    tasks = (types.SimpleNamespace(name="segmentation"), types.SimpleNamespace(name="dose"))
    prof = types.SimpleNamespace(lr=3e-3)
    first, spike = np.array([0.25, 0.03]), np.array([0.2, 6.3])
    with pytest.warns(UserWarning, match="validation loss of task 'dose' in epoch 3 is 6.3, 210 times"):
        _check_losses("openkbp", 3, tasks, "validation", spike, first, prof, 32)
    with pytest.raises(Diverged, match="training loss of task 'dose' in epoch 3"):
        _check_losses("openkbp", 3, tasks, "training", spike, first, prof, 32)
    with pytest.raises(Diverged, match="far beyond"):
        _check_losses("openkbp", 3, tasks, "validation", np.array([0.2, 2e4]), first, prof, 32)
    with pytest.raises(NonFiniteLoss, match="validation loss of task 'dose' is nan"):
        _check_losses("openkbp", 3, tasks, "validation", np.array([0.2, np.nan]), first, prof, 32)
    _check_losses("openkbp", 3, tasks, "validation", np.array([0.2, 0.05]), first, prof, 32)   # healthy: silent


def test_weighting_is_an_axis_of_the_grid(tmp_path):
    """--weighting (repeatable) joins --method: each (method, weighting) is its own cell, folder and CSV
    rows; STL ignores the weighting and runs once. Under bf16 autocast, as the quick profile trains,
    where the CPU has native bf16; elsewhere bf16 is emulated (14-30x slower, docs/performance.md) and
    the bf16 path of every weighting is covered by its one-step test (test_weightings.py)."""
    amp = "true" if cpu_info()["native_bf16"] else "false"
    args = SMOKE + ["--method", "stl", "--method", "hps", "--weighting", "pcgrad", "--weighting", "uw",
                    "--set", f"amp={amp}", "--results", str(tmp_path), "--jobs", "1"]
    assert reproduce.main(args) == 0
    m = pd.read_csv(tmp_path / "metrics.csv")
    assert set(zip(m["method"], m["weighting"])) == {("stl", "none"), ("hps", "pcgrad"), ("hps", "uw")}
    assert (tmp_path / "report" / "extended.md").is_file()
    iv = pd.read_csv(tmp_path / "report" / "extended_intervals.csv")     # every extended row has its interval
    assert set(zip(iv["method"], iv["weighting"])) == {("hps+pcgrad", "pcgrad"), ("hps+uw", "uw")}
    assert (iv["delta_mean_ci_low"] <= iv["delta_mean_ci_high"]).all()


def test_no_weights_stores_the_cell_without_its_checkpoints(tmp_path, capsys):
    """--no-weights (the extended grid's 848 cells would keep ~60 GB of weights): the stored cell has
    its metrics and no checkpoint; a re-run skips it; re-scoring it says why it cannot."""
    from benchmark import evaluate

    args = SMOKE + ["--method", "hps", "--no-baseline", "--no-weights", "--no-report", "--results", str(tmp_path), "--jobs", "1"]
    assert reproduce.main(args) == 0
    cell = store.cell_dir(tmp_path, "smoke", "synthetic", "stoic", "hps", 0, "dwa")
    assert store.is_finished(cell) and not (cell / "checkpoints").exists()
    before = (cell / "metrics.csv").read_text()
    assert reproduce.main(args) == 0 and (cell / "metrics.csv").read_text() == before
    assert "1 cell(s) already finished" in capsys.readouterr().out
    assert evaluate.main([str(cell)]) == 2
    assert "--no-weights" in capsys.readouterr().err
