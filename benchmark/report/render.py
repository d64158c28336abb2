"""Table 2 as LaTeX (booktabs) and Markdown, with the paper's bold/underline conventions.

Marking rules, read off the published Table 2 (every mark there is reproduced by them, see
tests/test_report.py and docs/report.md):

* M columns: every method, STL included, direction-aware (lower is better for MAE); values are
  compared as printed (2 decimals), so equal printed values share a mark (OpenKBP dose 0.53).
* Δ_task columns of a dataset: the MTL methods plus STL's implicit Δ = 0, which can take a place
  without showing a mark (STOIC Δ_task1: STL is "best", CTAN's −4.38 % is underlined).
* Δ_mean column and the whole Average block: MTL methods only (OpenKBP: HPS's −0.10 % underlined).
* Best = bold, second best = underlined (dense: ties share), Rank: rank 1 bold, and its method.
"""
from __future__ import annotations

import math
import re
from typing import Hashable, Iterable

import pandas as pd

from benchmark.report.stats import ALPHA, AVERAGE, BASELINE, LOW_POWER_SEEDS, n_tasks, task_cols
from data import DATASETS
from data.spec import METRICS
from benchmark.training.weighting.catalog import WEIGHTINGS
from models.catalog import METHODS, bottleneck_side

DIGITS = 2  # the paper prints two decimals; marks compare printed values
DAGGER, DDAGGER = "†", "‡"


def _finite(x) -> bool:
    try:
        return x is not None and not pd.isna(x) and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _best_second(values: dict[Hashable, float], higher: bool) -> tuple[set, set]:
    """Keys holding the best and the second-best distinct printed value (dense ranking)."""
    distinct = sorted({round(v, DIGITS) for v in values.values()}, reverse=higher)
    best = {k for k, v in values.items() if distinct and round(v, DIGITS) == distinct[0]}
    second = {k for k, v in values.items() if len(distinct) > 1 and round(v, DIGITS) == distinct[1]}
    return best, second


def compute_marks(table: pd.DataFrame) -> dict[tuple[Hashable, str], str]:
    """{(row index, column): 'bold' | 'underline'} following the paper's Table 2 (module doc)."""
    marks: dict[tuple[Hashable, str], str] = {}
    virtual = object()  # STL's implicit Δ = 0: competes, is never drawn
    for dataset, block in table.groupby("dataset", sort=False):
        is_avg = dataset == AVERAGE
        mtl = block[block["method"] != BASELINE]
        stl = block[block["method"] == BASELINE]
        for c in task_cols(n_tasks(table)):
            hib_vals = [v for v in block.get(f"{c}_higher_is_better", pd.Series(dtype=object))
                        if v is not None and not pd.isna(v)]
            higher = bool(hib_vals[0]) if hib_vals else True
            if not is_avg:
                vals = {i: float(v) for i, v in block[f"{c}_mean"].items() if _finite(v)}
                _apply(marks, vals, higher, f"{c}_mean")
            vals = {i: float(v) for i, v in mtl[f"{c}_delta"].items() if _finite(v)}
            if not is_avg and len(stl) and _finite(stl[f"{c}_mean"].iloc[0]) and vals:
                vals[virtual] = 0.0
            _apply(marks, vals, True, f"{c}_delta")
        _apply(marks, {i: float(v) for i, v in mtl["delta_mean"].items() if _finite(v)}, True,
               "delta_mean")
        for i, r in block["rank"].items():
            if _finite(r) and int(r) == 1:
                marks[(i, "rank")] = marks[(i, "method")] = "bold"
    return {k: v for k, v in marks.items() if k[0] is not virtual}


def _apply(marks: dict, values: dict, higher: bool, column: str) -> None:
    best, second = _best_second(values, higher)
    marks.update({(i, column): "bold" for i in best})
    marks.update({(i, column): "underline" for i in second})


# ----------------------------------------------------------------------------- text helpers
def _num(x: float, latex: bool) -> str:
    s = f"{float(x):.{DIGITS}f}"
    if s.lstrip("-").strip("0.") == "":
        s = s.lstrip("-")  # no "-0.00"
    return ("$-$" + s[1:]) if latex and s.startswith("-") else s


_TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
                "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"}
# Δ_mean, Δ_task<k> and M_task<k> (any k, or none) become math first, then the single symbols.
_TEX_TASK = re.compile(r"(Δ|M)\\_task(\d*)")
_TEX_UNICODE = {"Δ": r"$\Delta$", "±": r"$\pm$", "≥": r"$\geq$",
                "≤": r"$\leq$", "†": r"$^{\dagger}$", "‡": r"$^{\ddagger}$", "−": "-", "–": "--",
                "—": "---", "→": r"$\rightarrow$", "×": r"$\times$", "λ": r"$\lambda$", "↑": r"$\uparrow$",
                "↓": r"$\downarrow$", "’": "'", "“": "``", "”": "''"}


def tex_escape(text: str) -> str:
    """Escape free text for pdflatex; the few Unicode symbols we write become math."""
    out = "".join(_TEX_SPECIAL.get(ch, ch) for ch in str(text))
    out = out.replace("Δ\\_mean", r"$\Delta_{mean}$")
    out = _TEX_TASK.sub(lambda m: ("$\\Delta" if m[1] == "Δ" else "$M") + "_{task" + m[2] + "}$", out)
    for uni, tex in _TEX_UNICODE.items():
        out = out.replace(uni, tex)
    return out.encode("ascii", "replace").decode("ascii")  # pdflatex without inputenc tricks


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def dataset_label(d: str) -> str:
    if d == AVERAGE:
        return "Average"
    return DATASETS[d].spec.label if d in DATASETS else d


def method_label(m: str) -> str:
    """A method's table label; ``method+weighting`` rows (the extended view) as "HPS + PCGrad"."""
    if m in METHODS:
        return METHODS[m].label
    method, _, weighting = m.partition("+")
    if method in METHODS and weighting:
        name, _, params = weighting.partition("+")
        wlabel = WEIGHTINGS[name].label if name in WEIGHTINGS else name
        return f"{METHODS[method].label} + {wlabel}" + (f" ({params.replace('+', ', ')})" if params else "")
    return m.upper()


def _task_phrase(row: pd.Series, c: str) -> str:
    name, metric = row.get(f"{c}_name", ""), row.get(f"{c}_metric", "")
    if not isinstance(name, str) or not name:
        return ""
    label, unit = (METRICS[metric].label, METRICS[metric].unit) if metric in METRICS else (metric, "")
    hib = row.get(f"{c}_higher_is_better")
    arrow = "" if hib is None or pd.isna(hib) else ("higher is better" if hib else "lower is better")
    return f"{name} ({', '.join(x for x in (label, unit, arrow) if x)})"


def _meta(table: pd.DataFrame) -> dict:
    """Profile, data source, seeds and seed counts of a one-group table, for captions."""
    def first(col):
        vals = [v for v in table.get(col, pd.Series(dtype=object)) if isinstance(v, str) and v]
        return vals[0] if vals else None
    seeds = sorted({int(s) for v in table.get("seeds", pd.Series(dtype=object))
                    if isinstance(v, str) for s in v.split()})
    paired = pd.to_numeric(table.get("n_paired", pd.Series(dtype=float)), errors="coerce")
    paired = paired[table["method"] != BASELINE] if "method" in table else paired
    return {"profile": first("profile"), "data_source": first("data_source"), "seeds": seeds,
            "max_paired": int(paired.max()) if paired.notna().any() else 0,
            "min_paired": int(paired.min()) if paired.notna().any() else 0,
            "has_p": any(c.endswith("_p") for c in table.columns)}


def _bottleneck_phrase(table: pd.DataFrame) -> str:
    """" Input 48 px: CTAB bottleneck 2×2." from the cells' recorded input sizes (empty when the
    metrics CSV has no image_size column)."""
    sizes: dict[int, list[str]] = {}
    for d, block in table[table["dataset"] != AVERAGE].groupby("dataset", sort=False):
        for size in pd.to_numeric(block.get("image_size", pd.Series(dtype=float)), errors="coerce").dropna().unique():
            sizes.setdefault(int(size), []).append(dataset_label(d))
    parts = [f"{size} px{' (' + ', '.join(names) + ')' if len(sizes) > 1 else ''}: CTAB bottleneck "
             f"{bottleneck_side(size)}×{bottleneck_side(size)}" for size, names in sizes.items()]
    return f" Input {'; '.join(parts)}." if parts else ""


def caption_text(table: pd.DataFrame) -> str:
    """Plain-text caption: source, profile, seeds, tasks and the marking conventions."""
    meta = _meta(table)
    if meta["profile"] is None and meta["data_source"] is None:
        src = "Published values of the paper's Table 2."
    else:
        seeds = ", ".join(map(str, meta["seeds"])) or "none"
        n = len(meta["seeds"])
        spread = (" Values are mean ± standard deviation over seeds; for Δ the ± is the standard "
                  "deviation of per-seed Δ, seeds paired with STL.") if n > 1 else ""
        src = (f"Reproduction on {meta['data_source']} data, profile {meta['profile']}, "
               f"seed{'s' if n != 1 else ''} {seeds}.{spread}{_bottleneck_phrase(table)}")
    cols = task_cols(n_tasks(table))
    tasks = []
    for d, block in table[table["dataset"] != AVERAGE].groupby("dataset", sort=False):
        r = block.iloc[0]
        parts = [p for p in (_task_phrase(r, c) for c in cols) if p]
        tasks.append(f"{dataset_label(d)}: " + " / ".join(parts))
    labels = [method_label(m) for m in dict.fromkeys(table["method"])]
    methods = ", ".join(labels[:-1]) + " and " + labels[-1] if len(labels) > 1 else "".join(labels)
    of = "the two Δ_task" if len(cols) == 2 else "a dataset's Δ_task"
    return (f"Results of task-specific metrics (M_task) and their relative difference to STL "
            f"(Δ_task, eq. (3), in %, positive = better than STL) of {methods}. {src} "
            f"Tasks {' / '.join(str(k) for k in range(1, len(cols) + 1))}: {'; '.join(tasks)}. "
            f"Δ_mean is the mean of {of}; rank by Δ_mean "
            f"with STL at 0. Best and second-best results are bolded and underlined, respectively. "
            f"Average values are only calculated for relative performance difference of MTL methods.")


def footnotes(table: pd.DataFrame, notes: Iterable[str] = ()) -> list[str]:
    """Statistical footnotes (daggers, power, single seed) followed by data notes."""
    meta = _meta(table)
    out: list[str] = []
    if meta["has_p"] and meta["max_paired"] >= 2:
        n = (f"{meta['min_paired']}" if meta["min_paired"] == meta["max_paired"]
             else f"{meta['min_paired']}-{meta['max_paired']}")
        out.append(f"{DAGGER} Not significantly different from STL (two-sided paired t-test over "
                   f"{n} seeds, p ≥ {ALPHA}): a tie within seed noise, whatever the bold or "
                   f"underline says.")
        out.append(f"{DDAGGER} Rank not significantly better than the next-ranked method "
                   f"(paired t-test on per-seed Δ_mean, p ≥ {ALPHA}).")
        if meta["min_paired"] < LOW_POWER_SEEDS:
            out.append(f"Only {n} paired seeds: the tests have low power, so the absence of a "
                       f"{DAGGER} is weak evidence of a real difference.")
    elif meta["has_p"]:
        out.append("Single seed: no significance test is possible; differences may be within "
                   "seed noise.")
    return out + [str(n) for n in notes]


def _cells(table: pd.DataFrame, latex: bool) -> list[list[str]]:
    """Body cells with marks and significance symbols, in Table 2's column order."""
    marks = compute_marks(table)
    bold = (lambda s: rf"\textbf{{{s}}}") if latex else (lambda s: f"**{s}**")
    under = (lambda s: rf"\underline{{{s}}}") if latex else (lambda s: f"<u>{s}</u>")
    pm = r" $\pm$ " if latex else " ± "
    pct = r"\%" if latex else "%"
    dag = (r"$^{\dagger}$", r"$^{\ddagger}$") if latex else (DAGGER, DDAGGER)
    cols = task_cols(n_tasks(table))
    deltas = (*[f"{t}_delta" for t in cols], "delta_mean")
    rows: list[list[str]] = []
    previous = None
    for i, r in table.iterrows():
        is_avg, is_stl = r["dataset"] == AVERAGE, r["method"] == BASELINE
        cells = {"method": method_label(r["method"])}
        for c in cols:
            m, sd = r.get(f"{c}_mean"), r.get(f"{c}_std")
            if is_avg:
                cells[f"{c}_mean"] = "--" if latex else "-"
            else:
                cells[f"{c}_mean"] = (_num(m, latex) + (pm + _num(sd, latex) if _finite(sd) else "")
                                      if _finite(m) else ("" if not r.get(f"{c}_name") else "n/a"))
        for c in deltas:
            v = r.get(c)
            sd = r.get(f"{c}_std" if c == "delta_mean" else c.replace("_delta", "_delta_std"))
            if is_stl:
                cells[c] = ""
            elif not _finite(v):
                cells[c] = "n/a" if (c == "delta_mean" or r.get(c.replace("_delta", "_name"))) else ""
            else:
                cells[c] = _num(v, latex) + (pm + _num(sd, latex) if _finite(sd) else "") + pct
        cells["rank"] = str(int(r["rank"])) if _finite(r.get("rank")) else "n/a"
        for col in cells:
            mark = marks.get((i, col))
            if mark and cells[col] not in ("", "n/a"):
                cells[col] = bold(cells[col]) if mark == "bold" else under(cells[col])
        for c in deltas:
            p = r.get(c.replace("_delta", "_p") if c != "delta_mean" else "delta_mean_p")
            if not is_stl and _finite(p) and float(p) >= ALPHA and cells[c] not in ("", "n/a"):
                cells[c] += dag[0]
        if _finite(r.get("vs_next_p")) and float(r["vs_next_p"]) >= ALPHA:
            cells["rank"] += dag[1]
        label = dataset_label(r["dataset"]) if r["dataset"] != previous else ""
        previous = r["dataset"]
        rows.append([tex_escape(label) if latex else label, cells["method"],
                     *[cells[c] for c in mark_columns(len(cols))]])
    return rows


def ci_line(r: pd.Series, intervals: pd.DataFrame | None, n: int, latex: bool) -> list[str] | None:
    """The compact second line of a row (``--ci``): each Δ's 95 % interval from ``intervals``
    (``benchmark.report.intervals.table_intervals``), or None when the row has none."""
    if intervals is None or intervals.empty or r["dataset"] == AVERAGE or r["method"] == BASELINE:
        return None
    hit = intervals[(intervals["dataset"] == r["dataset"]) & (intervals["method"] == r["method"])]
    if hit.empty:
        return None
    iv = hit.iloc[0]
    wrap = (lambda t: r"{\scriptsize " + t + "}") if latex else (lambda t: t)

    def span(prefix: str) -> str:
        lo, hi = iv.get(f"{prefix}_ci_low"), iv.get(f"{prefix}_ci_high")
        return wrap(f"[{lo:+.2f}, {hi:+.2f}]") if _finite(lo) and _finite(hi) else ""

    cells = []
    for c in task_cols(n):
        cells += ["", span(c)]
    return ["", "", *cells, span("delta_mean") + ("*" if bool(iv.get("significant")) else ""), ""]


def mark_columns(n: int) -> list[str]:
    """The table's value columns in Table 2's order: M and Δ of each task, Δ_mean, rank."""
    return [f"{c}_{k}" for c in task_cols(n) for k in ("mean", "delta")] + ["delta_mean", "rank"]


def header_tex(n: int) -> str:
    tasks = [rf"$M_{{{c}}}$ & $\Delta_{{{c}}}\uparrow$" for c in task_cols(n)]
    return " & ".join(["Dataset", "Method", *tasks, r"$\Delta_{mean}\uparrow$", r"Rank \\"])


def header_md(n: int) -> list[str]:
    tasks = [x for c in task_cols(n) for x in (f"M_{c}", f"Δ_{c} ↑")]
    return ["Dataset", "Method", *tasks, "Δ_mean ↑", "Rank"]


CI_NOTE = ("Second lines: 95 % intervals of each Δ from a paired two-level bootstrap over seeds and test cases; "
           "* = significant after Holm's correction (intervals.md)")


def render_latex(table: pd.DataFrame, notes: Iterable[str] = (), caption: str | None = None,
                 label: str = "tab:table2", intervals: pd.DataFrame | None = None) -> str:
    """A booktabs ``table`` environment like the paper's Table 2 (needs \\usepackage{booktabs}).

    One group (profile, data source) per call. Best bold, second underlined (module doc); † marks
    a Δ not significantly different from STL, ‡ a rank within noise of the next one.
    """
    caption = caption_text(table) if caption is None else caption
    if intervals is not None:
        caption += " " + CI_NOTE + "."
    n = n_tasks(table)
    body = _cells(table, latex=True)
    lines = ["% Table 2 reproduction, written by benchmark.report; needs \\usepackage{booktabs}",
             r"\begin{table}[t]", r"\centering", r"\caption{" + tex_escape(caption) + "}",
             r"\label{" + label + "}", r"\begin{tabular}{ll" + "c" * (2 * n + 2) + "}", r"\toprule",
             header_tex(n),
             r"\midrule"]
    previous = None
    for (i, r), cells in zip(table.iterrows(), body):
        if previous is not None and r["dataset"] != previous:
            lines.append(r"\midrule")
        previous = r["dataset"]
        lines.append(" & ".join(cells) + r" \\")
        extra = ci_line(r, intervals, n, latex=True)
        if extra:
            lines.append(" & ".join(extra) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    foot = footnotes(table, notes)
    if foot:
        lines += [r"\par\smallskip", r"\parbox{\linewidth}{\footnotesize"]
        lines += [tex_escape(f) + (r" \\" if k < len(foot) - 1 else "") for k, f in enumerate(foot)]
        lines.append("}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def _md_table(header: list[str], rows: list[list[str]], align: str = "l") -> list[str]:
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join(":---" if k < 2 or align == "l" else "---:" for k in range(len(header))) + "|"]
    return out + ["| " + " | ".join(_md_escape(c) for c in r) + " |" for r in rows]


def render_markdown(table: pd.DataFrame, notes: Iterable[str] = (),
                    failures: pd.DataFrame | None = None, title: str = "Table 2",
                    intervals: pd.DataFrame | None = None) -> str:
    """Markdown version of :func:`render_latex` plus the failed cells, if any."""
    lines = [f"# {title}", ""]
    if table.empty:
        lines.append("No finished cells.")
    else:
        lines += [caption_text(table) + (" " + CI_NOTE + "." if intervals is not None else ""), ""]
        n = n_tasks(table)
        rows = []
        for (_, r), cells in zip(table.iterrows(), _cells(table, latex=False)):
            rows.append(cells)
            extra = ci_line(r, intervals, n, latex=False)
            if extra:
                rows.append(extra)
        lines += _md_table(header_md(n), rows, align="r")
    foot = footnotes(table, notes)
    if foot:
        lines += ["", *[f"- {_md_escape(f)}" for f in foot]]
    if failures is not None and len(failures):
        lines += ["", f"## Failed cells ({len(failures)})", ""]
        cols = [c for c in ("dataset", "method", "seed", "error") if c in failures.columns]
        lines += _md_table(cols, [[str(v) for v in r] for r in failures[cols].itertuples(index=False)])
    return "\n".join(lines) + "\n"


def render_compare_markdown(compare: pd.DataFrame, notes: Iterable[str] = ()) -> str:
    """Published vs reproduced vs difference (reproduced − published) for each column."""
    cols = [c for c in ("task1_mean", "task1_delta", "task2_mean", "task2_delta", "delta_mean",
                        "rank") if f"{c}_published" in compare]
    short = {"task1_mean": "M1", "task1_delta": "Δ1", "task2_mean": "M2", "task2_delta": "Δ2",
             "delta_mean": "Δmean", "rank": "rank"}
    header = ["Dataset", "Method"] + [f"{short[c]} {k}" for c in cols for k in ("pub", "rep", "diff")]
    rows = []
    for _, r in compare.iterrows():
        row = [dataset_label(r["dataset"]), method_label(r["method"])]
        for c in cols:
            row += ["" if not _finite(r[f"{c}_{k}"]) else
                    (str(int(r[f"{c}_{k}"])) if c == "rank" else _num(r[f"{c}_{k}"], False))
                    for k in ("published", "reproduced", "diff")]
        rows.append(row)
    lines = ["# Table 2: published vs reproduced", "",
             "pub = the paper's Table 2, rep = this run, diff = rep − pub (Δ in percentage points).",
             ""] + _md_table(header, rows, align="r")
    notes = list(notes)
    if notes:
        lines += ["", *[f"- {_md_escape(n)}" for n in notes]]
    return "\n".join(lines) + "\n"
