"""Table 2 report: Δ_task (eq. 3), Δ_mean and ranks as CSV, LaTeX, Markdown and plots.

    python -m benchmark.report --metrics results/metrics.csv --out results/report [--compare-paper]

Reads the long ``metrics.csv`` of docs/results-schema.md and, when they sit next to it,
``epochs.csv`` (training curves, DWA weights) and ``failures.csv`` (listed in the report). One
table per (profile, data_source) group: plain file names when there is one group, else the suffix
``_<profile>-<data_source>``. Conventions: docs/report.md. The numbers live in benchmark/table.py,
the text in benchmark/render.py, the figures in benchmark/plots.py.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import pandas as pd

from benchmark.render import (render_compare_markdown, render_latex, render_markdown,
                              tex_escape)
from benchmark.table import (TABLE_COLUMNS, Report, ReportInputError, compare_with_paper,
                             compute_report, compute_table, load_metrics, load_paper_table,
                             relative_delta)

__all__ = ["main", "load_metrics", "compute_table", "compute_report", "render_latex",
           "render_markdown", "write_report", "relative_delta", "ReportInputError"]

GROUP_KEYS = ("profile", "data_source")


def _read_optional(path: Path | None, required: Sequence[str], notes: list[str]) -> pd.DataFrame | None:
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


def _select(df: pd.DataFrame | None, profile: str | None, data_source: str | None) -> pd.DataFrame | None:
    if df is None:
        return None
    if profile is not None:
        df = df[df["profile"] == profile]
    if data_source is not None:
        df = df[df["data_source"] == data_source]
    return df


def _in_group(df: pd.DataFrame | None, group: tuple[str, str]) -> pd.DataFrame | None:
    if df is None:
        return None
    return df[(df["profile"] == group[0]) & (df["data_source"] == group[1])].reset_index(drop=True)


def _write(path: Path, text: str, written: list[Path]) -> None:
    path.write_text(text, encoding="utf-8")
    written.append(path)


def _failure_note(failures: pd.DataFrame | None) -> list[str]:
    if failures is None or failures.empty:
        return []
    cells = ", ".join(f"{d}/{m}/seed {s}" for d, m, s in
                      failures[["dataset", "method", "seed"]].itertuples(index=False))
    return [f"{len(failures)} failed cell(s), missing from the table: {cells}."]


def write_report(metrics_csv: str | Path, out_dir: str | Path, compare_paper: bool = False, *,
                 profile: str | None = None, data_source: str | None = None,
                 epochs_csv: str | Path | None = None, failures_csv: str | Path | None = None,
                 plots: bool = True) -> list[Path]:
    """Render the report of ``metrics_csv`` into ``out_dir``; returns the files written.

    Per (profile, data_source) group: table2.csv (one row per dataset and method, ``average``
    rows included, Δ in percent by eq. (3)), per_seed.csv, table2.tex, table2.md, Δ plots and,
    with epochs.csv, training-curve and DWA-weight plots; with ``compare_paper`` the side-by-side
    comparison with the published Table 2 (compare_paper.csv/.md/.png/.pdf).
    """
    metrics_csv = Path(metrics_csv)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    side_notes: list[str] = []
    df = _select(load_metrics(metrics_csv), profile, data_source)
    epochs = _select(_read_optional(Path(epochs_csv) if epochs_csv else metrics_csv.with_name("epochs.csv"),
                                    ("dataset", "method", "seed", "epoch", "task"), side_notes),
                     profile, data_source)
    failures = _select(_read_optional(Path(failures_csv) if failures_csv else metrics_csv.with_name("failures.csv"),
                                      ("dataset", "method", "seed"), side_notes),
                       profile, data_source)
    report: Report = compute_report(df)
    groups = sorted(set(report.notes) | set(
        map(tuple, failures[list(GROUP_KEYS)].drop_duplicates().values) if failures is not None else []))
    written: list[Path] = []
    if not groups:
        _write(out / "table2.md", f"# Table 2\n\nNo finished cells in {metrics_csv}"
               + (f" for profile={profile} data_source={data_source}" if profile or data_source else "")
               + ".\n" + "".join(f"\n- {n}" for n in side_notes), written)
        pd.DataFrame(columns=list(TABLE_COLUMNS)).to_csv(out / "table2.csv", index=False)
        return written + [out / "table2.csv"]
    paper = load_paper_table() if compare_paper else None
    for group in groups:
        sfx = "" if len(groups) == 1 else f"_{group[0]}-{group[1]}"
        table = _in_group(report.table, group)
        fails = _in_group(failures, group)
        # notes about the numbers go into the LaTeX; notes about the run's files only into the .md
        notes = report.notes.get(group, []) + _failure_note(fails)
        ep = _in_group(epochs, group)
        md_notes = notes + side_notes
        if ep is None or ep.empty:
            md_notes.append("no epochs.csv for this group: training curves and DWA weights not drawn")
        table.round(6).to_csv(out / f"table2{sfx}.csv", index=False)
        written.append(out / f"table2{sfx}.csv")
        per_seed = _in_group(report.per_seed, group)
        per_seed.round(6).to_csv(out / f"per_seed{sfx}.csv", index=False)
        written.append(out / f"per_seed{sfx}.csv")
        if fails is not None and len(fails):
            fails.to_csv(out / f"failures{sfx}.csv", index=False)
            written.append(out / f"failures{sfx}.csv")
        title = f"Table 2: profile {group[0]}, data source {group[1]}"
        if table.empty:
            _write(out / f"table2{sfx}.md", render_markdown(table, md_notes, fails, title=title), written)
            continue
        label = "tab:table2" + ("" if not sfx else "-" + tex_escape(f"{group[0]}-{group[1]}").replace("\\", ""))
        _write(out / f"table2{sfx}.tex", render_latex(table, notes, label=label), written)
        _write(out / f"table2{sfx}.md", render_markdown(table, md_notes, fails, title=title), written)
        if plots:
            from benchmark import plots as P  # matplotlib only when drawing
            written += P.plot_deltas(table, per_seed, out, sfx)
            written += P.plot_epochs(ep, out, sfx)
        if compare_paper:
            cmp = compare_with_paper(table, paper)
            cmp_notes = list(cmp.attrs.get("notes", []))
            if group[1] != "real":
                cmp_notes.append(f"data source is {group[1]!r}: the published numbers come from the "
                                 "real datasets, so only the direction of effects can be compared")
            cmp.round(6).to_csv(out / f"compare_paper{sfx}.csv", index=False)
            written.append(out / f"compare_paper{sfx}.csv")
            _write(out / f"compare_paper{sfx}.md", render_compare_markdown(cmp, cmp_notes), written)
            if plots:
                from benchmark import plots as P
                written += P.plot_compare(cmp, out, sfx)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns 0 on success, 2 on an input file that breaks the schema."""
    ap = argparse.ArgumentParser(prog="python -m benchmark.report", description=__doc__.split("\n")[0])
    ap.add_argument("--metrics", default="results/metrics.csv", help="long metrics CSV")
    ap.add_argument("--out", default="results/report", help="output folder")
    ap.add_argument("--compare-paper", action="store_true",
                    help="add published vs reproduced tables and plot")
    ap.add_argument("--profile", help="only this profile (default: every profile, one table each)")
    ap.add_argument("--data-source", help="only this data source (default: every one)")
    ap.add_argument("--epochs", help="epochs CSV (default: epochs.csv next to --metrics)")
    ap.add_argument("--failures", help="failures CSV (default: failures.csv next to --metrics)")
    ap.add_argument("--no-plots", action="store_true", help="tables only")
    args = ap.parse_args(argv)
    try:
        paths = write_report(args.metrics, args.out, args.compare_paper, profile=args.profile,
                             data_source=args.data_source, epochs_csv=args.epochs,
                             failures_csv=args.failures, plots=not args.no_plots)
    except ReportInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(paths)} file(s) to {args.out}")
    for p in paths:
        print(f"  {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
