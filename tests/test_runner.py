"""Runner, store and CLI (issue 3): the smoke grid end to end, resume after a kill, failing cells."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import reproduce
from benchmark.experiment import runner, store
from benchmark.experiment.profiles import get_profile
from benchmark.training.loop import NonFiniteLoss, train_network
from benchmark.training.settings import TrainSettings
from data import DATASETS

ROOT = Path(__file__).resolve().parents[1]
KEY = ["dataset", "method", "seed", "task", "metric", "split"]


def _cells(df: pd.DataFrame) -> set:
    return set(df[["dataset", "method", "seed"]].itertuples(index=False, name=None))


@pytest.fixture(scope="module")
def smoke_grid(tmp_path_factory):
    results = tmp_path_factory.mktemp("smoke")
    status = reproduce.main(["--all", "--profile", "smoke", "--seeds", "0", "--data", "synthetic",
                             "--results", str(results), "--no-progress", "--jobs", "2"])
    return results, status


def test_smoke_grid_fills_the_long_csv(smoke_grid):
    results, status = smoke_grid
    assert status == 0
    df = pd.read_csv(results / "metrics.csv")
    for col in ["dataset", "method", "seed", "task", "metric", "value", "higher_is_better", "primary", "split",
                "data_source", "profile"]:
        assert col in df.columns
    assert len(_cells(df)) == 16
    assert not df.duplicated(KEY).any()
    assert set(df.data_source) == {"synthetic"} and set(df.profile) == {"smoke"}
    test_primary = df[df.primary & (df.split == "test")]
    assert len(test_primary) == 32                         # 16 cells x 2 tasks
    expected = {(d, t.name, t.metric) for d, e in DATASETS.items() if e.group == "paper" for t in e.spec.tasks}
    assert set(test_primary[["dataset", "task", "metric"]].itertuples(index=False, name=None)) == expected
    assert test_primary.value.notna().all()
    epochs = pd.read_csv(results / "epochs.csv")
    assert set(epochs.network[epochs.method == "stl"]) == {"segmentation", "dose", "diagnosis", "covid", "severity"}
    assert (epochs[epochs.method != "stl"].network == "joint").all()
    assert (results / "report" / "table2.md").is_file() and (results / "report" / "table2.tex").is_file()
    cell = store.cell_dir(results, "smoke", "synthetic", "stoic", "ctan", 0)
    meta = (cell / "cell.json").read_text()
    assert '"parameters"' in meta and '"wall_seconds"' in meta and '"config_hash"' in meta


def test_every_test_metric_is_recomputed_exactly_from_the_cases(smoke_grid):
    """cases.csv (issue 23): one row per (cell, case, task, metric[, part]); every set-level test
    metric of every cell (Dice, MAE, dose score, accuracy, balanced accuracy, macro F1, AUC) is
    recomputed from it to float precision."""
    from benchmark.report.cases import case_metric, load_cases

    results, _ = smoke_grid
    metrics = pd.read_csv(results / "metrics.csv")
    cases = load_cases(results / "cases.csv")
    assert list(cases.columns) == store.CASE_COLUMNS and set(cases.split) == {"test"}
    test = metrics[metrics.split == "test"]
    grouped = dict(tuple(cases.groupby(["dataset", "method", "seed", "task"])))
    checked = set()
    for r in test.itertuples():
        rows = grouped[(r.dataset, r.method, r.seed, r.task)]
        got = case_metric(rows, r.metric).value
        assert got == pytest.approx(r.value, rel=1e-6, abs=1e-9, nan_ok=True), (r.dataset, r.method, r.task, r.metric)
        checked.add(r.metric)
    assert checked == {"dice", "mae", "slice_dose_score", "accuracy", "balanced_accuracy", "macro_f1", "auc"}
    one = grouped[("ham10000", "hps", 0, "diagnosis")]
    n_test = get_profile("smoke").synthetic_sizes[2]
    assert one[one.metric == "label"].case.nunique() == n_test            # every test image once
    assert (one.metric == "logit").sum() == n_test * DATASETS["ham10000"].spec.task("diagnosis").num_outputs


def test_the_report_gives_every_comparison_an_interval_from_the_cases(smoke_grid):
    results, _ = smoke_grid
    iv = pd.read_csv(results / "report" / "intervals.csv")
    assert len(iv) == 12 and set(iv.method) == {"hps", "mtan", "ctan"}      # 4 datasets x 3 MTL methods
    assert (iv.delta_mean_ci_low <= iv.delta_mean + 1e-9).all() and (iv.delta_mean <= iv.delta_mean_ci_high + 1e-9).all()
    assert iv.delta_mean_p.between(0, 1).all() and (iv.delta_mean_p_holm >= iv.delta_mean_p - 1e-12).all()
    table = pd.read_csv(results / "report" / "table2.csv")
    mine = table.set_index(["dataset", "method"]).loc[list(zip(iv.dataset, iv.method)), "delta_mean"].to_numpy()
    np.testing.assert_allclose(iv.delta_mean, mine, atol=2e-5)  # Table 2's point estimate (both CSVs hold 6 decimals)
    md = (results / "report" / "intervals.md").read_text()
    assert "two-level paired bootstrap" in md and "Holm" in md and "seeds for paper" in md
    assert "\\begin{tabular}" in (results / "report" / "intervals.tex").read_text()


def test_table2_with_ci_adds_each_intervals_line_and_nothing_else(smoke_grid, tmp_path):
    from benchmark.report.__main__ import main as report

    results, _ = smoke_grid
    assert report(["--metrics", str(results / "metrics.csv"), "--out", str(tmp_path), "--no-plots", "--ci"]) == 0
    plain = (results / "report" / "table2.md").read_text().splitlines()
    with_ci = (tmp_path / "table2.md").read_text().splitlines()
    iv = pd.read_csv(results / "report" / "intervals.csv")
    extra = [l for l in with_ci if l not in plain]
    assert len(extra) == len(iv) + 1                                    # one line per comparison + the caption
    first = iv.iloc[0]
    assert any(f"[{first.delta_mean_ci_low:+.2f}, {first.delta_mean_ci_high:+.2f}]" in l for l in extra)
    assert "{\\scriptsize [" in (tmp_path / "table2.tex").read_text()
    assert "{\\scriptsize" not in (results / "report" / "table2.tex").read_text()


def test_rerun_skips_finished_cells_and_force_recomputes(smoke_grid, capsys):
    results, _ = smoke_grid
    marker = store.cell_dir(results, "smoke", "synthetic", "stoic", "hps", 0) / "metrics.csv"
    before = marker.stat().st_mtime_ns
    args = ["--dataset", "stoic", "--method", "hps", "--no-baseline", "--profile", "smoke", "--seeds", "0", "--data", "synthetic",
            "--results", str(results), "--no-progress", "--no-report", "--jobs", "1"]
    assert reproduce.main(args) == 0
    assert "already finished" in capsys.readouterr().out
    assert marker.stat().st_mtime_ns == before
    assert reproduce.main(args + ["--force"]) == 0
    assert marker.stat().st_mtime_ns != before
    assert len(_cells(pd.read_csv(results / "metrics.csv"))) == 16


def test_dry_run_lists_cells(tmp_path, capsys):
    assert reproduce.main(["--dataset", "ham10000", "--seeds", "0", "1", "--results", str(tmp_path),
                           "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "8 cells" in out and "SYNTHETIC" in out and "pending" in out
    assert not (tmp_path / "metrics.csv").exists()


def test_a_failing_cell_is_recorded_and_the_grid_goes_on(tmp_path, monkeypatch):
    real_build = runner.build_model

    def build(method, *args, **kwargs):
        if method == "mtan":
            raise RuntimeError("injected failure")
        return real_build(method, *args, **kwargs)

    monkeypatch.setattr(runner, "build_model", build)
    status = reproduce.main(["--dataset", "stoic", "--profile", "smoke", "--seeds", "0", "--data", "synthetic",
                             "--results", str(tmp_path), "--no-progress", "--jobs", "1"])
    assert status == 1
    df = pd.read_csv(tmp_path / "metrics.csv")
    assert set(df.method) == {"stl", "hps", "ctan"}
    failures = pd.read_csv(tmp_path / "failures.csv")
    assert failures[["dataset", "method"]].values.tolist() == [["stoic", "mtan"]]
    assert "injected failure" in failures.error[0]
    monkeypatch.setattr(runner, "build_model", real_build)   # the re-run heals the grid
    assert reproduce.main(["--dataset", "stoic", "--profile", "smoke", "--seeds", "0", "--data", "synthetic",
                           "--results", str(tmp_path), "--no-progress", "--no-report", "--jobs", "1"]) == 0
    assert len(pd.read_csv(tmp_path / "failures.csv")) == 0
    assert len(_cells(pd.read_csv(tmp_path / "metrics.csv"))) == 4


def test_killed_grid_resumes_with_every_cell_exactly_once(tmp_path):
    args = [sys.executable, "reproduce.py", "--dataset", "stoic", "--dataset", "ham10000", "--profile", "smoke",
            "--seeds", "0", "--data", "synthetic", "--results", str(tmp_path), "--no-progress", "--no-report",
            "--jobs", "1"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    finished = []
    while time.time() < deadline and len(finished) < 2 and proc.poll() is None:
        time.sleep(0.2)
        finished = list((tmp_path / "runs").rglob("seed*/metrics.csv"))
    assert proc.poll() is None, "the grid ended before it could be interrupted"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = {p: p.stat().st_mtime_ns for p in (tmp_path / "runs").rglob("seed*/metrics.csv")}
    assert 2 <= len(done_before) < 8
    subprocess.run(args, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=600)
    df = pd.read_csv(tmp_path / "metrics.csv")
    assert len(_cells(df)) == 8
    assert not df.duplicated(KEY).any()
    for path, mtime in done_before.items():       # finished work was kept, not recomputed
        assert path.stat().st_mtime_ns == mtime


def test_nan_loss_stops_training_with_a_clear_error(monkeypatch):
    import benchmark.training.loop as training
    from models.registry import build_model

    data = DATASETS["stoic"].synthetic(0, 8, 4, 4, 32)
    spec = data.spec
    monkeypatch.setattr(training, "make_loss", lambda task: (lambda out, y: out.sum() * float("nan")))
    net = build_model("hps", spec.tasks, "resnet18", in_channels=spec.in_channels)
    with pytest.raises(NonFiniteLoss, match="stoic: training loss of task 'covid' is nan in epoch 0"):
        train_network(net, spec.tasks, data, TrainSettings(get_profile("smoke"), 4, 0))


def test_batchnorm_recalibration_gives_the_population_statistics_of_the_current_weights():
    import numpy as np
    import torch
    from torch import nn

    from benchmark.training.loop import recalibrate_batchnorm
    from data.base import Split

    net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3))
    net[1].running_mean.fill_(100.0)                     # stale statistics
    rng = np.random.default_rng(0)
    images = rng.normal(2.0, 3.0, (32, 1, 8, 8)).astype(np.float32)
    split = Split(images, {}, np.arange(32))
    recalibrate_batchnorm(net.eval(), split, batch_size=8, max_batches=4)
    with torch.no_grad():
        feats = net[0](torch.from_numpy(images))
    torch.testing.assert_close(net[1].running_mean, feats.mean((0, 2, 3)), rtol=1e-4, atol=1e-5)
    assert net[1].momentum == 0.1 and not net.training   # settings restored


def test_model_selection_counts_every_task_whatever_its_loss_scale(monkeypatch):
    """Validation losses where the raw sum (dominated by the segmentation loss) picks epoch 2 and
    the relative rule, in which the dose task counts as much, picks epoch 1."""
    import dataclasses

    import numpy as np

    import benchmark.training.loop as loop
    from models.registry import build_model

    seg = [1.0, 0.5, 0.45]
    dose = [0.03, 0.02, 0.03]           # dose gets 50 % worse in epoch 2 while seg improves 10 %
    assert int(np.argmin(np.add(seg, dose))) == 2
    calls = iter(range(3))

    def scripted(net, tasks, split, batch_size, *args, **kwargs):
        e = next(calls)
        return {"segmentation": {"loss": seg[e], "dice": 50.0}, "dose": {"loss": dose[e], "mae": 1.0}}

    monkeypatch.setattr(loop, "evaluate", scripted)
    monkeypatch.setattr(loop, "trivial_losses", lambda *a, **k: np.array([1.0, 0.03]))  # the per-task reference
    data = DATASETS["prostate"].synthetic(0, 8, 4, 4, 16)
    net = build_model("hps", data.spec.tasks, "resnet18", in_channels=1)
    profile = dataclasses.replace(get_profile("smoke"), epochs=3)
    res = train_network(net, data.spec.tasks, data, TrainSettings(profile, 4, 0))
    assert res.best_epoch == 1
    scores = {r["epoch"]: r["selection_score"] for r in res.epochs}
    assert scores[0] == 1.0 and scores[1] == pytest.approx((0.5 + 0.02 / 0.03) / 2)
    assert scores[2] == pytest.approx((0.45 + 1.0) / 2)
    assert {r["selection_rule"] for r in res.epochs} == {loop.SELECTION_RULE}
    assert [r["epoch"] for r in res.epochs if r["selected"]] == [1, 1]
    assert loop.selection_score([0.2], [0.4]) == 0.5          # STL: one task, the lowest loss wins
