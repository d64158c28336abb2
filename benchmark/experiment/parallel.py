"""Where cells run: serially, in joblib worker processes (one machine, optionally one GPU per cell),
or on a Dask cluster (a running scheduler, a LocalCluster, or Slurm through dask-jobqueue), one
cell per worker at a time, submitted to the cluster's client directly.

Workers store their own results (``runner.run_and_store``), so the parent losing a worker, or being
killed itself, never loses a finished cell.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator


class ClusterError(RuntimeError):
    """The cluster refused the workers before any cell ran (e.g. ``sbatch`` cannot satisfy the request):
    the message names the request and the cluster's reason."""


ALLOWED_JOB_ENDS = 10   # Slurm jobs that may end under one cell (scancel, walltime) before it fails


@dataclass(frozen=True)
class SlurmOptions:
    """dask-jobqueue SLURMCluster settings; each Slurm job runs one worker with one GPU."""

    queue: str | None = None
    walltime: str = "24:00:00"
    memory: str = "32GB"
    cores: int = 8
    gpus: int = 1
    account: str | None = None
    log_directory: str | None = None     # the jobs' output files (default: the submitting folder)


@dataclass(frozen=True)
class Execution:
    backend: str = "loky"                  # loky (joblib processes, one machine) | dask
    jobs: int = 1                          # cells at once
    devices: tuple[str, ...] = ("cpu",)    # each running cell leases one of these
    scheduler: str | None = None           # dask: address of a running scheduler
    cluster: str = "local"                 # dask without scheduler: local | slurm
    slurm: SlurmOptions = field(default_factory=SlurmOptions)
    # How a cell runs, not what it is (never part of its identity): how often a network's training
    # state is saved (seconds; 0 = every epoch), whether the last state outlives the cell, whether the
    # selected weights do (a ResNet-18 cell's are ~70 MB: 848 cells of the extended grid, ~60 GB), live curves.
    checkpoint_every: float = 120.0
    keep_last: bool = False
    keep_weights: bool = True
    tensorboard: bool = True


@contextlib.contextmanager
def lease_device(devices: tuple[str, ...], lock_dir: Path, poll: float = 0.5) -> Iterator[str]:
    """Hold one of ``devices`` exclusively for this process (file locks in ``lock_dir``, per host).

    With as many jobs as GPUs every cell gets a GPU of its own; a CPU needs no lease.
    """
    if all(d == "cpu" for d in devices):
        yield "cpu"
        return
    lock_dir.mkdir(parents=True, exist_ok=True)
    host = socket.gethostname()
    while True:
        for device in devices:
            f = open(lock_dir / f"{host}-{device.replace(':', '_')}.lock", "w")
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                f.close()
                continue
            try:
                yield device
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
                f.close()
            return
        time.sleep(poll)


def _dask_client(ex: Execution):
    from dask.distributed import Client, LocalCluster

    if ex.scheduler:
        return Client(ex.scheduler), None
    if ex.cluster == "slurm":
        import dask
        from dask_jobqueue import SLURMCluster

        # a cell outliving its job's walltime resumes from its checkpoint in the next job; Dask gives
        # up on a task after this many lost workers (default 3)
        dask.config.set({"distributed.scheduler.allowed-failures": ALLOWED_JOB_ENDS})

        s = ex.slurm
        extra = [f"--gres=gpu:{s.gpus}"] if s.gpus else []
        # The job imports the suite from where this process did (a clone run in place is not installed)
        # and from this folder (a plug-in given as a module name).
        path = os.pathsep.join([str(Path(__file__).resolve().parents[2]), os.getcwd()])
        # one worker thread (one cell at a time per job, as one GPU per job wants) on s.cores CPUs,
        # which the cell's torch threads use
        cluster = SLURMCluster(queue=s.queue, account=s.account, cores=1, job_cpu=s.cores, processes=1,
                               memory=s.memory, walltime=s.walltime, job_extra_directives=extra,
                               log_directory=s.log_directory,
                               job_script_prologue=[f'export PYTHONPATH="{path}${{PYTHONPATH:+:$PYTHONPATH}}"'])
        try:
            _check_job(cluster.job_script())
        except ClusterError:
            cluster.close()
            raise
        # adapt, not scale: a job that ends (scancel, its walltime, a lost node) is replaced by a new one,
        # and the cell it held runs again there (resuming from its checkpoint); scale would leave the
        # grid waiting for workers that never come back
        cluster.adapt(minimum_jobs=ex.jobs, maximum_jobs=ex.jobs)
        return Client(cluster), cluster
    cluster = LocalCluster(n_workers=ex.jobs, threads_per_worker=1, processes=True, dashboard_address=None)
    return Client(cluster), cluster


def _check_job(script: str) -> None:
    """``sbatch --test-only`` on the workers' job script: a request the cluster cannot satisfy (more
    CPUs or memory than a node has, an unknown partition or account) or an unreachable controller is
    one :class:`ClusterError` now, not jobs pending forever or a grid of lost workers."""
    import subprocess
    import tempfile

    with tempfile.NamedTemporaryFile("w", suffix=".sh") as f:
        f.write(script)
        f.flush()
        try:
            out = subprocess.run(["sbatch", "--test-only", f.name], capture_output=True, text=True, timeout=60)
        except FileNotFoundError:
            raise ClusterError("--cluster slurm: sbatch is not on PATH (is this a Slurm login node?)") from None
    if out.returncode != 0:
        request = " ".join(line.removeprefix("#SBATCH ") for line in script.splitlines() if line.startswith("#SBATCH"))
        reason = " ".join((out.stderr or out.stdout).split())
        raise ClusterError(f"Slurm refuses the worker jobs ({request}): {reason}")


def execute(fn: Callable, items: list, ex: Execution, serial_kwargs: dict | None = None) -> Iterator:
    """Yield ``fn(item)`` results as they finish (``serial_kwargs`` only when run in this process).
    Each cell sets its own thread count (its profile's): nothing here depends on the core count."""
    if ex.jobs <= 1 and ex.backend == "loky":
        for item in items:
            yield fn(item, **(serial_kwargs or {}))
        return
    if ex.backend == "dask":
        # Not joblib's dask backend: it counts the cluster's threads and, with one worker of one thread
        # (--jobs 1), runs every cell in this process instead of on the cluster. A worker that dies
        # (scancel, walltime, a lost node) has its cell rescheduled by Dask on another worker.
        from dask.distributed import as_completed

        client, cluster = _dask_client(ex)
        try:
            futures = [client.submit(fn, item, pure=False) for item in items]
            for future in as_completed(futures):
                yield future.result()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    elif ex.backend == "loky":
        from joblib import Parallel, delayed

        yield from Parallel(n_jobs=ex.jobs, return_as="generator_unordered")(delayed(fn)(item) for item in items)
    else:
        raise ValueError(f"unknown backend {ex.backend!r}; choose loky or dask")
