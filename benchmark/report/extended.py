"""Beyond the paper's Table 2: every (architecture, weighting) row ranked per dataset and on average
(the extended view of ``stats.compute_report``), an ablation table of CTAN's two modules with the
paired test of each difference against CTAN, and the Δ_mean matrix (architecture × weighting) that
``plots.plot_heatmap`` draws."""
from __future__ import annotations

import math

import pandas as pd

from benchmark.report.render import _md_table, _num, dataset_label, method_label, tex_escape
from benchmark.report.stats import ALPHA, AVERAGE, BASELINE, _pvalue, select_view
from benchmark.training.weighting.catalog import DEFAULT, WEIGHTINGS
from models.catalog import METHODS

# CTAN, each of its modules alone, and the baselines they build on (all with the paper's DWA).
ABLATION = ("ctan", "ctae_only", "ctab_only", "mtan", "hps")


def beyond_paper(df: pd.DataFrame) -> bool:
    """Whether a (normalised) metrics table has rows outside the paper's view."""
    return len(select_view(df, "paper")) < len(df)


def ablation_table(table: pd.DataFrame, per_seed: pd.DataFrame) -> pd.DataFrame:
    """Per dataset (and average): Δ_mean ± std of CTAN, CTAE only, CTAB only, MTAN and HPS with DWA,
    the paired t-test of each against STL and against CTAN (per-seed Δ_mean, seeds paired)."""
    rows = []
    for dataset in dict.fromkeys(table["dataset"]):
        seeds = per_seed[per_seed["dataset"] == dataset]
        ctan = seeds[seeds["method"] == f"ctan+{DEFAULT}"].set_index("seed")["delta_mean"]
        for m in ABLATION:
            key = f"{m}+{DEFAULT}"
            r = table[(table["dataset"] == dataset) & (table["method"] == key)]
            if r.empty:
                continue
            mine = seeds[seeds["method"] == key].set_index("seed")["delta_mean"]
            common = sorted(set(mine.index) & set(ctan.index))
            rows.append({"dataset": dataset, "method": m, "delta_mean": r["delta_mean"].iloc[0],
                         "delta_mean_std": r["delta_mean_std"].iloc[0], "p_vs_stl": r["delta_mean_p"].iloc[0],
                         "p_vs_ctan": math.nan if m == "ctan" else _pvalue([mine[s] for s in common],
                                                                            [ctan[s] for s in common]),
                         "n_seeds": len(mine)})
    return pd.DataFrame(rows, columns=["dataset", "method", "delta_mean", "delta_mean_std", "p_vs_stl",
                                       "p_vs_ctan", "n_seeds"])


def _cell(r, latex: bool) -> list[str]:
    pm, pct = (r" $\pm$ ", r"\%") if latex else (" ± ", "%")
    def p(x):
        return "" if not math.isfinite(x) else (f"{x:.3f}" + ("" if x < ALPHA else (r"$^{\dagger}$" if latex else " †")))
    dm = "n/a" if not math.isfinite(r.delta_mean) else (
        _num(r.delta_mean, latex) + (pm + _num(r.delta_mean_std, latex) if math.isfinite(r.delta_mean_std) else "") + pct)
    return [method_label(r.method), dm, p(r.p_vs_stl), p(r.p_vs_ctan), str(r.n_seeds)]


ABLATION_HEADER = ["Method", "Δ_mean", "p vs STL", "p vs CTAN", "seeds"]
ABLATION_NOTE = (f"Paired two-sided t-tests over seeds on per-seed Δ_mean; † p ≥ {ALPHA}: not significantly "
                 "different. CTAE only: CTAN without CTAB; CTAB only: HPS with CTAB at its bottleneck; all with DWA.")


def render_ablation_markdown(abl: pd.DataFrame, title: str) -> str:
    lines = [f"# {title}", "", ABLATION_NOTE, ""]
    for dataset, block in abl.groupby("dataset", sort=False):
        lines += [f"## {dataset_label(dataset)}", ""]
        lines += _md_table(ABLATION_HEADER, [_cell(r, False) for r in block.itertuples()], align="r") + [""]
    return "\n".join(lines)


def render_ablation_latex(abl: pd.DataFrame, caption: str, label: str) -> str:
    lines = [r"\begin{table}[t]", r"\centering", r"\caption{" + tex_escape(caption + " " + ABLATION_NOTE) + "}",
             r"\label{" + label + "}", r"\begin{tabular}{llcccc}", r"\toprule",
             r"Dataset & Method & $\Delta_{mean}$ & $p$ vs STL & $p$ vs CTAN & seeds \\", r"\midrule"]
    for k, (dataset, block) in enumerate(abl.groupby("dataset", sort=False)):
        if k:
            lines.append(r"\midrule")
        for j, r in enumerate(block.itertuples()):
            lines.append(" & ".join([tex_escape(dataset_label(dataset)) if j == 0 else "", *_cell(r, True)]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def delta_matrix(table: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """Δ_mean of ``dataset`` (or the average) as a matrix: architectures × weightings (labels)."""
    block = table[(table["dataset"] == dataset) & (table["method"] != BASELINE)]
    parts = block["method"].str.split("+", n=1, expand=True)
    frame = pd.DataFrame({"method": parts[0], "weighting": parts[1], "delta_mean": block["delta_mean"].values})
    matrix = frame.pivot_table(index="method", columns="weighting", values="delta_mean", aggfunc="first")
    rows = [m for m in METHODS if m in matrix.index] + [m for m in matrix.index if m not in METHODS]
    cols = [w for w in WEIGHTINGS if w in matrix.columns] + [w for w in matrix.columns if w not in WEIGHTINGS]
    matrix = matrix.loc[rows, cols]
    matrix.index = [METHODS[m].label if m in METHODS else m for m in matrix.index]
    matrix.columns = [weighting_label(w) for w in matrix.columns]
    return matrix


def weighting_label(spec: str) -> str:
    """A weighting column's label from the catalog: ``DWA``, ``CAGrad (c=0.4)``; an unknown one as it is."""
    name, *changed = spec.split("+")
    if name not in WEIGHTINGS:
        return spec
    return WEIGHTINGS[name].label + (f" ({', '.join(changed)})" if changed else "")


def datasets_of(table: pd.DataFrame) -> list[str]:
    return [d for d in dict.fromkeys(table["dataset"]) if d != AVERAGE] + (
        [AVERAGE] if (table["dataset"] == AVERAGE).any() else [])
