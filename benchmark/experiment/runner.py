"""The grid: cells (dataset, method, seed), run one by one or in parallel, each stored on its own.

A failing cell records its error and the grid goes on; finished cells are skipped on a re-run.
"""
from __future__ import annotations

import contextlib
import os
import platform
import shutil
import socket
import subprocess
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch

from benchmark.plugins import PluginError, load_all as load_plugins
from benchmark.experiment import claims, store
from benchmark.experiment.cell import CellConfig, load_data
from benchmark.experiment.parallel import ClusterError, Execution, execute, lease_device
from benchmark.experiment.precision import describe_cpu
from benchmark.experiment.live import STATUS, EpochLog, LiveStatus, StatusFile
from benchmark.training.checkpoint import Checkpoints
from benchmark.training.loop import TrainResult, check_metrics, train_network
from benchmark.training.scoring import score
from benchmark.training.settings import TrainSettings
from benchmark.training.weighting.catalog import DEFAULT, NONE
from data.spec import METRICS
from models.base import count_parameters
from models.catalog import bottleneck_side
from models.registry import build_model


@dataclass(frozen=True)
class Outcome:
    config: CellConfig
    status: str          # finished | skipped | failed | claimed (another runner holds it)
    message: str = ""
    seconds: float = 0.0


def _versions() -> dict[str, str]:
    """Library and code versions, so any number can be traced to how it was made."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "code": _code_version()}
    for pkg in ("torch", "torchvision", "numpy", "monai", "scikit-learn", "pandas"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "absent"
    return out


def _code_version() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def metric_rows(cfg: CellConfig, spec, tasks, results: dict, split: str, all_metrics: bool) -> list[dict]:
    """Rows of metrics.csv for ``tasks``' results on ``split``: every metric computed, or only each
    task's primary one (the validation split's selected epoch)."""
    rows = []
    for task in tasks:
        names = [m for m in results[task.name] if m != "loss"] if all_metrics else [task.metric]
        rows += [{"dataset": cfg.dataset, "method": cfg.method, "weighting": cfg.weighting, "seed": cfg.seed, "fold": cfg.fold,
                  "task": task.name,
                  "task_index": spec.tasks.index(task) + 1, "metric": m, "value": results[task.name][m],
                  "higher_is_better": METRICS[m].higher_is_better, "primary": m == task.metric, "split": split,
                  "data_source": cfg.data_source, "profile": cfg.profile.label, "image_size": cfg.image_size}
                 for m in names]
    return rows


def case_rows(cfg: CellConfig, cases: list[dict], split: str) -> list[dict]:
    """Rows of cases.csv: the cell's keys before each per-case row (``scoring.score``)."""
    keys = {"dataset": cfg.dataset, "method": cfg.method, "weighting": cfg.weighting, "seed": cfg.seed, "fold": cfg.fold,
            "data_source": cfg.data_source, "profile": cfg.profile.label, "split": split}
    return [{**keys, **c} for c in cases]


def enable_determinism() -> None:
    """Deterministic kernels everywhere (docs/scaling.md: what differs on GPU and how to pin it)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False


def run_cell(cfg: CellConfig, device: str = "cpu", progress: bool = False, directory: Path | None = None,
             execution: Execution | None = None) -> tuple[list[dict], list[dict], dict]:
    """Train and evaluate one cell; returns (metric rows, epoch rows, metadata; the test split's
    per-case rows in ``metadata["cases"]``, which the store writes as cases.csv). With the cell's
    ``directory`` it checkpoints each network (resuming a saved state, skipping a finished network)
    and, if the execution asks, writes TensorBoard curves there."""
    execution = execution or Execution()
    start = time.perf_counter()
    if cfg.deterministic:
        enable_determinism()
    data = load_data(cfg)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    spec = data.spec
    model = build_model(cfg.method, spec.tasks, cfg.profile.backbone, cfg.profile.pretrained, spec.in_channels)
    rows, epoch_rows, selected, cases = [], [], {}, []
    networks = model.networks()
    for k, (tasks, net) in enumerate(networks):
        network = "joint" if len(networks) == 1 else tasks[0].name
        settings = cfg.train_settings(k, device, progress)
        res = _train(net, tasks, data, cfg, settings, (k, len(networks)), directory, network, execution)
        test, test_cases = score(net, tasks, data, "test", settings)
        cases += case_rows(cfg, test_cases, "test")
        check_metrics(test, tasks, f"{cfg.dataset}/{cfg.method} {cfg.replicate}, test split")
        selected[network] = res.best_epoch
        rows += metric_rows(cfg, spec, tasks, test, "test", all_metrics=True)
        rows += metric_rows(cfg, spec, tasks, res.val, "val", all_metrics=False)
        for row in res.epochs:
            epoch_rows.append({"dataset": cfg.dataset, "method": cfg.method, "weighting": cfg.weighting,
                               "seed": cfg.seed, "fold": cfg.fold,
                               "data_source": cfg.data_source, "profile": cfg.profile.label,
                               "network": network, **row})
    side = bottleneck_side(cfg.image_size)
    meta = {"config": cfg.to_dict(), "config_hash": cfg.hash(), "wall_seconds": time.perf_counter() - start,
            "bottleneck": f"{side}x{side}",
            "parameters": count_parameters(model), "selected_epoch": selected, "device": str(device),
            "data": {"source": data.source, "description": data.description, "counts": data.counts(),
                     "volume_patients": len(data.volumes.patients()) if data.volumes is not None else 0},
            "versions": _versions(), "deterministic": torch.are_deterministic_algorithms_enabled(),
            "host": platform.node(), "cpu": describe_cpu(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "threads": torch.get_num_threads(), "cases": cases}
    return rows, epoch_rows, meta


def _train(net, tasks, data, cfg: CellConfig, settings: TrainSettings, position: tuple[int, int],
           directory: Path | None, network: str, execution: Execution) -> TrainResult:
    """Train one network of a cell (``position``: its index and the cell's network count), or take its
    finished result from the cell's checkpoints."""
    k = position[0]
    if directory is None:
        return train_network(net, tasks, data, settings)
    ckpt = Checkpoints(directory / "checkpoints" / network, execution.checkpoint_every, execution.keep_last)
    done = ckpt.result()
    if done is not None:  # finished before the cell was interrupted
        print(f"[resume] {ckpt.folder}: this network finished before the interruption; its selected "
              f"weights are reused", flush=True)
        net.load_state_dict(ckpt.selected()["model"])
        return TrainResult(**done)
    hooks = [StatusFile(directory, network, k, position[1], cfg.profile.epochs)]
    if execution.tensorboard:
        hooks.append(EpochLog(directory / "tensorboard" / network))

    def on_epoch(end) -> None:
        for hook in hooks:
            hook(end)

    try:
        return train_network(net, tasks, data, settings, on_epoch=on_epoch, checkpoints=ckpt)
    finally:
        for hook in hooks:
            hook.close()


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    try:
        (file or sys.stderr).write(f"warning: {message} ({category.__name__}, {Path(filename).name}:{lineno})\n")
    except OSError:
        pass


def one_line_warnings() -> None:
    """Warnings as one line each (message, category, file:line), not Python's two lines whose second is
    the source line that called ``warn`` -- in a worker that line is the runner's, which says nothing."""
    warnings.showwarning = _show_warning


def run_and_store(cfg: CellConfig, results: str, execution: Execution = Execution(),
                  progress: bool = False) -> Outcome:
    """Claim, run and store one cell on a leased device with the cell's own thread count. Nothing
    is raised (one failing cell must not stop the grid): a cell another runner holds is
    ``claimed``; a failing one records its traceback in error.txt; one that trained but could not
    be stored says so, naming the path and the cause."""
    try:
        load_plugins()   # $CTAN_PLUGINS: a worker process loads what the command line loaded
    except PluginError as exc:
        return Outcome(cfg, "failed", str(exc))
    one_line_warnings()
    torch.set_num_threads(cfg.profile.threads)
    directory = cfg.directory(results)
    start = time.perf_counter()
    try:
        claim = claims.try_claim(directory)
    except OSError as exc:
        return Outcome(cfg, "failed", f"cannot claim the cell: {store.describe(directory, exc)}")
    if claim is None:
        owner = claims.read_owner(directory) or {}
        return Outcome(cfg, "claimed", f"held by {owner.get('host', '?')} pid {owner.get('pid', '?')}")
    try:
        if store.is_finished(directory):  # another runner finished it between our plan and our claim
            return Outcome(cfg, "skipped", "finished by another runner")
        try:
            with lease_device(tuple(execution.devices), Path(results) / ".locks") as device:
                metrics, epochs, meta = run_cell(cfg, device, progress, directory, execution)
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            try:
                store.write_failure(directory, traceback.format_exc())
            except OSError as err:
                message += f" (not recorded: {store.describe(directory, err)})"
            return Outcome(cfg, "failed", message, time.perf_counter() - start)
        try:
            store.write_cell(directory, metrics, epochs, meta)
            (directory / STATUS).unlink(missing_ok=True)      # the live status of a stored cell is over
            if not execution.keep_weights:  # stored: the metrics no longer need the weights
                shutil.rmtree(directory / "checkpoints", ignore_errors=True)
        except OSError as exc:
            return Outcome(cfg, "failed", f"trained but could not be stored: {store.describe(directory, exc)}",
                           time.perf_counter() - start)
    finally:
        claim.release()
    primary = [r for r in metrics if r["primary"] and r["split"] == "test"]
    summary = ", ".join(f"{r['task']} {r['metric']} {r['value']:.2f}" for r in primary)
    return Outcome(cfg, "finished", f"on {device}: {summary}", time.perf_counter() - start)


class SettingsConflict(ValueError):
    """Finished cells in the results folder were made with other settings (their config hash differs)."""


def plan(configs: list[CellConfig], results: str, force: bool = False) -> tuple[list[CellConfig], list[Outcome]]:
    """The cells to run and the outcomes of those already finished. A finished cell made with other
    settings (a profile changed in code) is never silently reused: :class:`SettingsConflict`."""
    pending, done, conflicts = [], [], []
    for cfg in configs:
        d = cfg.directory(results)
        if force and claims.read_owner(d) is None:
            store.clear_cell(d)
        if not store.is_finished(d):
            pending.append(cfg)
            continue
        stored = store.stored_hash(d)
        if stored is not None and stored != cfg.hash():
            conflicts.append(f"{d} (stored {stored}, now {cfg.hash()})")
        done.append(Outcome(cfg, "skipped", "already finished"))
    if conflicts:
        raise SettingsConflict(f"{len(conflicts)} finished cell(s) were made with other settings than "
                               f"these: {conflicts[0]}{' ...' if len(conflicts) > 1 else ''}; pass --force "
                               f"to recompute them, or use another --results folder")
    return pending, done


def _wait_for_others(claimed: list[CellConfig], results: str, execution: Execution, log,
                     poll: float = 2.0) -> list[Outcome]:
    """Wait for cells other runners hold: each ends finished by them, or, when its claim goes
    stale (the other runner died), computed here."""
    outcomes, waiting = [], list(claimed)
    if waiting:
        log(f"waiting for {len(waiting)} cell(s) held by other runners")
    while waiting:
        still = []
        for cfg in waiting:
            d = cfg.directory(results)
            if store.is_finished(d):
                outcomes.append(Outcome(cfg, "skipped", "finished by another runner"))
            elif claims.read_owner(d) is None or claims.is_stale(d):
                outcome = run_and_store(cfg, results, execution)
                if outcome.status == "claimed":  # a third runner was quicker
                    still.append(cfg)
                else:
                    outcomes.append(outcome)
            else:
                still.append(cfg)
        waiting = still
        if waiting:
            time.sleep(poll)
    return outcomes


def run_grid(configs: list[CellConfig], results: str, execution: Execution = Execution(), force: bool = False,
             progress: bool = True, log=print) -> list[Outcome]:
    """Run every pending cell (all of them with ``force``) and rebuild the aggregate CSVs.

    The results folder is checked first (:class:`store.StoreError`). If a worker process dies
    (killed, out of memory), the cells it had not finished are reported as failed; finished cells
    are on disk and a re-run computes only what is missing. Cells other runners hold are waited for.
    """
    store.check_writable(results)
    pending, outcomes = plan(configs, results, force)
    if outcomes:
        log(f"{len(outcomes)} cell(s) already finished (use --force to recompute)")
    execution = replace(execution, jobs=max(1, min(execution.jobs, len(pending))))
    bar = None
    if progress and sys.stderr.isatty():   # bars redraw with carriage returns: never into a log file
        from tqdm.auto import tqdm
        bar = tqdm(total=len(pending), desc="cells", unit="cell")
    run = partial(run_and_store, results=results, execution=execution)
    seen, claimed = set(), []
    # workers' epoch bars are off, and so is every bar in a log: the parent shows each running cell's
    # epoch instead (serially on a terminal, the cell's own epoch bar does)
    live = LiveStatus({cell_name(c): c.directory(results) for c in pending}, bar, log) \
        if progress and (execution.jobs > 1 or bar is None) else contextlib.nullcontext()
    try:
        with live:
            for outcome in execute(run, pending, execution, {"progress": bar is not None}):
                seen.add(outcome.config)
                if outcome.status == "claimed":
                    claimed.append(outcome.config)
                else:
                    outcomes.append(outcome)
                if isinstance(live, LiveStatus):
                    live.finished(cell_name(outcome.config))
                _report(outcome, bar, log)
    except KeyboardInterrupt:  # SIGINT / SIGTERM (Stopped), a notebook interrupt: keep what finished, free the rest
        if bar is not None:
            bar.close()
            bar = None
        _release_abandoned(pending, results)
        _rebuild(results)
        raise
    except ClusterError:    # refused before any cell ran: one error, nothing to report per cell
        _release_abandoned(pending, results)
        raise
    except Exception as exc:  # a worker died: keep what finished, name what did not
        for cfg in pending:
            if cfg not in seen:
                done = store.is_finished(cfg.directory(results))
                outcome = Outcome(cfg, "finished" if done else "failed",
                                  "" if done else f"worker lost: {type(exc).__name__}: {exc}")
                outcomes.append(outcome)
                _report(outcome, bar, log)
    finally:
        if bar is not None:
            bar.close()
    for outcome in _wait_for_others(claimed, results, execution, log):
        outcomes.append(outcome)
        _report(outcome, None, log)
    _rebuild(results)
    return outcomes


def _rebuild(results: str) -> None:
    try:
        store.rebuild(results)
    except OSError as exc:
        raise store.StoreError(f"the finished cells are stored in {Path(results) / 'runs'}, but the aggregate "
                               f"CSVs could not be rebuilt: {store.describe(results, exc)}") from None


def _release_abandoned(pending: list[CellConfig], results: str, wait: float = 10.0) -> None:
    """After a stop: remove the claims of this run's cells whose owner -- this process, or a worker
    process on this host -- is gone (a worker terminated with the pool may take a moment to exit).
    A claim of a live process elsewhere is left to its owner."""
    deadline = time.monotonic() + wait
    for cfg in pending:
        d = cfg.directory(results)
        owner = claims.read_owner(d)
        if owner is None or owner.get("host") != socket.gethostname():
            continue
        pid = owner.get("pid")
        while pid != os.getpid() and claims.alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if pid == os.getpid() or not claims.alive(pid):
            (d / claims.CLAIM).unlink(missing_ok=True)


def cell_name(c: CellConfig) -> str:
    """How progress lines name a cell: dataset/method[+weighting] seed S [fold K]."""
    return f"{c.dataset}/{c.method}{'' if c.weighting in (DEFAULT, NONE) else '+' + c.weighting} {c.replicate}"


def _report(outcome: Outcome, bar, log) -> None:
    c = outcome.config
    line = (f"[{c.data_source}] {cell_name(c)}: {outcome.status} "
            f"({outcome.seconds:.0f} s) {outcome.message}")
    if bar is not None:
        bar.update(1)
        bar.write(line)
    else:
        log(line)
