"""The report's files: Table 2 (Δ_task by eq. 3, Δ_mean, ranks) as CSV, LaTeX and Markdown, and plots.

Reads the long ``metrics.csv`` of docs/results-schema.md and, when they sit next to it,
``epochs.csv`` (training curves, DWA weights) and ``failures.csv`` (listed in the report). One
table per (profile, data_source) group: plain file names when there is one group, else the suffix
``_<profile>-<data_source>``. Conventions: docs/report.md.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark import atomic
from benchmark.report import plots as P
from benchmark.report.inputs import GROUP_KEYS, ReportInputError, load_metrics, read_optional
from benchmark.report.paper import compare_with_paper, load_paper_table
from benchmark.report.render import (dataset_label, method_label, render_compare_markdown, render_latex,
                                     render_markdown, tex_escape)
from benchmark.report.extended import (ablation_table, beyond_paper, datasets_of, delta_matrix,
                                       render_ablation_latex, render_ablation_markdown)
from benchmark.report.inputs import normalize_metrics
from benchmark.report.secondary import load_anchors, render_secondary_markdown, secondary_table
from benchmark.report.reference import compare_runs, load_reference, render_reference_markdown
from benchmark.report.stats import AVERAGE, Report, compute_report
from benchmark.report.cases import load_cases
from benchmark.report.ranks import friedman_nemenyi, plot_cd, scores_of
from benchmark.report.ranks import render_markdown as render_ranks_markdown
from benchmark.report.intervals import layout_of, render_intervals_latex, render_intervals_markdown, table_intervals
from benchmark.training.weighting.catalog import DEFAULT
from models.catalog import BASELINE


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


class ReportWriteError(OSError):
    """A report file could not be written: the message names the file and the cause."""


def _write(path: Path, content: str | pd.DataFrame, written: list[Path]) -> None:
    """Write text, or a table as CSV, atomically (a kill never leaves a truncated file)."""
    atomic.write_text(path, content if isinstance(content, str) else content.to_csv(index=False))
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
                 plots: bool = True, reference: str | None = None, ci: bool = False, log=print) -> list[Path]:
    """Render the report of ``metrics_csv`` into ``out_dir``; returns the files written.

    Per (profile, data_source) group: table2.csv (one row per dataset and method, ``average``
    rows included, Δ in percent by eq. (3)), per_seed.csv, table2.tex, table2.md, Δ plots and,
    with epochs.csv, training-curve and DWA-weight plots; with ``compare_paper`` the side-by-side
    comparison with the published Table 2 (compare_paper.csv/.md/.png/.pdf).
    """
    metrics_csv = Path(metrics_csv)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        atomic.remove_stale_temporaries(out)
        written = _write_groups(metrics_csv, out, compare_paper, profile, data_source, epochs_csv, failures_csv,
                                plots, ci)
        if reference is not None:
            ref, provenance = load_reference(reference)
            cmp = compare_runs(_select(load_metrics(metrics_csv), profile, data_source), ref)
            name = Path(reference).name
            _write(out / f"reference_{name}.csv", cmp.round(6), written)
            _write(out / f"reference_{name}.md", render_reference_markdown(cmp, provenance, name), written)
        removed = remove_stale_products(out, written)
        if removed:
            removed.sort(key=lambda p: (not p.name.startswith("table2"), p.name))
            why = ("tables are now per (profile, data source), named *_<profile>-<source>"
                   if any(p.stem in PRODUCTS for p in removed) else "stale")
            log(f"report: removed {len(removed)} file(s) of an earlier render that this one does not write "
                f"({', '.join(p.name for p in removed[:6])}{' ...' if len(removed) > 6 else ''}): {why}")
        return written
    except OSError as exc:
        raise ReportWriteError(f"report not written: {atomic.describe(out, exc)}") from None


# The report's own products: a file of the report folder with one of these stems (plain, or followed by
# ``_<profile>-<source>`` or another part) that a render does not write is left from an earlier one.
PRODUCTS = ("table2", "per_seed", "intervals", "extended", "ablation", "heatmap", "delta_mean", "delta_tasks",
            "training_curves", "validation_curves", "dwa_weights", "compare_paper", "secondary", "ranks",
            "critical_difference", "failures", "reference")
SUFFIXES = (".csv", ".md", ".tex", ".png", ".pdf")


def remove_stale_products(out: Path, written: list[Path]) -> list[Path]:
    """Delete the report files an earlier render wrote and this one did not -- e.g. the plain
    ``table2.tex`` once a second profile makes the tables per group -- so that a LaTeX ``\\input``
    of it fails instead of silently keeping a stale table. Returns what was removed."""
    keep = {p.resolve() for p in written}
    removed = []
    for path in sorted(out.iterdir()):
        if (path.is_file() and path.suffix in SUFFIXES and path.resolve() not in keep
                and any(path.stem == s or path.stem.startswith(s + "_") for s in PRODUCTS)):
            path.unlink()
            removed.append(path)
    return removed


def _write_extended(extended: Report, group: tuple[str, str], sfx: str, out: Path, plots: bool,
                    cases: pd.DataFrame | None = None, ci: bool = False) -> list[Path]:
    """The extended view of one group: every (architecture, weighting) row ranked (csv, md, tex), its
    intervals (with cases), the ablation table and the Δ_mean heat map."""
    written: list[Path] = []
    table, per_seed = _in_group(extended.table, group), _in_group(extended.per_seed, group)
    if table.empty:
        return written
    iv = paper_intervals(table, cases, view="extended")
    written += _write_intervals(iv, out, sfx, f"Every architecture x loss weighting with intervals: profile "
                                              f"{group[0]}, data source {group[1]}", name="extended_intervals")
    shown = iv if ci else None
    title = f"Every architecture x loss weighting: profile {group[0]}, data source {group[1]}"
    label = "tab:extended" + ("" if not sfx else "-" + tex_escape(f"{group[0]}-{group[1]}").replace("\\", ""))
    _write(out / f"extended{sfx}.csv", table.round(6), written)
    _write(out / f"extended{sfx}.md", render_markdown(table, extended.notes.get(group, []), title=title,
                                                      intervals=shown), written)
    _write(out / f"extended{sfx}.tex", render_latex(table, extended.notes.get(group, []), label=label,
                                                    intervals=shown), written)
    abl = ablation_table(table, per_seed)
    if abl["method"].nunique() > 1:
        _write(out / f"ablation{sfx}.csv", abl.round(6), written)
        _write(out / f"ablation{sfx}.md", render_ablation_markdown(abl, f"Ablation of CTAN's modules ({group[0]}, "
                                                                        f"{group[1]})"), written)
        _write(out / f"ablation{sfx}.tex", render_ablation_latex(
            abl, f"Ablation of CTAN's modules: profile {group[0]}, data source {group[1]}.",
            label.replace("extended", "ablation")), written)
    if plots:
        shown = datasets_of(table)
        if len(shown) == 2 and AVERAGE in shown:          # one dataset: its panel is the average
            shown = [d for d in shown if d != AVERAGE]
        written += P.plot_heatmap({dataset_label(d): delta_matrix(table, d) for d in shown}, out, sfx)
    return written


def title_of(group: tuple[str, str]) -> str:
    return f"Table 2's comparisons with intervals: profile {group[0]}, data source {group[1]}"


def paper_intervals(table: pd.DataFrame, cases: pd.DataFrame | None, view: str = "paper") -> pd.DataFrame | None:
    """Intervals of every Δ of a view's table (``intervals.table_intervals``), None without cases."""
    if cases is None or cases.empty or table.empty:
        return None
    labels = [m for m in table["method"].unique() if m != BASELINE]
    if view == "paper":
        methods = [(m, m, DEFAULT) for m in labels]
    else:  # extended rows are "method+weighting"; a weighting's own label may hold "+" (cagrad+c=0.4)
        methods = [(m, *m.split("+", 1)) for m in labels if "+" in m]
    iv = table_intervals(cases, layout_of(table), methods)
    return None if iv.empty else iv


def _write_intervals(iv: pd.DataFrame | None, out: Path, sfx: str, title: str, name: str = "intervals") -> list[Path]:
    """intervals.{csv,md,tex}: every Δ of a view with its interval and tests (cases.csv)."""
    if iv is None:
        return []
    written: list[Path] = []
    _write(out / f"{name}{sfx}.csv", iv.drop(columns="comparison").round(6), written)
    _write(out / f"{name}{sfx}.md", render_intervals_markdown(iv, load_paper_table(), title), written)
    _write(out / f"{name}{sfx}.tex", render_intervals_latex(iv, label=f"tab:{name}"), written)
    return written


def _write_groups(metrics_csv: Path, out: Path, compare_paper: bool, profile: str | None, data_source: str | None,
                  epochs_csv, failures_csv, plots: bool, ci: bool = False) -> list[Path]:
    side_notes: list[str] = []
    every = load_metrics(metrics_csv)
    for column, wanted in (("profile", profile), ("data_source", data_source)):
        present = sorted(every[column].astype(str).unique())
        if wanted is not None and present and wanted not in present:   # a typo is not "no results"
            raise ReportInputError(f"{metrics_csv}: no rows with {column} {wanted!r}; it holds {present}")
    df = _select(every, profile, data_source)
    epochs = _select(read_optional(Path(epochs_csv) if epochs_csv else metrics_csv.with_name("epochs.csv"),
                                    ("dataset", "method", "seed", "epoch", "task"), side_notes),
                     profile, data_source)
    failures = _select(read_optional(Path(failures_csv) if failures_csv else metrics_csv.with_name("failures.csv"),
                                      ("dataset", "method", "seed"), side_notes),
                       profile, data_source)
    found = [p for p in (metrics_csv.with_name("cases.csv"), metrics_csv.with_name("cases.csv.gz")) if p.is_file()]
    cases = _select(load_cases(found[0]), profile, data_source) if found else None
    report: Report = compute_report(df)
    extended: Report | None = compute_report(df, "extended") if beyond_paper(normalize_metrics(df)) else None
    groups = sorted(set(report.notes) | set(extended.notes if extended is not None else ()) | set(
        map(tuple, failures[list(GROUP_KEYS)].drop_duplicates().values) if failures is not None else []))
    written: list[Path] = []
    if not groups:
        _write(out / "table2.md", f"# Table 2\n\nNo finished cells in {metrics_csv}"
               + (f" for profile={profile} data_source={data_source}" if profile or data_source else "")
               + ".\n" + "".join(f"\n- {n}" for n in side_notes), written)
        _write(out / "table2.csv", report.table.iloc[0:0], written)
        return written
    paper = load_paper_table() if compare_paper else None
    normalized = normalize_metrics(df)      # once, not per group
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
        _write(out / f"table2{sfx}.csv", table.round(6), written)
        secondary = secondary_table(_in_group(normalized, group))
        if len(secondary):
            _write(out / f"secondary{sfx}.csv", secondary.round(6), written)
            _write(out / f"secondary{sfx}.md", render_secondary_markdown(
                secondary, load_anchors(), f"Other test metrics: profile {group[0]}, data source {group[1]}"), written)
        iv = paper_intervals(table, _in_group(cases, group))
        written += _write_intervals(iv, out, sfx, title_of(group))
        shown = iv if ci else None
        per_seed = _in_group(report.per_seed, group)
        _write(out / f"per_seed{sfx}.csv", per_seed.round(6), written)
        if fails is not None and len(fails):
            _write(out / f"failures{sfx}.csv", fails, written)
        if extended is not None:
            written += _write_extended(extended, group, sfx, out, plots, _in_group(cases, group), ci)
        title = f"Table 2: profile {group[0]}, data source {group[1]}"
        if table.empty:
            _write(out / f"table2{sfx}.md", render_markdown(table, md_notes, fails, title=title), written)
            continue
        label = "tab:table2" + ("" if not sfx else "-" + tex_escape(f"{group[0]}-{group[1]}").replace("\\", ""))
        _write(out / f"table2{sfx}.tex", render_latex(table, notes, label=label, intervals=shown), written)
        _write(out / f"table2{sfx}.md", render_markdown(table, md_notes, fails, title=title, intervals=shown), written)
        ranked = friedman_nemenyi(scores_of(table))
        if ranked is not None:
            _write(out / f"ranks{sfx}.md", render_ranks_markdown(
                ranked, f"Methods over datasets: profile {group[0]}, data source {group[1]}", method_label), written)
            if plots:
                written += plot_cd(ranked, out / f"critical_difference{sfx}", method_label)
        if plots:
            written += P.plot_deltas(table, per_seed, out, sfx)
            written += P.plot_epochs(ep, out, sfx)
        if compare_paper:
            cmp = compare_with_paper(table, paper)
            cmp_notes = list(cmp.attrs.get("notes", []))
            if group[1] != "real":
                cmp_notes.append(f"data source is {group[1]!r}: the published numbers come from the "
                                 "real datasets, so only the direction of effects can be compared")
            _write(out / f"compare_paper{sfx}.csv", cmp.round(6), written)
            _write(out / f"compare_paper{sfx}.md", render_compare_markdown(cmp, cmp_notes), written)
            if plots:
                written += P.plot_compare(cmp, out, sfx)
    return written
