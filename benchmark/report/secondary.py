"""Every test metric beyond Table 2's primary ones (e.g. OpenKBP's challenge ``dose_score`` and
``dvh_score``), mean ± standard deviation over seeds per row, with published anchors where a metric
has them (``reference/challenge_anchors.csv``: OpenKBP's published test-set scores, as collected in
the project's reference notes: the challenge winner, its single model, a plain 3D U-Net, a 2D network)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark.report.render import dataset_label, method_label
from benchmark.report.stats import CANONICAL_METHODS
from data.spec import METRICS

ANCHORS = Path(__file__).resolve().parent / "reference" / "challenge_anchors.csv"
KEYS = ["dataset", "method", "weighting", "task", "metric"]


def load_anchors(path: str | Path = ANCHORS) -> pd.DataFrame:
    """Published values to print beside ours: dataset, source, metric, value, note."""
    return pd.read_csv(path)


def secondary_table(df: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation and seed count of every non-primary test metric per row."""
    test = df[(df["split"] == "test") & ~df["primary"].astype(bool)]
    if test.empty:
        return pd.DataFrame(columns=KEYS + ["mean", "std", "n_seeds"])
    out = test.groupby(KEYS, sort=False)["value"].agg(mean="mean", std="std", n_seeds="count").reset_index()
    order = {m: i for i, m in enumerate(CANONICAL_METHODS)}     # STL, HPS, MTAN, CTAN, then the rest
    return out.sort_values(["dataset", "method", "weighting"], key=lambda c: c.map(order).fillna(len(order))
                           if c.name == "method" else c, kind="stable").reset_index(drop=True)


def render_secondary_markdown(table: pd.DataFrame, anchors: pd.DataFrame, title: str) -> str:
    """One Markdown table per dataset: rows are methods (and weightings), columns metrics; then the
    published anchors for those metrics, if any."""
    lines = [f"# {title}", "",
             "Test metrics beyond Table 2's primary ones; mean ± standard deviation over seeds (n = seeds)."]
    for dataset, block in table.groupby("dataset", sort=False):
        metrics = list(dict.fromkeys(block["metric"]))
        heads = [f"{METRICS[m].label} ({METRICS[m].unit}, {'↑' if METRICS[m].higher_is_better else '↓'})"
                 if m in METRICS else m for m in metrics]
        lines += ["", f"## {dataset_label(dataset)}", "", "| method | weighting | " + " | ".join(heads) + " |",
                  "|:---|:---|" + "---:|" * len(metrics)]
        for (method, weighting), rows in block.groupby(["method", "weighting"], sort=False):
            cells = []
            for m in metrics:
                r = rows[rows["metric"] == m]
                cells.append("" if r.empty else _mean_sd(r["mean"].iloc[0], r["std"].iloc[0], r["n_seeds"].iloc[0]))
            lines.append(f"| {method_label(method)} | {weighting} | " + " | ".join(cells) + " |")
        pub = anchors[(anchors["dataset"] == dataset) & anchors["metric"].isin(metrics)]
        for source, rows in pub.groupby("source", sort=False):
            vals = {r.metric: r.value for r in rows.itertuples()}
            lines.append(f"| *{source}* (published) | | " + " | ".join(
                f"*{vals[m]:.2f}*" if m in vals else "" for m in metrics) + " |")
        if len(pub):
            lines += ["", "Published rows (italic): test-set scores of the challenge "
                      "(its 100 test patients at the full 128 px resolution); "
                      + "; ".join(dict.fromkeys(f"{r.source}: {r.note}" for r in pub.itertuples())) + "."]
    return "\n".join(lines) + "\n"


def _mean_sd(mean: float, sd: float, n: int) -> str:
    """``mean ± sd (n = k)``; one seed has no spread, and says so instead of printing ``± nan``."""
    return f"{mean:.2f} (n = 1, no spread)" if n == 1 or sd != sd else f"{mean:.2f} ± {sd:.2f} (n = {n})"
