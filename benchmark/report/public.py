"""Table 2 on public data (issue 25): every real row the suite has a committed evidence run for, beside
the paper's row of the same kind of task pair, with a verdict on the paper's claim that each comes
from the data.

    python -m benchmark.report.public --out DIR          # public.{md,tex,csv}

Rows: the references named in ``REAL_ROWS`` that are committed (``reference/<name>/``: metrics,
per-case results, provenance). Per method: each task's mean ± seed spread (for a cross-validated row
a seed's value is the mean over its folds), Δ_task and Δ_mean against STL (eq. 3), the bootstrap
95 % interval of Δ_mean over seeds and pooled test cases, the Holm-adjusted p against STL, the rank
by Δ_mean. The paper's row of the same kind is the paper's dataset whose tasks are of the same kinds
(pixel segmentation + image classification: HAM10000; two image-level classifications: STOIC;
segmentation + pixel regression: OpenKBP itself).

Verdict per MTL method, on the paper's sign of its Δ_mean for that kind: **supports** when our
interval excludes 0 on the paper's side and p_Holm < 0.05, **contradicts** when the same holds on the
other side, **cannot decide** otherwise (with the minimum detectable effect at this size). Imports no torch.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark import atomic
from benchmark.report.cases import load_cases
from benchmark.report.inputs import ReportInputError
from benchmark.report.intervals import fold_of_case
from benchmark.report.paper import load_paper_table
from benchmark.report.reference import REFERENCE_DIR, load_reference
from benchmark.report.render import _md_table, dataset_label, method_label, tex_escape
from benchmark.report.stats import ALPHA, compute_report
from benchmark.report.write import paper_intervals
from data import DATASETS, datasets_of
from models.catalog import BASELINE

# The committed evidence runs that are rows of this table, in its order.
REAL_ROWS = ("openkbp-realcpu", "ph2-public", "busi-public", "ph2_criteria-public")
COLUMNS = ["dataset", "paper_dataset", "method", "n_seeds", "n_folds", "n_cases", "task1_name", "task1_metric",
           "task1_mean", "task1_std", "task1_delta", "task2_name", "task2_metric", "task2_mean", "task2_std",
           "task2_delta", "delta_mean", "delta_mean_ci_low", "delta_mean_ci_high", "delta_mean_p_holm", "mde",
           "rank", "paper_delta_mean", "verdict"]


def pair_kind(dataset: str) -> tuple[tuple[str, str], ...]:
    """The kinds of a dataset's tasks: (pixel | image, segmentation | regression | classification)."""
    return tuple((t.kind, "classification" if t.target in ("multiclass", "binary") else t.target)
                 for t in DATASETS[dataset].spec.tasks)


def paper_row_of(dataset: str) -> str | None:
    """The paper's dataset of the same kind of task pair (itself if it is one of the paper's)."""
    paper = datasets_of("paper")
    if dataset in paper:
        return dataset
    return next((d for d in paper if sorted(pair_kind(d)) == sorted(pair_kind(dataset))), None)


def verdict(paper_delta: float, low: float, high: float, mde: float, p_holm: float = 0.0) -> str:
    """Does our interval of Δ_mean [low, high] support the paper's sign of ``paper_delta``? Only when it
    excludes 0 *and* the comparison survives Holm's correction over the row's MTL methods
    (``p_holm`` < 0.05): a row makes three comparisons, and one uncorrected interval off 0 among
    them is what chance gives one time in seven."""
    if not np.isfinite(paper_delta) or not (np.isfinite(low) and np.isfinite(high)):
        return "cannot decide (no interval)"
    side = np.sign(paper_delta)
    if low > 0 or high < 0:
        ours = 1.0 if low > 0 else -1.0
        if not p_holm < ALPHA:
            where = "the paper's side" if ours == side else "the other side"
            return f"cannot decide (the interval excludes 0 on {where}, but not after Holm's correction: p_Holm {p_holm:.2f})"
        return "supports" if ours == side else "contradicts"
    return f"cannot decide (smallest detectable effect {mde:.1f} %)" if np.isfinite(mde) else "cannot decide"


def _row_table(folder: Path, paper: pd.DataFrame) -> pd.DataFrame:
    metrics, _ = load_reference(str(folder))
    cases_path = next((p for p in (folder / "cases.csv.gz", folder / "cases.csv") if p.is_file()), None)
    if cases_path is None:
        raise ReportInputError(f"{folder}: no cases.csv(.gz): a public row needs its per-case results")
    table = compute_report(metrics).table
    table = table[table["dataset"] != "average"]
    cases = load_cases(cases_path)
    iv = paper_intervals(table, cases)
    n_folds = len(set((fold_of_case(cases[cases["split"] == "test"]) or {}).values()))
    rows = []
    for r in table.itertuples(index=False):
        p_row = paper[(paper["dataset"] == paper_row_of(r.dataset)) & (paper["method"] == r.method)]
        paper_delta = float(p_row["delta_mean"].iloc[0]) if len(p_row) and r.method != BASELINE else np.nan
        i = iv[(iv["dataset"] == r.dataset) & (iv["method"] == r.method)] if iv is not None else pd.DataFrame()
        get = (lambda c: float(i[c].iloc[0])) if len(i) else (lambda c: np.nan)
        rows.append({"dataset": r.dataset, "paper_dataset": paper_row_of(r.dataset), "method": r.method,
                     "n_seeds": r.n_seeds, "n_folds": n_folds, "n_cases": get("n_cases"),
                     **{f"task{k}_{c}": getattr(r, f"task{k}_{c}") for k in (1, 2)
                        for c in ("name", "metric", "mean", "std", "delta")},
                     "delta_mean": r.delta_mean, "delta_mean_ci_low": get("delta_mean_ci_low"),
                     "delta_mean_ci_high": get("delta_mean_ci_high"), "delta_mean_p_holm": get("delta_mean_p_holm"),
                     "mde": get("mde"), "rank": r.rank, "paper_delta_mean": paper_delta,
                     "verdict": "" if r.method == BASELINE else verdict(paper_delta, get("delta_mean_ci_low"),
                                                                         get("delta_mean_ci_high"), get("mde"),
                                                                         get("delta_mean_p_holm"))})
    return pd.DataFrame(rows, columns=COLUMNS)


def public_table(names=REAL_ROWS, reference_dir: Path = REFERENCE_DIR) -> pd.DataFrame:
    """The rows of every committed reference among ``names`` (absent ones are left out)."""
    paper = load_paper_table()
    frames = [_row_table(reference_dir / n, paper) for n in names if (reference_dir / n / "metrics.csv").is_file()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)


def _fmt(mean: float, std: float) -> str:
    return f"{mean:.2f}" + (f" ± {std:.2f}" if np.isfinite(std) else "")


def _ci(r) -> str:
    if not np.isfinite(r.delta_mean_ci_low):
        return ""
    return f"{r.delta_mean:+.2f} [{r.delta_mean_ci_low:+.2f}, {r.delta_mean_ci_high:+.2f}]"


def render_markdown(table: pd.DataFrame, missing: list[str]) -> str:
    lines = ["# Table 2 on public data", "",
             "Every real row with a committed evidence run (benchmark/report/reference/), beside the paper's row "
             "of the same kind of task pair. Means ± standard deviation over seeds (a cross-validated row: a "
             "seed's value is the mean over its folds); Δ in % against STL (eq. 3); Δ_mean with its bootstrap "
             "95 % interval over seeds and test cases; p against STL, Holm-adjusted within the row; the paper's "
             "Δ_mean of the same method on the paper's dataset of that kind. Verdict: does our interval exclude 0, "
             "with p_Holm < 0.05, on the paper's side (supports), on the other (contradicts), or neither "
             "(cannot decide)?", ""]
    head = ["Dataset (paper's kind)", "Method", "seeds × folds", "M_task1", "Δ_task1", "M_task2", "Δ_task2",
            "Δ_mean [95 % CI]", "p_Holm", "Rank", "paper Δ_mean", "verdict"]
    body = []
    for r in table.itertuples(index=False):
        base = r.method == BASELINE
        body.append([f"{dataset_label(r.dataset)} ({dataset_label(r.paper_dataset) if r.paper_dataset else '-'})",
                     method_label(r.method), f"{r.n_seeds} × {r.n_folds or 1}",
                     _fmt(r.task1_mean, r.task1_std), "" if base else f"{r.task1_delta:+.2f} %",
                     _fmt(r.task2_mean, r.task2_std), "" if base else f"{r.task2_delta:+.2f} %",
                     "" if base else _ci(r), "" if base or not np.isfinite(r.delta_mean_p_holm)
                     else f"{r.delta_mean_p_holm:.3f}", str(int(r.rank)),
                     "" if not np.isfinite(r.paper_delta_mean) else f"{r.paper_delta_mean:+.2f} %", r.verdict])
    lines += _md_table(head, body) if body else ["No public row has a committed evidence run yet."]
    lines += ["", "## What the rows say", ""]
    for d, g in table.groupby("dataset", sort=False):
        mtl = g[g["method"] != BASELINE]
        said = "; ".join(f"{method_label(r.method)}: {r.verdict}" for r in mtl.itertuples())
        lines.append(f"- {dataset_label(d)} (paper's {dataset_label(g['paper_dataset'].iloc[0])} kind): {said}.")
    for name in missing:
        lines.append(f"- {name}: no committed evidence run yet.")
    return "\n".join(lines) + "\n"


def render_latex(table: pd.DataFrame) -> str:
    rows = []
    for r in table.itertuples(index=False):
        base = r.method == BASELINE
        rows.append(" & ".join([tex_escape(dataset_label(r.dataset)), tex_escape(method_label(r.method)),
                                _fmt(r.task1_mean, r.task1_std).replace("±", r"$\pm$"),
                                "" if base else f"{r.task1_delta:+.2f}\\%",
                                _fmt(r.task2_mean, r.task2_std).replace("±", r"$\pm$"),
                                "" if base else f"{r.task2_delta:+.2f}\\%",
                                "" if base else _ci(r), "" if base or not np.isfinite(r.delta_mean_p_holm)
                                else f"{r.delta_mean_p_holm:.3f}", str(int(r.rank)),
                                tex_escape(r.verdict.split(" (")[0])]) + r" \\")
    return "\n".join([r"\begin{table}", r"\centering",
                      r"\caption{Table 2 on public data: Δ against STL (\%), 95\% bootstrap intervals over seeds and "
                      r"test cases, Holm-adjusted $p$, verdict on the paper's sign for the same kind of task pair.}",
                      r"\label{tab:public}", r"\begin{tabular}{llllllllll}", r"\hline",
                      r"Dataset & Method & $M_1$ & $\Delta_1$ & $M_2$ & $\Delta_2$ & $\Delta_\mathrm{mean}$ [95\% CI] "
                      r"& $p_\mathrm{Holm}$ & Rank & verdict \\", r"\hline", *rows, r"\hline", r"\end{tabular}",
                      r"\end{table}", ""])


def write_public(out: Path, names=REAL_ROWS, reference_dir: Path = REFERENCE_DIR) -> list[Path]:
    table = public_table(names, reference_dir)
    missing = [n for n in names if not (reference_dir / n / "metrics.csv").is_file()]
    out.mkdir(parents=True, exist_ok=True)
    files = {"public.csv": table.round(6).to_csv(index=False), "public.md": render_markdown(table, missing),
             "public.tex": render_latex(table)}
    for name, text in files.items():
        atomic.write_text(out / name, text)
    return [out / n for n in files]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmark.report.public", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder for public.{md,tex,csv}")
    args = p.parse_args(argv)
    try:
        for f in write_public(Path(args.out)):
            print(f)
    except ReportInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
