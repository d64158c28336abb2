"""Where cells run: serially, in joblib worker processes (one machine, optionally one GPU per cell),
or on a Dask cluster through joblib's dask backend (a running scheduler, a LocalCluster, or Slurm).

Workers store their own results (``runner.run_and_store``), so the parent losing a worker, or being
killed itself, never loses a finished cell.
"""
from __future__ import annotations

import contextlib
import fcntl
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator


@dataclass(frozen=True)
class SlurmOptions:
    """dask-jobqueue SLURMCluster settings; each Slurm job runs one worker with one GPU."""

    queue: str | None = None
    walltime: str = "24:00:00"
    memory: str = "32GB"
    cores: int = 8
    gpus: int = 1
    account: str | None = None


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
        from dask_jobqueue import SLURMCluster

        s = ex.slurm
        extra = [f"--gres=gpu:{s.gpus}"] if s.gpus else []
        cluster = SLURMCluster(queue=s.queue, account=s.account, cores=s.cores, processes=1, memory=s.memory,
                               walltime=s.walltime, job_extra_directives=extra)
        cluster.scale(jobs=ex.jobs)
        return Client(cluster), cluster
    cluster = LocalCluster(n_workers=ex.jobs, threads_per_worker=1, processes=True, dashboard_address=None)
    return Client(cluster), cluster


def execute(fn: Callable, items: list, ex: Execution, serial_kwargs: dict | None = None) -> Iterator:
    """Yield ``fn(item)`` results as they finish (``serial_kwargs`` only when run in this process).
    Each cell sets its own thread count (its profile's): nothing here depends on the core count."""
    if ex.jobs <= 1 and ex.backend == "loky":
        for item in items:
            yield fn(item, **(serial_kwargs or {}))
        return
    from joblib import Parallel, delayed, parallel_config

    calls = (delayed(fn)(item) for item in items)
    if ex.backend == "dask":
        client, cluster = _dask_client(ex)
        try:
            with parallel_config(backend="dask"):
                yield from Parallel(n_jobs=ex.jobs, return_as="generator_unordered")(calls)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    elif ex.backend == "loky":
        yield from Parallel(n_jobs=ex.jobs, return_as="generator_unordered")(calls)
    else:
        raise ValueError(f"unknown backend {ex.backend!r}; choose loky or dask")
