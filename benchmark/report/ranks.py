"""Comparing methods over datasets (Demšar, JMLR 2006): average ranks, the Friedman test and the
Nemenyi critical difference, and the critical-difference diagram (``ranks{sfx}.{md,png,pdf}``).

Blocks are the datasets (task pairs) of a (profile, data_source) group, the score of a method on a
dataset its Δ_mean (STL 0): rank 1 is the best, ties share the mean rank. The Friedman statistic
and p are scipy's (``scipy.stats.friedmanchisquare``, needs ≥ 3 methods and ≥ 2 datasets); the
Nemenyi critical difference is q_α · √(k(k+1) / 6N) with q_α the studentised range quantile
divided by √2 (``scipy.stats.studentized_range``), which gives Demšar's table (2.569 for 4 methods
at α = 0.05). Two methods whose average ranks differ by less than the CD are not distinguishable
over these datasets. With Table 2's four datasets the CD is large: say so, do not read ties as wins.

Imports no torch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ALPHA = 0.05


@dataclass
class RankResult:
    methods: list[str]
    datasets: list[str]
    average_ranks: list[float]
    statistic: float
    p: float
    cd: float
    n: int


def nemenyi_q(k: int, alpha: float = ALPHA) -> float:
    from scipy.stats import studentized_range
    return float(studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2))


def friedman_nemenyi(scores: pd.DataFrame, alpha: float = ALPHA) -> RankResult | None:
    """``scores``: rows datasets, columns methods, higher = better (Δ_mean). Datasets with a
    missing score are dropped; None when fewer than 3 methods or 2 datasets remain."""
    scores = scores.dropna()
    k, n = scores.shape[1], scores.shape[0]
    if k < 3 or n < 2:
        return None
    ranks = scores.rank(axis=1, ascending=False, method="average")
    import warnings

    from scipy.stats import friedmanchisquare
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")                   # every method tied everywhere: NaN, said as n/a
        stat, p = friedmanchisquare(*[scores[c].to_numpy() for c in scores.columns])
    cd = nemenyi_q(k, alpha) * math.sqrt(k * (k + 1) / (6 * n))
    return RankResult(list(scores.columns), list(scores.index), [float(v) for v in ranks.mean()],
                      float(stat), float(p), float(cd), n)


def scores_of(table: pd.DataFrame) -> pd.DataFrame:
    """Δ_mean per dataset (rows) and method (columns) from a Table 2 DataFrame (average rows skipped)."""
    t = table[table["dataset"] != "average"]
    return t.pivot_table(index="dataset", columns="method", values="delta_mean", sort=False)


def render_markdown(res: RankResult, title: str, label=lambda m: m) -> str:
    order = np.argsort(res.average_ranks)
    lines = [f"# {title}", "",
             f"Average rank of Δ_mean over {res.n} datasets ({', '.join(res.datasets)}; 1 = best, ties share the "
             f"mean rank). Friedman χ² = {res.statistic:.3f}, p = {res.p:.4f} (scipy.stats.friedmanchisquare); "
             f"Nemenyi critical difference at α = {ALPHA}: {res.cd:.3f}. Methods closer than the CD are not "
             f"distinguishable over these datasets.", "", "| Method | average rank |", "|:---|---:|"]
    lines += [f"| {label(res.methods[i])} | {res.average_ranks[i]:.3f} |" for i in order]
    return "\n".join(lines) + "\n"


def plot_cd(res: RankResult, path_stem: Path, label=lambda m: m) -> list[Path]:
    """The critical-difference diagram: methods on the rank axis, a bar joining each maximal group
    whose ranks lie within the CD, and the CD itself drawn to scale."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(res.methods)
    order = list(np.argsort(res.average_ranks))
    fig, ax = plt.subplots(figsize=(6.5, 1.2 + 0.32 * k))
    ax.set_xlim(0.6, k + 0.4)
    ax.set_ylim(-(k + 1) * 0.5, 1.4)
    ax.invert_xaxis()
    ax.set_xticks(range(1, k + 1))
    ax.set_xlabel("average rank (1 = best)")
    ax.spines[["left", "right", "bottom"]].set_visible(False)
    ax.xaxis.set_ticks_position("top")
    ax.xaxis.set_label_position("top")
    ax.set_yticks([])
    ax.plot([1, 1 + res.cd], [1.0, 1.0], color="k", lw=2)
    ax.text(1 + res.cd / 2, 1.1, f"CD = {res.cd:.2f}", ha="center", va="bottom", fontsize=8)
    for j, i in enumerate(order):
        y = -(j + 1) * 0.45
        r = res.average_ranks[i]
        ax.plot([r, r], [0, y], color="0.4", lw=0.8)
        ax.text(r, y - 0.05, f"{label(res.methods[i])} ({r:.2f})", ha="left" if j < k / 2 else "right", va="top",
                fontsize=8)
    ranks = sorted(res.average_ranks)
    groups = []
    for a in range(k):
        b = max(j for j in range(k) if ranks[j] - ranks[a] < res.cd)
        if b > a and not any(g[0] <= a and b <= g[1] for g in groups):
            groups.append((a, b))
    for g, (a, b) in enumerate(groups):
        y = 0.25 + 0.15 * g
        ax.plot([ranks[a] - 0.03, ranks[b] + 0.03], [y, y], color="tab:red", lw=3, solid_capstyle="round")
    ax.set_title(f"Friedman p = {res.p:.3f} over {res.n} datasets", fontsize=9, pad=28)
    fig.tight_layout()
    from benchmark.report.plots import _save       # atomic, dates off: as every other figure of the report
    paths = _save(fig, path_stem)
    plt.close(fig)
    return paths
