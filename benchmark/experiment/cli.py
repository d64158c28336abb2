"""Command line of ``reproduce.py``: plan the grid, run it, rebuild the CSVs, render the report."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from benchmark.experiment import store
from benchmark.experiment.cell import folds_of, resolve_config
from benchmark.experiment.parallel import Execution, SlurmOptions
from benchmark.experiment.preflight import PreflightError, check_all
from benchmark.experiment.stopping import Stopped, stop_on_signals
from benchmark.experiment.profiles import (PROFILES, Profile, ProfileError, get_profile, load_profile_file,
                                           parse_settings, with_overrides)
from benchmark.experiment.precision import resolve_precision
from benchmark.plugins import PluginError, load_all as load_plugins
from data import DATASETS, datasets_of
from data.base import DataError
from data.prepare import SOURCES, find_root, prepare, resolve_source
from benchmark.training.weighting.catalog import DEFAULT, WEIGHTINGS, WeightingError, parse
from models.catalog import BASELINE, METHODS, PAPER_METHODS, bottleneck_side


def _at_least(minimum, convert=int, noun="a whole number", below="{value} is below {minimum}"):
    """An argparse type: ``convert(text)``, at least ``minimum``; otherwise one message saying why."""
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun}") from None
        if not value >= minimum:          # also refuses NaN
            raise argparse.ArgumentTypeError(below.format(value=value, minimum=minimum))
        return value
    return parse


_count = _at_least(1)
_seed = _at_least(0, below="seeds are 0 or more, got {value}")
_fold = _at_least(0, below="folds are 0 or more, got {value}")
_seconds = _at_least(0.0, float, "a number of seconds")


def _load_plugins(argv: list[str] | None) -> list[str]:
    """The ``--plugin`` modules, imported before the parser is built: their methods and weightings
    are choices like the suite's own (benchmark/plugins.py)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--plugin", action="append", default=[])
    known, _ = pre.parse_known_args(argv)
    try:
        return load_plugins(known.plugin)
    except PluginError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    _load_plugins(argv)
    p = argparse.ArgumentParser(
        # the program's own name: `reproduce.py`, or `ctan-bench` when installed (pyproject.toml)
        prog=None,
        description="Reproduce Table 2 of the CTAN paper: every method x dataset cell, with seeds.")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="a module (name or .py file) registering your own methods or weightings; repeatable "
                        "(docs/extending.md)")
    p.add_argument("--all", action="store_true",
                   help="Table 2's four datasets and the paper's four methods (the default when none is named)")
    p.add_argument("--public", action="store_true",
                   help=f"the public rows ({', '.join(datasets_of('public'))}) on their real data, "
                        "cross-validated: needs --data-root (docs/reproduction.md)")
    p.add_argument("--extended", action="store_true",
                   help="every method (the paper's, Cross-stitch, MMoE, CTAN's ablations) x every loss weighting")
    p.add_argument("--dataset", action="append", choices=list(DATASETS),
                   help="repeatable; omitted: Table 2's four (or, with --public, the public ones)")
    p.add_argument("--method", action="append", choices=list(METHODS), help="repeatable; omitted: all")
    p.add_argument("--no-baseline", action="store_true",
                   help="do not add STL when --method leaves it out (the report's Δs then read n/a)")
    p.add_argument("--weighting", action="append", default=None, metavar="NAME[+KEY=VALUE...]",
                   help=f"loss weighting, repeatable (default: {DEFAULT}, the paper's): {', '.join(WEIGHTINGS)}; "
                        "hyper-parameters as e.g. cagrad+c=0.4 (docs/methods.md); STL ignores it")
    p.add_argument("--seeds", type=_seed, nargs="+", default=[0, 1, 2], help="training seeds (default: 0 1 2)")
    p.add_argument("--folds", type=_fold, nargs="+", default=None,
                   help="cross-validated datasets (the public ones): only these test folds (default: all)")
    p.add_argument("--profile", default=None, choices=list(PROFILES),
                   help="settings (default: quick; with --public, public)")
    p.add_argument("--profile-file", default=None,
                   help="a TOML file with a whole custom profile (or base = \"quick\" and the settings to change)")
    p.add_argument("--set", dest="settings", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                   help="change profile settings, e.g. --set epochs=50 lr=3e-4 image_size=96 backbone=resnet34; "
                        "part of the cells' identity (folder, hash, the report's groups)")
    p.add_argument("--data", default="auto", choices=SOURCES,
                   help="auto: real data where prepared or pointed at, else the synthetic stand-in")
    p.add_argument("--data-root", default=None, help="folder holding the raw or prepared real datasets")
    p.add_argument("--skip-bad", action="store_true",
                   help="real data: skip unreadable or inconsistent samples with a warning and a count")
    p.add_argument("--results", default="results", help="results folder (default: results/)")
    p.add_argument("--jobs", type=_count, default=None,
                   help="cells run in parallel (joblib processes); default: one per CPU core on cpu, 1 on a GPU")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0")
    p.add_argument("--devices", default=None,
                   help="comma-separated devices, e.g. cuda:0,cuda:1: each running cell holds one of them")
    p.add_argument("--threads", type=_count, default=None,
                   help="torch CPU threads per cell (the profile's, 1, by default); the same as --set threads=N")
    p.add_argument("--backend", default="loky", choices=("loky", "dask"),
                   help="loky: processes on this machine; dask: a Dask cluster through joblib")
    p.add_argument("--scheduler", default=None, help="dask: address of a running scheduler, e.g. tcp://host:8786")
    p.add_argument("--cluster", default="local", choices=("local", "slurm"),
                   help="dask without --scheduler: a LocalCluster of --jobs workers, or Slurm jobs")
    p.add_argument("--slurm-queue", default=None, help="Slurm partition")
    p.add_argument("--slurm-account", default=None, help="Slurm account")
    p.add_argument("--slurm-walltime", default="24:00:00", help="time limit per Slurm job")
    p.add_argument("--slurm-memory", default="32GB", help="memory per Slurm job")
    p.add_argument("--slurm-cores", type=_count, default=8, help="CPU cores per Slurm job")
    p.add_argument("--slurm-gpus", type=int, default=1, help="GPUs per Slurm job (--gres=gpu:N)")
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic algorithms (bit-identical reruns on GPU too, slower)")
    p.add_argument("--checkpoint-every", type=_seconds, default=120.0, metavar="SECONDS",
                   help="save a network's training state at the end of an epoch when this long has passed since "
                        "the last save (0: every epoch); a re-run resumes an interrupted cell from it (default 120)")
    p.add_argument("--keep-last", action="store_true",
                   help="keep each network's final training state (last.pt) beside its selected weights")
    p.add_argument("--no-weights", action="store_true",
                   help="delete a cell's checkpoints once it is stored (saves ~70 MB per ResNet-18 cell; "
                        "python -m benchmark.evaluate cannot re-score such a cell)")
    p.add_argument("--no-tensorboard", action="store_true",
                   help="no TensorBoard curves (default: runs/.../seed<k>/tensorboard/, tensorboard --logdir results/runs)")
    p.add_argument("--force", action="store_true", help="recompute finished cells")
    p.add_argument("--dry-run", action="store_true", help="list the cells and the resolved settings, and exit")
    p.add_argument("--no-report", action="store_true", help="skip rendering the report after the run")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    if len(set(args.seeds)) < len(args.seeds):
        unique = list(dict.fromkeys(args.seeds))
        print(f"note: --seeds {' '.join(map(str, args.seeds))} repeats a seed; running {' '.join(map(str, unique))}")
        args.seeds = unique
    if args.profile_file and "--profile" in (argv if argv is not None else sys.argv):
        p.error("give --profile or --profile-file, not both")
    return args


def resolve_profile(args: argparse.Namespace, note=print) -> Profile:
    """The profile a run uses: --profile or --profile-file, then --threads and --set applied, then
    the precision this machine can train it in (``precision.resolve_precision``: bf16 only on a
    CPU that has it; ``note`` prints the one line saying so)."""
    name = args.profile or ("public" if getattr(args, "public", False) else "quick")
    profile = load_profile_file(args.profile_file) if args.profile_file else get_profile(name)
    settings = parse_settings(args.settings)
    if args.threads is not None:
        settings.setdefault("threads", str(args.threads))
    return settled_profile(profile, settings, _devices(args), note)


def settled_profile(profile: Profile, settings: dict[str, str], devices: tuple[str, ...], note=print) -> Profile:
    """``profile`` with ``settings`` applied, in the precision ``devices`` can train it in (the
    command line and ``benchmark.api.run_grid`` both resolve here)."""
    profile = with_overrides(profile, settings)
    profile, message = resolve_precision(profile, devices, explicit_amp="amp" in settings)
    if message:
        note(message)
    return profile


def _devices(args: argparse.Namespace) -> tuple[str, ...]:
    return tuple(d.strip() for d in (args.devices or args.device).split(",") if d.strip())


def execution_from_args(args: argparse.Namespace) -> Execution:
    """Where the cells run: jobs default to one per core on a CPU and one per device otherwise."""
    devices = _devices(args)
    on_cpu = all(d == "cpu" for d in devices)
    jobs = args.jobs or ((os.cpu_count() or 1) if on_cpu else len(devices))
    slurm = SlurmOptions(args.slurm_queue, args.slurm_walltime, args.slurm_memory, args.slurm_cores,
                         args.slurm_gpus, args.slurm_account, str(Path(args.results).resolve() / "slurm-logs"))
    return Execution(args.backend, jobs, devices, args.scheduler, args.cluster, slurm, args.checkpoint_every,
                     keep_last=args.keep_last, keep_weights=not args.no_weights, tensorboard=not args.no_tensorboard)


def grid_configs(datasets, methods, weightings, seeds, profile: Profile, sources: dict[str, str],
                 data_root: str | None = None, skip_bad: bool = False, deterministic: bool = False,
                 folds: list[int] | None = None):
    """Every cell of a grid, in order, once: STL ignores the weighting, so it gets one cell per seed,
    the baseline of every row; a cross-validated dataset's real data one cell per seed and fold
    (``python reproduce.py`` and ``benchmark.api.run_grid`` both plan here)."""
    return list(dict.fromkeys(
        resolve_config(d, m, s, profile, sources[d], data_root, skip_bad, deterministic, w, fold)
        for d in datasets for m in methods for w in weightings for s in seeds
        for fold in folds_of(d, sources[d]) if folds is None or fold is None or fold in folds))


def with_baseline(methods: list[str], no_baseline: bool = False, note=print) -> list[str]:
    """``methods`` with STL first when it is missing: every Δ of the report is relative to it (eq. 3)."""
    methods = list(dict.fromkeys(methods))
    if BASELINE in methods or no_baseline:
        return methods
    note(f"note: {BASELINE.upper()} added as the baseline of every Δ (eq. 3); --no-baseline leaves it out")
    return [BASELINE] + methods


def _check_data_root(data_root: str | None, datasets: list[str]) -> None:
    """A ``--data-root`` that holds none of the datasets asked for is an error, not a silent fallback
    to the stand-ins (one folder too high or too low is the usual cause)."""
    if data_root and not any(find_root(d, data_root) is not None for d in datasets):
        layouts = "; ".join(f"{d}: {DATASETS[d].reader.LAYOUT}" for d in datasets)
        raise DataError(f"--data-root {data_root} holds none of {', '.join(datasets)} (looked in it and in its "
                        f"subfolders named after them); expected {layouts}")


def prepare_once(configs, log=print) -> None:
    """Real data prepared (or found prepared) once per dataset, size and root, before any cell runs:
    a bad raw file is one error here, not one per cell, and ``--jobs`` workers then read one cache
    entry instead of preparing it side by side."""
    for name, root, size, skip_bad in dict.fromkeys(
            (c.dataset, c.data_root, c.image_size, c.skip_bad) for c in configs
            if c.data_source == "real" and c.data_root):
        found = find_root(name, root)      # as data.prepare.load: a root without it means "use the cache"
        if found is not None:
            prepare(name, found, size, skip_bad=skip_bad, log=log)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.deterministic:
        from benchmark.experiment.runner import enable_determinism
        enable_determinism()
    datasets = args.dataset or datasets_of("public" if args.public else "paper")
    methods = args.method or (list(METHODS) if args.extended else list(PAPER_METHODS))
    methods = with_baseline(methods, args.no_baseline)
    for d in datasets:
        k = DATASETS[d].folds
        if args.folds and k and max(args.folds) >= k:
            print(f"error: --folds {max(args.folds)}: {d} has folds 0..{k - 1}", file=sys.stderr)
            return 2
    if args.public and args.data == "auto":
        args.data = "real"           # a public row means its real data: never a silent stand-in
    try:
        profile = resolve_profile(args)
        sources = {d: resolve_source(d, args.data, args.data_root) for d in datasets}
        _check_data_root(args.data_root, datasets)
        chosen = args.weighting or (list(WEIGHTINGS) if args.extended else [DEFAULT])
        weightings = list(dict.fromkeys(parse(w).label for w in chosen))
    except (DataError, ProfileError, WeightingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    configs = grid_configs(datasets, methods, weightings, args.seeds, profile, sources, args.data_root,
                           args.skip_bad, args.deterministic, args.folds)
    try:
        check_all(_devices(args), profile.backbone, profile.pretrained, args.results, create=not args.dry_run)
    except PreflightError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"profile {profile.label} ({profile.backbone}, {profile.epochs} epochs): {profile.description}")
    for d in datasets:
        print(f"  {d}: {sources[d].upper()} data" + (" (synthetic stand-in, not the real dataset)"
                                                       if sources[d] == "synthetic" else ""))
    if args.dry_run:
        print("settings: " + ", ".join(f"{k}={v}" for k, v in profile.settings().items()))
        for c in configs:
            done = store.is_finished(c.directory(args.results))
            side = bottleneck_side(c.image_size)
            print(f"{c.dataset:9s} {c.method:5s} {c.weighting:9s} {c.replicate}  {c.data_source:9s} {c.image_size} px "
                  f"(bottleneck {side}x{side}), batch {c.batch_size}  {'finished' if done else 'pending'}")
        print(f"{len(configs)} cell{'' if len(configs) == 1 else 's'}")
        return 0
    with stop_on_signals():      # the handlers stay through the report: a second signal exits at once
        try:
            return _run_and_report(configs, args)
        except Stopped as stop:
            finished = sum(store.is_finished(c.directory(args.results)) for c in configs)
            print(f"stopped by {stop.name}: {finished} of {len(configs)} cells finished and stored, "
                  f"{len(configs) - finished} not; the same command resumes them", file=sys.stderr)
            if not args.no_report and (Path(args.results) / "metrics.csv").is_file():
                _render_report(Path(args.results))
            return stop.exit_code


def _run_and_report(configs, args: argparse.Namespace) -> int:
    """Prepare the real data once, run the grid, say how it went and render the report: the exit status."""
    try:
        prepare_once(configs)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from benchmark.experiment.parallel import ClusterError
    from benchmark.experiment.runner import SettingsConflict, run_grid  # torch: only when something trains
    try:
        outcomes = run_grid(configs, args.results, execution_from_args(args), args.force, not args.no_progress)
    except (store.StoreError, SettingsConflict, ClusterError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failed = [o for o in outcomes if o.status == "failed"]
    print(f"{len(outcomes) - len(failed)} of {len(outcomes)} cells finished; results in "
          f"{Path(args.results) / 'metrics.csv'}")
    for o in failed:
        print(f"FAILED {o.config.dataset}/{o.config.method} {o.config.replicate}: {o.message}", file=sys.stderr)
    status = 1 if failed else 0
    if not args.no_report:
        status = max(status, _render_report(Path(args.results)))
    return status


def _render_report(results: Path) -> int:
    try:
        from benchmark.report.write import write_report
        files = write_report(results / "metrics.csv", results / "report", compare_paper=True)
    except Exception as exc:  # the results are safe on disk; say what went wrong with the report
        print(f"error: the report could not be rendered: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"report: {results / 'report'} ({len(files)} files)")
    return 0
