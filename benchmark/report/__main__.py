"""Render the Table 2 report of a metrics CSV (docs/report.md).

    python -m benchmark.report --metrics results/metrics.csv --out results/report [--compare-paper]
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from benchmark.report.inputs import ReportInputError
from benchmark.report.write import ReportWriteError, write_report


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
    ap.add_argument("--ci", action="store_true",
                    help="table2.{md,tex}: each Δ's 95 %% interval as a second line (needs cases.csv beside --metrics)")
    ap.add_argument("--reference", default=None,
                    help="put the run beside a committed reference run (benchmark/report/reference/<name>/) "
                         "or any folder holding a metrics.csv")
    args = ap.parse_args(argv)
    try:
        paths = write_report(args.metrics, args.out, args.compare_paper, profile=args.profile,
                             data_source=args.data_source, epochs_csv=args.epochs,
                             failures_csv=args.failures, plots=not args.no_plots, reference=args.reference,
                             ci=args.ci)
    except (ReportInputError, ReportWriteError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(paths)} file(s) to {args.out}")
    for p in paths:
        print(f"  {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
