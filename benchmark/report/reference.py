"""A run beside a committed reference run of the same profile (an evidence run: its long metrics CSV
and its provenance, in ``reference/<name>/``), as a user diffs a results table against a published one.

    python -m benchmark.report --metrics results/metrics.csv --out results/report --reference openkbp-realcpu

A reference is made from a finished results folder (its test rows, and the provenance of every cell):

    python -m benchmark.report.reference --results DIR --name openkbp-realcpu --command "..." [--elapsed S]

Per (dataset, method, weighting, task, metric) of the test split: the reference's mean ± std over
its seeds, this run's, the difference, and whether this run's mean lies within the reference's
seed spread (two standard deviations, or 0.01 when the reference has one seed).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.report.inputs import ReportInputError, load_metrics
from benchmark.report.render import _md_table, dataset_label, method_label

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
KEYS = ["profile", "data_source", "dataset", "method", "weighting", "task", "metric"]


def references() -> list[str]:
    return sorted(p.name for p in REFERENCE_DIR.iterdir() if (p / "metrics.csv").is_file())


def load_reference(name: str) -> tuple[pd.DataFrame, dict]:
    """A committed reference (by name) or any folder holding ``metrics.csv`` (and ``provenance.json``)."""
    folder = Path(name) if Path(name).is_dir() else REFERENCE_DIR / name
    if not (folder / "metrics.csv").is_file():
        raise ReportInputError(f"no reference {name!r}: committed ones are {references()}, or give a folder "
                               f"holding metrics.csv")
    provenance = folder / "provenance.json"
    return load_metrics(folder / "metrics.csv"), json.loads(provenance.read_text()) if provenance.is_file() else {}


def _summary(df: pd.DataFrame) -> pd.DataFrame:
    test = df[df["split"] == "test"]
    return test.groupby(KEYS)["value"].agg(["mean", "std", "count"]).reset_index()


def compare_runs(ours: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    """Reference and run side by side for every test metric both have."""
    ref, run = _summary(reference), _summary(ours)
    both = ref.merge(run, on=KEYS, suffixes=("_ref", "_run"))
    both["diff"] = both["mean_run"] - both["mean_ref"]
    spread = np.where(both["count_ref"] > 1, 2 * both["std_ref"].fillna(0), 0.01)
    both["within_spread"] = both["diff"].abs() <= np.maximum(spread, 1e-9)
    return both


def render_reference_markdown(cmp: pd.DataFrame, provenance: dict, name: str) -> str:
    lines = [f"# This run beside the reference {name}", ""]
    if provenance:
        lines += ["Reference: " + "; ".join(f"{k} {v}" for k, v in provenance.items() if not isinstance(v, (dict, list))),
                  ""]
    if cmp.empty:
        return "\n".join(lines + ["No test metric in common (another profile, dataset or method?)."]) + "\n"
    lines += ["Mean ± std over seeds; within = this run's mean inside the reference's mean ± 2 std.", ""]
    rows = [[dataset_label(r.dataset), method_label(r.method), r.weighting, r.task, r.metric,
             f"{r.mean_ref:.3f} ± {0 if np.isnan(r.std_ref) else r.std_ref:.3f} ({r.count_ref})",
             f"{r.mean_run:.3f} ± {0 if np.isnan(r.std_run) else r.std_run:.3f} ({r.count_run})",
             f"{r.diff:+.3f}", "yes" if r.within_spread else "NO"] for r in cmp.itertuples()]
    lines += _md_table(["Dataset", "Method", "Weighting", "Task", "Metric", "reference", "this run", "diff",
                        "within"], rows, align="r")
    return "\n".join(lines) + "\n"


def make_reference(results: Path, name: str, command: str, elapsed: float | None = None,
                   note: str = "") -> Path:
    """Copy ``results``' test metrics (and its ``epochs.csv``, and its ``cases.csv`` gzipped) into ``reference/<name>/`` with
    ``provenance.json``: the command,
    its wall time, and from the cells' ``cell.json`` the code commits, configuration hashes, data
    counts, versions and the training time of each cell."""
    load_metrics(results / "metrics.csv")                 # checked against the schema ...
    metrics = pd.read_csv(results / "metrics.csv")         # ... and kept as written: per-fold rows stay
    cells = []
    for path in sorted((results / "runs").rglob("cell.json")):
        meta = json.loads(path.read_text())
        cfg = meta["config"]
        cells.append({"cell": str(path.parent.relative_to(results)), "config_hash": meta.get("config_hash"),
                      "code": meta.get("versions", {}).get("code"), "wall_seconds": meta.get("wall_seconds"),
                      "data": meta.get("data", {}).get("counts"), "seed": cfg.get("seed"),
                      "fold": cfg.get("fold")})
    if not cells:
        raise ReportInputError(f"{results / 'runs'}: no cell.json, not a results folder")
    first = json.loads(sorted((results / "runs").rglob("cell.json"))[0].read_text())
    provenance = {"name": name, "command": command, "elapsed_seconds": elapsed, "note": note,
                  "commits": sorted({c["code"] for c in cells if c["code"]}), "cells": len(cells),
                  "cell_wall_seconds_sum": round(sum(c["wall_seconds"] or 0 for c in cells), 1),
                  "host": first.get("host"), "versions": first.get("versions"),
                  "profile": first["config"]["profile"], "per_cell": cells}
    out = REFERENCE_DIR / name
    out.mkdir(parents=True, exist_ok=True)
    from benchmark import atomic
    atomic.write_text(out / "metrics.csv", metrics[metrics["split"].astype(str).str.lower() == "test"].to_csv(index=False))
    if (results / "epochs.csv").is_file():      # the training curves: the report draws them from here
        atomic.write_text(out / "epochs.csv", (results / "epochs.csv").read_text())
    if (results / "cases.csv").is_file():       # per-case results, for the intervals; gzip (mtime 0: reproducible bytes)
        import gzip
        with atomic.replacing(out / "cases.csv.gz") as tmp:
            tmp.write_bytes(gzip.compress((results / "cases.csv").read_bytes(), mtime=0))
    atomic.write_text(out / "provenance.json", json.dumps(provenance, indent=1, default=str) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmark.report.reference",
                                 description="store a finished run as a committed reference")
    ap.add_argument("--results", required=True, type=Path)
    ap.add_argument("--name", required=True)
    ap.add_argument("--command", required=True, help="the command that produced the results")
    ap.add_argument("--elapsed", type=float, default=None, help="its wall time in seconds")
    ap.add_argument("--note", default="")
    args = ap.parse_args(argv)
    try:
        print(make_reference(args.results, args.name, args.command, args.elapsed, args.note))
    except ReportInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
