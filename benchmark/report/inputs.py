"""Reading the report's input: the long metrics CSV of docs/results-schema.md (whoever wrote it),
checked and typed with one clear error, and the optional side files (epochs, failures)."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from benchmark.training.weighting.catalog import DEFAULT, NONE
from models.catalog import BASELINE

REQUIRED_COLUMNS = ("dataset", "method", "seed", "task", "metric", "value",
                    "higher_is_better", "primary", "split")
OPTIONAL_DEFAULTS = {"data_source": "unknown", "profile": "unknown", "image_size": float("nan")}
GROUP_KEYS = ("profile", "data_source")  # one table per group

_TRUE = {"true", "t", "yes", "y", "1", "1.0"}
_FALSE = {"false", "f", "no", "n", "0", "0.0"}


class ReportInputError(ValueError):
    """A metrics/epochs/failures file that does not follow docs/results-schema.md."""


def is_true(value) -> bool:
    """A boolean as written in a CSV (True/true/1/yes/t)."""
    return str(value).strip().lower() in _TRUE


def _bool_column(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parse True/true/1/yes... robustly; returns (parsed, bad-mask)."""
    text = values.astype(str).str.strip().str.lower()
    return text.isin(_TRUE), ~text.isin(_TRUE | _FALSE)


def normalize_metrics(df: pd.DataFrame, source: str = "<DataFrame>") -> pd.DataFrame:
    """Check a long metrics table against the schema and return a typed copy.

    All problems are collected into ONE :class:`ReportInputError` naming ``source`` and every
    missing or bad column, so a foreign CSV is fixed in one round trip.
    """
    df = df.copy()
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ReportInputError(
            f"{source}: missing required column(s) {', '.join(missing)}; "
            f"expected at least {', '.join(REQUIRED_COLUMNS)} (docs/results-schema.md)")
    problems: list[str] = []
    for col, default in OPTIONAL_DEFAULTS.items():
        if col not in df.columns:
            df[col] = default
    if "weighting" not in df.columns:  # CSVs from before loss weightings were an axis: the paper's DWA
        df["weighting"] = np.where(df["method"].astype(str).str.strip().str.lower() == BASELINE, NONE, DEFAULT)
    for col in ("dataset", "method", "weighting", "task", "metric", "split", "profile", "data_source"):
        df[col] = df[col].fillna("").astype(str).str.strip()
    for col in ("dataset", "method", "weighting", "split"):
        df[col] = df[col].str.lower()   # "STL" and "stl" are the same method
    for col in ("dataset", "method", "task"):
        if (df[col] == "").any():
            problems.append(f"column '{col}' has empty values (row {int(np.argmax(df[col] == '')) + 2})")
    value = pd.to_numeric(df["value"], errors="coerce")
    bad = value.isna() & df["value"].notna() & (df["value"].astype(str).str.strip().str.lower() != "nan")
    if bad.any():   # NaN values are allowed (a metric can be undefined), text is not
        problems.append(f"column 'value' is not numeric, e.g. {df['value'][bad].iloc[0]!r}")
    df["value"] = value.astype(float)
    seed = pd.to_numeric(df["seed"], errors="coerce")
    if seed.isna().any() or (seed.dropna() % 1 != 0).any():
        problems.append("column 'seed' must hold integers")
    else:
        df["seed"] = seed.astype(int)
    for col in ("higher_is_better", "primary"):
        parsed, bad = _bool_column(df[col])
        if bad.any():
            problems.append(f"column '{col}' is not boolean, e.g. {df[col][bad].iloc[0]!r}")
        df[col] = parsed
    if "task_index" in df.columns:
        idx = pd.to_numeric(df["task_index"], errors="coerce")
        if (idx.isna() & df["task_index"].notna()).any():
            problems.append("column 'task_index' must hold integers (1, 2, ...)")
        df["task_index"] = idx
    else:
        df["task_index"] = np.nan
    if problems:
        raise ReportInputError(f"{source}: " + "; ".join(problems))
    return collapse_folds(df)


def collapse_folds(df: pd.DataFrame) -> pd.DataFrame:
    """A cross-validated row's metrics per seed: the mean over its folds (each fold tests a fifth of
    the images; every image is tested once per seed). Rows without a fold pass unchanged, and the
    ``fold`` column is dropped: everything downstream sees one value per seed, as for a fixed split."""
    if "fold" not in df.columns:
        return df
    fold = pd.to_numeric(df["fold"], errors="coerce")
    df = df.drop(columns="fold")
    if fold.isna().all():
        return df
    plain, cv = df[fold.isna()], df[fold.notna()]
    keys = [c for c in df.columns if c != "value"]
    means = cv.groupby(keys, dropna=False, sort=False)["value"].mean().reset_index()[list(df.columns)]
    return pd.concat([plain, means], ignore_index=True)


def load_metrics(path: str | Path) -> pd.DataFrame:
    """Read and validate a long metrics CSV (docs/results-schema.md); one clear error if bad."""
    path = Path(path)
    if not path.is_file():
        raise ReportInputError(f"{path}: metrics file not found")
    try:
        raw = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise ReportInputError(f"{path}: file is empty (no header); expected columns "
                               f"{', '.join(REQUIRED_COLUMNS)}") from None
    except pd.errors.ParserError as exc:
        raise ReportInputError(f"{path}: not a readable CSV ({exc})") from None
    return normalize_metrics(raw, source=str(path))


def read_optional(path: Path | None, required: Sequence[str], notes: list[str]) -> pd.DataFrame | None:
    """An optional side file (epochs/failures): None when absent; a bad one is skipped with a
    note instead of failing the whole report, since the table does not depend on it."""
    if path is None or not Path(path).is_file():
        return None
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return None
    except pd.errors.ParserError as exc:
        notes.append(f"{path} ignored: unreadable CSV ({exc})")
        return None
    missing = [c for c in required if c not in df.columns]
    if missing:
        notes.append(f"{path} ignored: missing column(s) {', '.join(missing)}")
        return None
    for col in GROUP_KEYS:
        df[col] = df[col].fillna("").astype(str).str.strip() if col in df else "unknown"
    for col in ("dataset", "method"):
        df[col] = df[col].astype(str).str.strip().str.lower()
    return df
