"""The published Table 2 (``reference/paper_table2.csv``, transcribed as printed) and the side-by-side
comparison of a reproduction with it."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark.report.inputs import is_true
from benchmark.report.stats import (AVERAGE, BASELINE, CANONICAL_DATASETS, _average_block, _ordered,
                                    _rank_block, delta_cols, n_tasks)

PAPER_TABLE = Path(__file__).resolve().parent / "reference" / "paper_table2.csv"


def load_paper_table(path: str | Path = PAPER_TABLE) -> pd.DataFrame:
    """The published Table 2 as transcribed in benchmark/report/reference/paper_table2.csv."""
    paper = pd.read_csv(path, keep_default_na=True)
    for col in ("task1_higher_is_better", "task2_higher_is_better"):
        paper[col] = paper[col].map(lambda v: None if pd.isna(v) else is_true(v))
    for col in ("bold", "underline", "note", "task1_name", "task2_name", "task1_metric", "task2_metric"):
        paper[col] = paper[col].fillna("")
    paper["rank"] = paper["rank"].astype("Int64")
    return paper


def rank_and_average(table: pd.DataFrame) -> pd.DataFrame:
    """Ranks and the average block from given Δ columns (e.g. the published ones).

    Used to check that our ranking and averaging rules give back the paper's Rank column and
    Average block from the paper's own Δ values. STL rows take Δ = 0.
    """
    n = n_tasks(table)
    src = table[table["dataset"] != AVERAGE].copy()
    src.loc[src["method"] == BASELINE, list(delta_cols(n))] = 0.0
    rows: list[dict] = []
    for dataset in _ordered(src["dataset"], CANONICAL_DATASETS):
        block = [dict(r) for _, r in src[src["dataset"] == dataset].iterrows()]
        _rank_block(block, {})
        rows += block
    avg, _ = _average_block(rows, [], "", "", [], n)
    keep = ["dataset", "method", *delta_cols(n), "rank", "n_datasets"]
    return pd.DataFrame([{k: r.get(k) for k in keep} for r in rows + avg])


# ----------------------------------------------------------------------------- comparison
# The published table has two tasks per dataset: these are the columns compared.
COMPARE_COLS = ("task1_mean", "task1_delta", "task2_mean", "task2_delta", "delta_mean", "rank")


def compare_with_paper(table: pd.DataFrame, paper: pd.DataFrame | None = None) -> pd.DataFrame:
    """Side by side, per (dataset, method) present in both: published, reproduced, difference
    (reproduced − published) for each M and Δ column and the rank."""
    paper = load_paper_table() if paper is None else paper
    merged = paper.merge(table, on=["dataset", "method"], suffixes=("_published", "_reproduced"))
    out = merged[["dataset", "method"]].copy()
    for col in COMPARE_COLS:
        pub = pd.to_numeric(merged[f"{col}_published"], errors="coerce").astype(float)
        rep = pd.to_numeric(merged[f"{col}_reproduced"], errors="coerce").astype(float)
        out[f"{col}_published"], out[f"{col}_reproduced"], out[f"{col}_diff"] = pub, rep, rep - pub
    mism = []
    for c in ("task1_name", "task2_name"):
        bad = (merged[f"{c}_published"] != merged[f"{c}_reproduced"]) & (merged["dataset"] != AVERAGE)
        mism += [f"{d}: {c} is {r!r}, the paper's is {p!r}" for d, p, r in
                 merged.loc[bad, ["dataset", f"{c}_published", f"{c}_reproduced"]].drop_duplicates().values]
    out.attrs["notes"] = mism
    return out.reset_index(drop=True)
