"""Plots of the report (PNG and PDF): Δ_mean and per-task Δ with seed spread, training curves,
DWA weights, published vs reproduced.

matplotlib is imported inside the functions (importing the report stays cheap) and only
the object-oriented API with the Agg canvas is used: no pyplot global state, safe in workers.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.atomic import replacing
from benchmark.report.render import method_label
from benchmark.report.stats import AVERAGE, BASELINE, CANONICAL_METHODS, n_tasks, task_cols
from benchmark.training.weighting.catalog import DEFAULT, NONE
from data.spec import METRICS

DPI = 100


def _figure(nrows: int = 1, ncols: int = 1, size: tuple[float, float] = (7.0, 3.6)):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _save(fig, stem: Path) -> list[Path]:
    """Write ``stem``.png and ``stem``.pdf; metadata dates off so reruns give identical files."""
    paths = []
    for ext, meta in (("png", {"Software": None}), ("pdf", {"CreationDate": None, "Producer": None})):
        path = stem.with_suffix(f".{ext}")
        with replacing(path) as tmp:  # a kill while drawing never leaves a truncated figure
            fig.savefig(tmp, format=ext, dpi=DPI, metadata=meta)
        paths.append(path)
        # the layout solved for the PNG holds for the PDF: solving it again doubles the time
        fig.set_layout_engine("none")
    return paths


def _note(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9, wrap=True)
    ax.set_axis_off()


def _bars(ax, table: pd.DataFrame, per_seed: pd.DataFrame, column: str, title: str) -> None:
    """Grouped bars of one Δ column per dataset and MTL method; error bar = std of per-seed Δ,
    dots = the per-seed values, so the spread is seen, not only summarised."""
    mtl = table[table["method"] != BASELINE]
    datasets = list(dict.fromkeys(mtl["dataset"]))
    methods = list(dict.fromkeys(mtl["method"]))
    if not datasets or mtl[column].notna().sum() == 0:
        _note(ax, f"{title}: no Δ available (no STL baseline?)")
        return
    width = 0.8 / max(len(methods), 1)
    x = np.arange(len(datasets))
    std_col = "delta_mean_std" if column == "delta_mean" else column.replace("_delta", "_delta_std")
    for k, m in enumerate(methods):
        sub = mtl[mtl["method"] == m].set_index("dataset").reindex(datasets)
        pos = x - 0.4 + width * (k + 0.5)
        ax.bar(pos, sub[column].astype(float).fillna(0.0), width, label=method_label(m),
               yerr=sub[std_col].astype(float).fillna(0.0), capsize=3, alpha=0.85)
        if len(per_seed):
            for j, d in enumerate(datasets):
                pts = per_seed[(per_seed["dataset"] == d) & (per_seed["method"] == m)][column]
                ax.plot(np.full(len(pts), pos[j]), pts, "k.", ms=3)
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xticks(x, [d if d != AVERAGE else "average" for d in datasets])
    ax.set_ylabel("% vs STL (eq. 3)")
    ax.set_title(title)
    ax.legend(fontsize=8)


def plot_deltas(table: pd.DataFrame, per_seed: pd.DataFrame, out_dir: Path, suffix: str = "") -> list[Path]:
    """delta_mean{suffix}.png/pdf and delta_tasks{suffix}.png/pdf."""
    fig, axes = _figure()
    _bars(axes[0, 0], table, per_seed, "delta_mean", "Δ_mean per method and dataset")
    paths = _save(fig, out_dir / f"delta_mean{suffix}")
    cols = task_cols(n_tasks(table))
    fig, axes = _figure(1, len(cols))
    for k, c in enumerate(cols):
        _bars(axes[0, k], table, per_seed, f"{c}_delta", f"Δ_{c}")
    return paths + _save(fig, out_dir / f"delta_tasks{suffix}")


def _curve_axes(epochs: pd.DataFrame, value: str, title: str, out: Path, mtl_only: bool,
                ylabel: str | None = None) -> list[Path]:
    """One panel per (dataset, task): mean over seeds per method and epoch, band = min..max; whole
    epochs on the x axis; ``ylabel`` (default: the task's validation metric with its unit)."""
    from matplotlib.ticker import MaxNLocator

    data = epochs[epochs["method"] != BASELINE] if mtl_only else epochs
    data = data[pd.to_numeric(data[value], errors="coerce").notna()] if value in data else data.iloc[0:0]
    panels = list(dict.fromkeys(zip(data["dataset"], data["task"])))
    if not panels:
        fig, axes = _figure()
        _note(axes[0, 0], f"{title}: nothing to plot")
        return _save(fig, out)
    ncols = 2
    nrows = (len(panels) + ncols - 1) // ncols
    fig, axes = _figure(nrows, ncols, size=(5.0, 3.0))
    for ax, (d, t) in zip(axes.flat, panels):
        sub = data[(data["dataset"] == d) & (data["task"] == t)]
        order = {m: k for k, m in enumerate(CANONICAL_METHODS)}
        for m in sorted(sub["method"].unique(), key=lambda m: (order.get(m, len(order)), m)):
            g = sub[sub["method"] == m]
            stats = g.assign(v=pd.to_numeric(g[value])).groupby("epoch")["v"].agg(["mean", "min", "max"])
            ax.plot(stats.index, stats["mean"], label=method_label(m))
            ax.fill_between(stats.index, stats["min"], stats["max"], alpha=0.2)
        ax.set_title(f"{d} / {t}", fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel or _metric_label(sub))
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_axis_off()
    fig.suptitle(title)
    return _save(fig, out)


def _metric_label(rows: pd.DataFrame) -> str:
    """The validation metric of a panel's rows, as captions name it, with its unit."""
    names = rows["val_metric"].dropna().unique() if "val_metric" in rows else []
    if len(names) != 1 or names[0] not in METRICS:
        return "validation metric"
    m = METRICS[names[0]]
    return f"validation {m.label} ({m.unit})"


def plot_epochs(epochs: pd.DataFrame | None, out_dir: Path, suffix: str = "") -> list[Path]:
    """training_curves (train loss), validation curves and DWA weights per epoch."""
    if epochs is None or epochs.empty:
        return []
    paths = _curve_axes(epochs, "train_loss", "Training loss per task (mean over seeds, band = min..max)",
                        out_dir / f"training_curves{suffix}", mtl_only=False, ylabel="training loss (unweighted)")
    if "val_value" in epochs:
        paths += _curve_axes(epochs, "val_value", "Validation primary metric per task",
                             out_dir / f"validation_curves{suffix}", mtl_only=False)
    # The loss weights of Table 2's view (the paper's methods under DWA); ``dwa_weight`` is the column's
    # name in CSVs from before weightings were an axis.
    weight = next((c for c in ("loss_weight", "dwa_weight") if c in epochs), None)
    paper = epochs[epochs["method"].isin(CANONICAL_METHODS)]
    if "weighting" in paper:
        paper = paper[paper["weighting"].isin([DEFAULT, NONE])]
    if weight is not None:
        paths += _curve_axes(paper, weight, "DWA weight λ_k per epoch (MTL methods)",
                             out_dir / f"dwa_weights{suffix}", mtl_only=True, ylabel="loss weight λ_k")
    return paths


def plot_compare(compare: pd.DataFrame, out_dir: Path, suffix: str = "") -> list[Path]:
    """Published vs reproduced Δ values: one dot per (dataset, method, Δ column), identity line."""
    fig, axes = _figure(1, 2, size=(5.0, 4.0))
    ax = axes[0, 0]
    cols = ("task1_delta", "task2_delta", "delta_mean")
    lo, hi = 0.0, 0.0
    for c, marker in zip(cols, "os^"):
        pub, rep = compare[f"{c}_published"].astype(float), compare[f"{c}_reproduced"].astype(float)
        ok = pub.notna() & rep.notna()
        ax.scatter(pub[ok], rep[ok], marker=marker, label=c, s=25)
        if ok.any():
            lo, hi = min(lo, pub[ok].min(), rep[ok].min()), max(hi, pub[ok].max(), rep[ok].max())
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set_xlabel("published Δ (%)")
    ax.set_ylabel("reproduced Δ (%)")
    ax.set_title("Δ: published vs reproduced")
    ax.legend(fontsize=8)
    ax = axes[0, 1]
    sub = compare[compare["method"] != BASELINE]
    labels = [f"{d}\n{m}" for d, m in zip(sub["dataset"], sub["method"])]
    x = np.arange(len(sub))
    ax.bar(x - 0.2, sub["delta_mean_published"].astype(float).fillna(0.0), 0.4, label="published")
    ax.bar(x + 0.2, sub["delta_mean_reproduced"].astype(float).fillna(0.0), 0.4, label="reproduced")
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xticks(x, labels, fontsize=6, rotation=90)
    ax.set_ylabel("Δ_mean (%)")
    ax.set_title("Δ_mean per dataset and method")
    ax.legend(fontsize=8)
    return _save(fig, out_dir / f"compare_paper{suffix}")


def plot_heatmap(matrices: dict[str, pd.DataFrame], out_dir: Path, suffix: str = "") -> list[Path]:
    """heatmap{suffix}: Δ_mean (%, vs STL) per architecture (rows) and loss weighting (columns), one
    panel per dataset and the average; red below STL, blue above, the value written in each cell.

    The colour scale ends at the 95th percentile of |Δ_mean| (the colour bar's arrows mark the cells
    beyond it; their values are still written): one collapsed weighting (PBI's −400 % on the Prostate
    stand-in) would otherwise leave every other cell white."""
    items = [(name, m) for name, m in matrices.items() if m.size]
    if not items:
        return []
    ncols = min(2, len(items))
    nrows = (len(items) + ncols - 1) // ncols
    width = max(m.shape[1] for _, m in items)
    fig, axes = _figure(nrows, ncols, size=(1.0 + 0.55 * width, 0.9 + 0.45 * max(m.shape[0] for _, m in items)))
    for ax, (name, m) in zip(axes.flat, items):
        values = m.to_numpy(dtype=float)
        finite = np.abs(values[np.isfinite(values)])
        bound = float(np.percentile(finite, 95)) if finite.size else 1.0
        bound = bound if bound > 0 else 1.0
        clipped = bool(finite.size and finite.max() > bound)
        image = ax.imshow(values, cmap="RdBu", vmin=-bound, vmax=bound, aspect="auto")
        ax.set_xticks(range(m.shape[1]), m.columns, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(range(m.shape[0]), m.index, fontsize=7)
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.1f}", ha="center", va="center", fontsize=6)
        ax.set_title(f"{name}: Δ_mean % vs STL" + (f" (colours end at ±{bound:.1f})" if clipped else ""), fontsize=9)
        ax.figure.colorbar(image, ax=ax, shrink=0.8, extend="both" if clipped else "neither")
    for ax in list(axes.flat)[len(items):]:
        ax.set_axis_off()
    return _save(fig, out_dir / f"heatmap{suffix}")
