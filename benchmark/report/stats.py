"""The numbers of Table 2: Δ_task by eq. (3), Δ_mean, ranks, the average block and the seed
statistics that say whether a difference is more than noise.

Input is a long metrics table (``inputs.load_metrics``); output is one row per (profile,
data_source, dataset, method), the ``average`` rows included, with one group of columns per task
(``task1_*``, ``task2_*``, ...: as many as the dataset with the most tasks has; Table 2's datasets
have two). Conventions are in docs/report.md.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from benchmark.report.inputs import normalize_metrics
from data import DATASETS
from benchmark.training.weighting.catalog import DEFAULT, WEIGHTINGS
from models.catalog import BASELINE, METHODS

AVERAGE = "average"
CANONICAL_DATASETS = tuple(DATASETS)
CANONICAL_METHODS = tuple(name for name, m in METHODS.items() if m.paper) + tuple(
    name for name, m in METHODS.items() if not m.paper)
# Column order of each dataset's tasks; used when the CSV has no task_index.
CANONICAL_TASKS = {name: tuple(t.name for t in e.spec.tasks) for name, e in DATASETS.items()}
ALPHA = 0.05            # significance level of every test in the report
LOW_POWER_SEEDS = 5     # below this many paired seeds a t-test has little power: say so
PAPER_TASKS = 2         # Table 2's layout: two task columns


def task_cols(n: int) -> tuple[str, ...]:
    """("task1", ..., "task<n>"): the column prefixes of n tasks."""
    return tuple(f"task{k}" for k in range(1, n + 1))


def delta_cols(n: int) -> tuple[str, ...]:
    return tuple(f"{c}_delta" for c in task_cols(n)) + ("delta_mean",)


def table_columns(n: int) -> list[str]:
    return (["profile", "data_source", "dataset", "method"]
            + [f"{t}_{c}" for t in task_cols(n) for c in (
                "name", "metric", "higher_is_better", "mean", "std", "n", "delta", "delta_std", "p")]
            + ["delta_mean", "delta_mean_std", "delta_mean_p", "n_seeds", "n_paired", "n_datasets",
               "seeds", "rank", "vs_next_p", "image_size", "note"])


def n_tasks(table: pd.DataFrame) -> int:
    """How many task columns a table uses: the highest k whose ``task<k>_name`` is set in some row
    (the columns present when no row names a task)."""
    present = [k for k in range(1, 100) if f"task{k}_name" in table.columns]
    used = [k for k in present
            if table[f"task{k}_name"].map(lambda v: isinstance(v, str) and v != "").any()]
    return max(used or present or [PAPER_TASKS])


@dataclass
class Report:
    """Everything computed from one metrics table."""

    table: pd.DataFrame                       # table_columns(n_tasks), one row per (group, dataset, method)
    per_seed: pd.DataFrame                    # per-seed Δ, seeds paired with STL
    notes: dict[tuple[str, str], list[str]] = field(default_factory=dict)  # per (profile, data_source)


# ----------------------------------------------------------------------------- eq. (3)
def relative_delta(baseline, value, higher_is_better):
    """Δ_task of eq. (3) in percent: 100·(-1)^l·(M_b − M_m)/M_b, positive = better than STL.

    Higher-is-better: 100·(M_m − M_b)/M_b; lower-is-better: 100·(M_b − M_m)/M_b. Works on scalars
    and arrays; a zero or missing baseline gives NaN (n/a), never an exception. ``abs`` of the
    baseline keeps "positive = better" for metrics that could be negative.
    """
    b = np.asarray(baseline, dtype=float)
    m = np.asarray(value, dtype=float)
    sign = np.where(np.asarray(higher_is_better, dtype=bool), 1.0, -1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 100.0 * sign * (m - b) / np.abs(b)
    out = np.where(np.isfinite(out), out, np.nan)
    return float(out) if out.ndim == 0 else out


# ----------------------------------------------------------------------------- statistics
def _pvalue(a: Sequence[float], b: Sequence[float] | None = None) -> float:
    """Two-sided paired t-test p (ttest_rel a vs b, or ttest_1samp a vs 0 when b is None).

    NaN when fewer than two pairs or the differences have zero spread (t undefined): the report
    then says "not testable" rather than inventing certainty.
    """
    a = np.asarray(a, dtype=float)
    b = np.zeros_like(a) if b is None else np.asarray(b, dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    diff = a[ok] - b[ok]
    if diff.size < 2 or np.allclose(diff, diff[0], rtol=0, atol=1e-12):
        return math.nan
    from scipy import stats  # lazy: keeps `import benchmark.report` cheap
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return float(stats.ttest_rel(a[ok], b[ok]).pvalue)


def _std(values: Iterable[float]) -> float:
    v = np.asarray(list(values), dtype=float)
    v = v[np.isfinite(v)]
    return float(np.std(v, ddof=1)) if v.size >= 2 else math.nan


def _mean(values: Iterable[float]) -> float:
    v = np.asarray(list(values), dtype=float)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else math.nan


# ----------------------------------------------------------------------------- layout
def _ordered(values: Iterable[str], canonical: Sequence[str]) -> list[str]:
    """Canonical names first in paper order, the rest in first-seen order."""
    seen = list(dict.fromkeys(values))
    return [v for v in canonical if v in seen] + [v for v in seen if v not in canonical]


def task_layout(rows: pd.DataFrame, dataset: str) -> list[tuple[str, str, bool]]:
    """(task, metric, higher_is_better) in Table 2 column order for one dataset.

    task_index decides when present; else the paper's order for a known dataset; else first seen.
    """
    first = rows.drop_duplicates("task")
    idx = rows.groupby("task", sort=False)["task_index"].first()
    tasks = list(first["task"])
    if idx.notna().all():
        tasks = sorted(tasks, key=lambda t: (idx[t], tasks.index(t)))
    elif set(tasks) <= set(CANONICAL_TASKS.get(dataset, ())):
        tasks = [t for t in CANONICAL_TASKS[dataset] if t in tasks]
    info = first.set_index("task")
    return [(t, str(info.at[t, "metric"]), bool(info.at[t, "higher_is_better"])) for t in tasks]


# ----------------------------------------------------------------------------- table
def _empty_row(profile: str, source: str, dataset: str, method: str, n: int) -> dict:
    row = {c: math.nan for c in table_columns(n)}
    row.update(profile=profile, data_source=source, dataset=dataset, method=method, note="", seeds="")
    for c in task_cols(n):
        row.update({f"{c}_name": "", f"{c}_metric": "", f"{c}_higher_is_better": None})
    return row


def _rank_block(rows: list[dict], per_seed: dict[str, dict[int, float]]) -> None:
    """Rank methods by Δ_mean (STL at 0, higher = better, ties share the best rank) and test each
    method against the next-ranked one (paired by seed) so a win within noise is visible."""
    scores = pd.Series([r["delta_mean"] for r in rows], dtype=float).round(10)  # float noise ≠ win
    ranks = scores.rank(ascending=False, method="min")
    for r, k in zip(rows, ranks):
        r["rank"] = k
    ordered = sorted((r for r in rows if np.isfinite(r["rank"])), key=lambda r: r["rank"])
    for hi, lo in zip(ordered, ordered[1:]):
        a, b = per_seed.get(hi["method"], {}), per_seed.get(lo["method"], {})
        common = sorted(set(a) & set(b))
        hi["vs_next_p"] = _pvalue([a[s] for s in common], [b[s] for s in common])


def _dataset_block(prim: pd.DataFrame, profile: str, source: str, dataset: str,
                   notes: list[str], n: int, canonical=CANONICAL_METHODS) -> tuple[list[dict], list[dict]]:
    """Rows of one dataset: means over seeds, Δ_task of eq. (3) on the means, Δ_mean, stats.
    ``n`` is the table's number of task columns (at least this dataset's number of tasks)."""
    layout = task_layout(prim, dataset)
    cols = task_cols(n)
    # value[method][task][seed]; duplicates (same cell written twice) are averaged
    cells = prim.groupby(["method", "task", "seed"], sort=False)["value"].mean()
    value: dict[str, dict[str, dict[int, float]]] = {}
    for (m, t, s), v in cells.items():
        value.setdefault(m, {}).setdefault(t, {})[int(s)] = float(v)
    methods = _ordered(prim["method"], canonical)
    if len(layout) == 1:
        notes.append(f"{dataset}: only one task ({layout[0][0]}), so Δ_mean = Δ_task1")
    has_stl = BASELINE in value
    if not has_stl:
        notes.append(f"{dataset}: no STL results, so Δ and ranks are n/a")
    stl = value.get(BASELINE, {})
    rows, seed_rows = [], []
    for m in methods:
        row = _empty_row(profile, source, dataset, m, n)
        sizes = prim.loc[prim["method"] == m, "image_size"].dropna().unique()
        row["image_size"] = int(sizes[0]) if len(sizes) == 1 else math.nan  # the cell's input (CSV column)
        seeds = sorted({s for t in value[m].values() for s in t})
        row.update(n_seeds=len(seeds), n_datasets=1, seeds=" ".join(map(str, seeds)))
        per_seed_delta: dict[int, list[float]] = {}
        paired_all: set[int] = set()
        for k, (task, metric, hib) in enumerate(layout):
            c = cols[k]
            vals = value[m].get(task, {})
            row.update({f"{c}_name": task, f"{c}_metric": metric, f"{c}_higher_is_better": hib,
                        f"{c}_mean": _mean(vals.values()), f"{c}_std": _std(vals.values()),
                        f"{c}_n": int(np.isfinite(list(vals.values())).sum()) if vals else 0})
            if not vals:
                row["note"] += f"no {task} result; "
            base = stl.get(task, {})
            if not has_stl or not base:
                continue
            row[f"{c}_delta"] = 0.0 if m == BASELINE else relative_delta(
                _mean(base.values()), row[f"{c}_mean"], hib)
            common = sorted(set(vals) & set(base))
            paired_all |= set(common)
            d = relative_delta([base[s] for s in common], [vals[s] for s in common], hib)
            for s, x in zip(common, np.atleast_1d(d)):
                per_seed_delta.setdefault(s, [math.nan] * len(layout))[k] = float(x)
            if m != BASELINE:
                row[f"{c}_delta_std"] = _std(np.atleast_1d(d))
                row[f"{c}_p"] = _pvalue([vals[s] for s in common], [base[s] for s in common])
        task_deltas = [row[f"{c}_delta"] for c in cols[:len(layout)]]
        # Δ_mean needs every task: averaging only the tasks that ran would flatter a method
        row["delta_mean"] = float(np.mean(task_deltas)) if np.isfinite(task_deltas).all() else math.nan
        row["n_paired"] = len(paired_all)
        for s, ds in sorted(per_seed_delta.items()):
            seed_rows.append({"profile": profile, "data_source": source, "dataset": dataset,
                              "method": m, "seed": s,
                              **{f"{c}_delta": ds[k] if k < len(ds) else math.nan
                                 for k, c in enumerate(cols)},
                              "delta_mean": float(np.mean(ds)) if np.isfinite(ds).all() else math.nan})
        if m != BASELINE:
            dm = [r["delta_mean"] for r in seed_rows if r["method"] == m and r["dataset"] == dataset]
            row["delta_mean_std"] = _std(dm)
            row["delta_mean_p"] = _pvalue(dm)
        row["note"] = row["note"].strip().strip(";")
        rows.append(row)
    by_method = {m: {r["seed"]: r["delta_mean"] for r in seed_rows if r["method"] == m}
                 for m in methods}
    _rank_block(rows, by_method)
    return rows, seed_rows


def _average_block(rows: list[dict], seed_rows: list[dict], profile: str, source: str,
                   notes: list[str], n: int, canonical=CANONICAL_METHODS) -> tuple[list[dict], list[dict]]:
    """Average block of Table 2: mean of each Δ column over datasets, ranked by its Δ_mean.

    A method is averaged over the datasets where its Δ_mean exists; if that set differs between
    methods the note says so (a method missing a hard dataset would otherwise look better).
    """
    df = pd.DataFrame(rows)
    df = df[df["delta_mean"].notna()]
    if df.empty:
        return [], []
    seeds = pd.DataFrame(seed_rows)
    out, out_seeds = [], []
    counts = {}
    for m in _ordered(df["method"], canonical):
        sub = df[df["method"] == m]
        row = _empty_row(profile, source, AVERAGE, m, n)
        for col in delta_cols(n):
            row[col] = _mean(sub[col])
        row["n_datasets"] = counts[m] = len(sub)
        # per-seed average over the same datasets, only seeds present in all of them
        s = seeds[(seeds["method"] == m) & seeds["dataset"].isin(sub["dataset"])] if len(seeds) else seeds
        if len(s):
            full = s.groupby("seed")["dataset"].nunique() == len(sub)
            s = s[s["seed"].isin(full[full].index)]
            avg = s.groupby("seed")[list(delta_cols(n))].mean()
            for seed_, r in avg.iterrows():
                out_seeds.append({"profile": profile, "data_source": source, "dataset": AVERAGE,
                                  "method": m, "seed": int(seed_), **r.to_dict()})
            row.update(n_seeds=len(avg), n_paired=len(avg), seeds=" ".join(map(str, avg.index)))
            if m != BASELINE:
                for c in task_cols(n):
                    row[f"{c}_delta_std"] = _std(avg[f"{c}_delta"])
                    row[f"{c}_p"] = _pvalue(avg[f"{c}_delta"])
                row["delta_mean_std"] = _std(avg["delta_mean"])
                row["delta_mean_p"] = _pvalue(avg["delta_mean"])
        out.append(row)
    if len(set(counts.values())) > 1:
        notes.append("average block: methods are averaged over different numbers of datasets ("
                     + ", ".join(f"{m} {n}" for m, n in counts.items()) + ")")
    by_method = {m: {r["seed"]: r["delta_mean"] for r in out_seeds if r["method"] == m} for m in counts}
    _rank_block(out, by_method)
    return out, out_seeds


def select_view(df: pd.DataFrame, view: str) -> pd.DataFrame:
    """The rows of a report view: ``paper``, the paper's Table 2 (STL and the paper's methods with
    its DWA; methods this suite does not know are kept); ``extended``, every (method, weighting),
    each MTL row's method renamed ``method+weighting``."""
    stl = df["method"] == BASELINE
    if view == "paper":
        known = df["method"].map(lambda m: METHODS[m].paper if m in METHODS else True).astype(bool)
        return df[stl | ((df["weighting"] == DEFAULT) & known)]
    if view == "extended":
        out = df.copy()
        out.loc[~stl, "method"] = out.loc[~stl, "method"] + "+" + out.loc[~stl, "weighting"]
        return out
    raise ValueError(f"unknown report view {view!r}; choose paper or extended")


def variant_order(names) -> list[str]:
    """``method+weighting`` names in catalog order (methods, then weightings), the rest first-seen."""
    order = {f"{m}+{w}": (i, j) for i, m in enumerate(METHODS) for j, w in enumerate(WEIGHTINGS)}
    seen = list(dict.fromkeys(names))
    return sorted((n for n in seen if n in order), key=order.get) + [n for n in seen if n not in order]


def compute_report(df: pd.DataFrame, view: str = "paper") -> Report:
    """Table 2 for every (profile, data_source) group of a long metrics table (``view``: see
    :func:`select_view`).

    Uses only ``primary`` rows of the ``test`` split. Per (dataset, method, task): mean and std
    over seeds; Δ_task by eq. (3) from the MTL mean vs the STL mean of the same dataset; Δ_mean the
    mean of the dataset's Δ_task; rank by Δ_mean with STL at 0; then the ``average`` block.
    """
    df = select_view(normalize_metrics(df), view)
    prim = df[df["primary"] & (df["split"] == "test")]
    canonical = CANONICAL_METHODS if view == "paper" else (
        BASELINE, *variant_order(prim.loc[prim["method"] != BASELINE, "method"]))
    counts = prim.groupby(["profile", "data_source", "dataset"])["task"].nunique()
    n = int(counts.max()) if len(counts) else PAPER_TASKS
    rows: list[dict] = []
    seed_rows: list[dict] = []
    notes: dict[tuple[str, str], list[str]] = {}
    for (profile, source), grp in prim.groupby(["profile", "data_source"], sort=True):
        group_notes = notes.setdefault((profile, source), [])
        if grp.duplicated(["dataset", "method", "seed", "task"]).any():
            group_notes.append("duplicated (dataset, method, seed, task) rows were averaged")
        for (d, t), ms in grp.groupby(["dataset", "task"], sort=False)["metric"].unique().items():
            if len(ms) > 1:
                group_notes.append(f"{d}/{t}: several primary metrics {list(ms)}; using {ms[0]}")
                grp = grp[(grp["dataset"] != d) | (grp["task"] != t) | (grp["metric"] == ms[0])]
        block_rows: list[dict] = []
        for dataset in _ordered(grp["dataset"], CANONICAL_DATASETS):
            r, s = _dataset_block(grp[grp["dataset"] == dataset], profile, source, dataset,
                                  group_notes, n, canonical)
            block_rows += r
            seed_rows += s
        avg, avg_seeds = _average_block(block_rows, seed_rows, profile, source, group_notes, n, canonical)
        rows += block_rows + avg
        seed_rows += avg_seeds
    table = pd.DataFrame(rows, columns=table_columns(n))
    for col in ("rank", *[f"{c}_n" for c in task_cols(n)], "n_seeds", "n_paired", "n_datasets"):
        table[col] = table[col].astype("Int64")
    per_seed = pd.DataFrame(seed_rows, columns=["profile", "data_source", "dataset", "method",
                                                "seed", *delta_cols(n)])
    return Report(table=table, per_seed=per_seed, notes=notes)


def compute_table(df: pd.DataFrame, view: str = "paper") -> pd.DataFrame:
    """Table 2 as a DataFrame (see :func:`compute_report`); group notes in ``.attrs['notes']``."""
    report = compute_report(df, view)
    table = report.table
    table.attrs["notes"] = report.notes
    return table


