"""Crash-safe result store: one folder per cell, files written atomically, aggregates rebuilt.

A cell is finished exactly when its ``metrics.csv`` exists; it is written last, by rename, so a
process killed at any moment leaves either a finished cell or none (docs/results-schema.md).
A store that cannot be written (not a folder, read-only, full) gives one :class:`StoreError`
naming the path and the cause, checked before any training starts.
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import uuid
from pathlib import Path

import pandas as pd

from benchmark.atomic import describe
from benchmark.training.weighting.catalog import DEFAULT, NONE
from models.catalog import BASELINE
from benchmark.atomic import write_text as atomic_write

METRIC_COLUMNS = ["dataset", "method", "weighting", "seed", "fold", "task", "task_index", "metric", "value",
                  "higher_is_better", "primary", "split", "data_source", "profile", "image_size"]
EPOCH_COLUMNS = ["dataset", "method", "weighting", "seed", "fold", "data_source", "profile", "network", "epoch", "task",
                 "train_loss", "loss_weight", "val_loss", "val_metric", "val_value", "selection_rule",
                 "selection_reference", "selection_score", "selected", "seconds", "warning"]
CASE_COLUMNS = ["dataset", "method", "weighting", "seed", "fold", "data_source", "profile", "split", "task", "case",
                "metric", "part", "value", "weight"]
FAILURE_COLUMNS = ["dataset", "method", "weighting", "seed", "fold", "data_source", "profile", "error"]
MIN_FREE_MB = 64  # below this a results folder is refused before training: a cell's files need less


class StoreError(OSError):
    """The results folder cannot hold results: the message names the path and the cause."""


def check_writable(results: Path | str) -> None:
    """Raise :class:`StoreError` unless ``results`` is (or can become) a writable folder with room."""
    results = Path(results)
    if results.exists() and not results.is_dir():
        raise StoreError(f"--results {results}: is a file, not a folder")
    try:
        results.mkdir(parents=True, exist_ok=True)
        probe = results / f".write-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"  # unique: runners may share the folder
        atomic_write(probe, "ok\n")
        probe.unlink()
    except OSError as exc:
        raise StoreError(f"--results {results}: cannot write there ({describe(results, exc)})") from None
    free_mb = shutil.disk_usage(results).free / 2 ** 20
    if free_mb < MIN_FREE_MB:
        raise StoreError(f"--results {results}: only {free_mb:.0f} MB free on its device "
                         f"(at least {MIN_FREE_MB} MB needed)")


def cell_dir(results: Path | str, profile: str, data_source: str, dataset: str, method: str, seed: int,
             weighting: str = DEFAULT, fold: int | None = None) -> Path:
    """A cell's folder from its parts (``CellConfig.directory`` gives the same for a config); STL
    weighs nothing, so its weighting level is always ``none``; a cross-validated cell's leaf names
    its fold (``seed0-fold3``)."""
    weighting = NONE if method == BASELINE else weighting
    leaf = f"seed{seed}" if fold is None else f"seed{seed}-fold{fold}"
    return Path(results) / "runs" / f"{profile}-{data_source}" / dataset / method / weighting / leaf


def _csv_text(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def is_finished(directory: Path) -> bool:
    return (directory / "metrics.csv").is_file()


def stored_hash(directory: Path) -> str | None:
    """The config hash a finished cell was made with (None if unreadable)."""
    try:
        return json.loads((directory / "cell.json").read_text()).get("config_hash")
    except (OSError, ValueError):
        return None


def write_cell(directory: Path, metrics: list[dict], epochs: list[dict], meta: dict) -> None:
    """Store a finished cell; ``metrics.csv`` goes last and marks it finished. The per-case rows
    (``meta["cases"]``) go to ``cases.csv``, not into cell.json."""
    meta = dict(meta)
    atomic_write(directory / "cases.csv", _csv_text(meta.pop("cases", []), CASE_COLUMNS))
    atomic_write(directory / "epochs.csv", _csv_text(epochs, EPOCH_COLUMNS))
    atomic_write(directory / "cell.json", json.dumps(meta, indent=2, sort_keys=True, default=str))
    atomic_write(directory / "metrics.csv", _csv_text(metrics, METRIC_COLUMNS))
    (directory / "error.txt").unlink(missing_ok=True)


def write_failure(directory: Path, text: str) -> None:
    atomic_write(directory / "error.txt", text)


def clear_cell(directory: Path) -> None:
    """Forget a cell's result, checkpoints and curves (``--force``) so that it is recomputed."""
    for name in ("metrics.csv", "cases.csv", "epochs.csv", "cell.json", "error.txt"):
        (directory / name).unlink(missing_ok=True)
    for name in ("checkpoints", "tensorboard"):
        shutil.rmtree(directory / name, ignore_errors=True)


def _cell_dirs(results: Path) -> list[Path]:
    return sorted(p for p in (results / "runs").glob("*/*/*/*/seed*") if p.is_dir())


def _read_all(paths: list[Path], columns: list[str], as_text: bool = False) -> pd.DataFrame:
    """The CSVs concatenated; ``as_text`` keeps every field's text as written (case ids and class
    parts such as "0" must not come back as 0.0)."""
    frames = [pd.read_csv(p, dtype=str, keep_default_na=False) if as_text else pd.read_csv(p) for p in paths]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def _seed_and_fold(leaf: str) -> dict:
    """``seed3`` -> seed 3; ``seed3-fold1`` -> seed 3, fold 1 (``cell_dir``)."""
    seed, _, fold = leaf[len("seed"):].partition("-fold")
    return {"seed": int(seed), "fold": int(fold) if fold else None}


def rebuild(results: Path | str) -> pd.DataFrame:
    """Rebuild ``metrics.csv``, ``cases.csv``, ``epochs.csv`` and ``failures.csv`` from the cell folders."""
    results = Path(results)
    dirs = _cell_dirs(results)
    done = [d for d in dirs if is_finished(d)]
    metrics = _read_all([d / "metrics.csv" for d in done], METRIC_COLUMNS)
    atomic_write(results / "metrics.csv", metrics.to_csv(index=False))
    cases = _read_all([d / "cases.csv" for d in done if (d / "cases.csv").is_file()], CASE_COLUMNS, as_text=True)
    atomic_write(results / "cases.csv", cases.to_csv(index=False))
    epochs = _read_all([d / "epochs.csv" for d in done if (d / "epochs.csv").is_file()], EPOCH_COLUMNS)
    atomic_write(results / "epochs.csv", epochs.to_csv(index=False))
    failures = []
    for d in dirs:
        if not is_finished(d) and (d / "error.txt").is_file():
            profile, source = d.parts[-5].rsplit("-", 1)
            lines = [l for l in (d / "error.txt").read_text().splitlines() if l.strip()]
            failures.append({"dataset": d.parts[-4], "method": d.parts[-3], "weighting": d.parts[-2],
                             **_seed_and_fold(d.name), "data_source": source, "profile": profile,
                             "error": lines[-1] if lines else ""})
    atomic_write(results / "failures.csv", _csv_text(failures, FAILURE_COLUMNS))
    return metrics
