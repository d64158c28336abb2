"""The suite from Python (a notebook, a script): the same grid, store and report as ``reproduce.py``.

    from benchmark.api import run_grid, load_results, render_report
    outcomes = run_grid(["stoic"], ["stl", "hps"], seeds=[0], profile="smoke", results="results/nb")
    metrics = load_results("results/nb")          # the long metrics CSV as a DataFrame
    files = render_report("results/nb")           # results/nb/report/: table2.md, .tex, plots

Errors in the arguments raise the suite's own exceptions (``ProfileError``, ``DataError``,
``WeightingError``) with the message the command line prints. docs/extending.md shows it in use.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from benchmark.experiment.parallel import Execution
from benchmark.experiment.profiles import Profile, get_profile


def run_grid(datasets: Sequence[str] | None = None, methods: Sequence[str] | None = None,
             seeds: Iterable[int] = (0, 1, 2), *, profile: str | Profile = "quick",
             weightings: Sequence[str] | None = None, data: str = "auto", data_root: str | None = None,
             results: str | Path = "results", jobs: int = 1, device: str = "cpu",
             settings: dict[str, str] | None = None, skip_bad: bool = False, force: bool = False,
             progress: bool = False, plugins: Sequence[str] = (), baseline: bool = True, log=print) -> list:
    """Train every pending cell of ``datasets × methods × weightings × seeds`` into ``results``
    (finished cells are skipped, as on the command line) and rebuild its CSVs. ``settings`` are
    ``--set`` overrides of the profile (``{"epochs": 2}``). Returns one ``Outcome`` per cell
    (``.config``, ``.status``, ``.message``). STL is added when ``methods`` leaves it out, unless
    ``baseline`` is False; devices, ImageNet weights and ``results`` are checked before any cell runs."""
    from data import DATASETS
    from data.prepare import resolve_source
    from benchmark.experiment.cli import grid_configs, settled_profile, with_baseline
    from benchmark.experiment.preflight import check_all
    from benchmark.experiment.runner import run_grid as _run
    from benchmark.training.weighting.catalog import DEFAULT, parse
    from models.catalog import PAPER_METHODS
    from benchmark.plugins import load_all

    load_all(plugins)
    chosen = settled_profile(get_profile(profile) if isinstance(profile, str) else profile,
                             {k: str(v) for k, v in (settings or {}).items()}, (device,), log)
    datasets = list(datasets or DATASETS)
    sources = {d: resolve_source(d, data, data_root) for d in datasets}
    labels = list(dict.fromkeys(parse(w).label for w in (weightings or [DEFAULT])))
    methods = with_baseline(list(methods or PAPER_METHODS), not baseline, log)
    check_all((device,), chosen.backbone, chosen.pretrained, results, create=True)
    configs = grid_configs(datasets, methods, labels, list(seeds), chosen, sources, data_root, skip_bad)
    execution = Execution(jobs=jobs, devices=(device,))
    return _run(configs, str(results), execution, force=force, progress=progress, log=log)


def load_results(results: str | Path = "results") -> pd.DataFrame:
    """The long metrics table of a results folder (``metrics.csv``, checked against the schema of
    docs/results-schema.md)."""
    from benchmark.report.inputs import load_metrics
    return load_metrics(Path(results) / "metrics.csv")


def render_report(results: str | Path = "results", out: str | Path | None = None, *,
                  compare_paper: bool = True, ci: bool = False, reference: str | None = None,
                  plots: bool = True) -> list[Path]:
    """Write the report of a results folder (into ``out``, default ``results/report``) and return the
    files written; the same as ``python -m benchmark.report``."""
    from benchmark.report.write import write_report
    results = Path(results)
    return write_report(results / "metrics.csv", Path(out) if out else results / "report", compare_paper,
                        plots=plots, reference=reference, ci=ci)
