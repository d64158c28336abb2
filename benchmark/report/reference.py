"""A run beside a committed reference run of the same profile (an evidence run: its long metrics CSV
and its provenance, in ``reference/<name>/``), as a user diffs a results table against a published one.

    python -m benchmark.report --metrics results/metrics.csv --out results/report --reference openkbp-realcpu

A reference is made from a finished results folder (its test rows, and the provenance of every cell):

    python -m benchmark.report.reference --results DIR --name openkbp-realcpu --command "..." [--elapsed S]

A grid too long for one session is committed in parts: ``--dataset`` keeps the datasets a stopped run
finished, ``--append`` adds a later part's to the same reference.

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


def _cells(results: Path, datasets: list[str] | None) -> tuple[list[dict], dict | None]:
    """Each kept cell's provenance row, and the first one's whole ``cell.json`` (host, versions, profile)."""
    cells, first = [], None
    for path in sorted((results / "runs").rglob("cell.json")):
        meta = json.loads(path.read_text())
        cfg = meta["config"]
        if datasets and cfg.get("dataset") not in datasets:
            continue
        first = first or meta
        cells.append({"cell": str(path.parent.relative_to(results)), "config_hash": meta.get("config_hash"),
                      "code": meta.get("versions", {}).get("code"), "wall_seconds": meta.get("wall_seconds"),
                      "data": meta.get("data", {}).get("counts"), "seed": cfg.get("seed"),
                      "fold": cfg.get("fold")})
    return cells, first


def _rows(path: Path, datasets: list[str] | None) -> str | None:
    """A long CSV's text, only ``datasets``' rows when given (re-written by pandas then, else as it is)."""
    if not path.is_file():
        return None
    if not datasets:
        return path.read_text()
    df = _as_written(path)
    return df[df["dataset"].isin(datasets)].to_csv(index=False)


def _as_written(source) -> pd.DataFrame:
    """A long CSV with every field the string it was written as. Inferred types would turn a column of
    "0" beside empty fields (a logit's part beside a label's) into "0.0", which no metric reads back."""
    return pd.read_csv(source, dtype=str, keep_default_na=False)


def _appended(old: str | None, new: str | None) -> str | None:
    """Two long CSVs' texts as one (columns united; either may be missing)."""
    import io
    if old is None or new is None:
        return new if old is None else old
    both = pd.concat([_as_written(io.StringIO(old)), _as_written(io.StringIO(new))], ignore_index=True, sort=False)
    return both.to_csv(index=False)


def make_reference(results: Path, name: str, command: str, elapsed: float | None = None,
                   note: str = "", datasets: list[str] | None = None, append: bool = False) -> Path:
    """Copy ``results``' test metrics (and its ``epochs.csv``, and its ``cases.csv`` gzipped) into ``reference/<name>/`` with
    ``provenance.json``: the command,
    its wall time, and from the cells' ``cell.json`` the code commits, configuration hashes, data
    counts, versions and the training time of each cell.

    ``datasets``: only these datasets' rows and cells (the finished part of a run stopped midway).
    ``append``: add them to an existing reference of that name (a grid too long for one session,
    committed in parts): a cell already in it is an error; the provenance lists each part's command,
    wall time and note under ``parts``."""
    import gzip

    from benchmark import atomic
    load_metrics(results / "metrics.csv")                 # checked against the schema ...
    metrics = pd.read_csv(results / "metrics.csv")         # ... and kept as written: per-fold rows stay
    if datasets:
        missing = sorted(set(datasets) - set(metrics["dataset"].astype(str)))
        if missing:
            raise ReportInputError(f"{results / 'metrics.csv'}: no rows of dataset(s) {missing}; it has "
                                   f"{sorted(metrics['dataset'].astype(str).unique())}")
        metrics = metrics[metrics["dataset"].isin(datasets)]
    metrics = metrics[metrics["split"].astype(str).str.lower() == "test"]
    cells, first = _cells(results, datasets)
    if not cells:
        raise ReportInputError(f"{results / 'runs'}: no cell.json, not a results folder")
    part = {"command": command, "elapsed_seconds": elapsed, "note": note, "cells": len(cells),
            "datasets": sorted(metrics["dataset"].astype(str).unique()), "host": first.get("host"),
            "versions": first.get("versions")}
    epochs, cases = _rows(results / "epochs.csv", datasets), _rows(results / "cases.csv", datasets)
    out = REFERENCE_DIR / name
    parts = [part]
    if append:
        if not (out / "provenance.json").is_file():
            raise ReportInputError(f"--append: no reference {name!r} to add to (committed ones: {references()})")
        old = json.loads((out / "provenance.json").read_text())
        profile = json.loads(json.dumps(first["config"]["profile"], default=str))
        if old.get("profile") != profile:
            raise ReportInputError(f"--append: {results} ran another profile than reference {name!r}: "
                                   f"{profile} against {old.get('profile')}")
        have = {c["cell"] for c in old["per_cell"]}
        again = sorted(c["cell"] for c in cells if c["cell"] in have)
        if again:
            raise ReportInputError(f"--append: {len(again)} cell(s) already in reference {name!r}, e.g. {again[0]}")
        parts = old.get("parts") or [{k: old.get(k) for k in ("command", "elapsed_seconds", "note", "cells", "datasets",
                                                               "host", "versions")}]
        parts.append(part)
        cells = old["per_cell"] + cells
        metrics = pd.concat([pd.read_csv(out / "metrics.csv"), metrics], ignore_index=True, sort=False)
        epochs = _appended((out / "epochs.csv").read_text() if (out / "epochs.csv").is_file() else None, epochs)
        old_cases = gzip.decompress((out / "cases.csv.gz").read_bytes()).decode() if (out / "cases.csv.gz").is_file() else None
        cases = _appended(old_cases, cases)
        command, elapsed = parts[0]["command"], (None if any(p["elapsed_seconds"] is None for p in parts)
                                                 else sum(p["elapsed_seconds"] for p in parts))
        note = " | ".join(p["note"] for p in parts if p["note"])
    provenance = {"name": name, "command": command, "elapsed_seconds": elapsed, "note": note,
                  "commits": sorted({c["code"] for c in cells if c["code"]}), "cells": len(cells),
                  "datasets": sorted(metrics["dataset"].astype(str).unique()),
                  "cell_wall_seconds_sum": round(sum(c["wall_seconds"] or 0 for c in cells), 1),
                  "host": parts[0]["host"], "versions": parts[0]["versions"],     # each part's in "parts"
                  "profile": first["config"]["profile"], **({"parts": parts} if len(parts) > 1 else {}),
                  "per_cell": cells}
    out.mkdir(parents=True, exist_ok=True)
    atomic.write_text(out / "metrics.csv", metrics.to_csv(index=False))
    if epochs is not None:      # the training curves: the report draws them from here
        atomic.write_text(out / "epochs.csv", epochs)
    if cases is not None:       # per-case results, for the intervals; gzip (mtime 0: reproducible bytes)
        with atomic.replacing(out / "cases.csv.gz") as tmp:
            tmp.write_bytes(gzip.compress(cases.encode(), mtime=0))
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
    ap.add_argument("--dataset", action="append", default=None,
                    help="only this dataset's rows and cells, repeatable (the finished part of a stopped run)")
    ap.add_argument("--append", action="store_true",
                    help="add to the existing reference NAME (a grid committed in parts); a cell in both is an error")
    args = ap.parse_args(argv)
    try:
        print(make_reference(args.results, args.name, args.command, args.elapsed, args.note,
                             args.dataset, args.append))
    except ReportInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
