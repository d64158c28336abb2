"""The four datasets of Table 2: an explicit registry of their specs and loaders."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from data import ham10000, openkbp, prostate, stoic
from data.base import DataError, TaskData
from data.spec import DatasetSpec


@dataclass(frozen=True)
class DatasetEntry:
    spec: DatasetSpec
    synthetic: Callable[..., TaskData]   # (seed, n_train, n_val, n_test, size) -> TaskData
    real: Callable[..., TaskData] | None = None   # (root, size) -> TaskData


DATASETS = {
    "prostate": DatasetEntry(prostate.SPEC, prostate.synthetic),
    "openkbp": DatasetEntry(openkbp.SPEC, openkbp.synthetic),
    "ham10000": DatasetEntry(ham10000.SPEC, ham10000.synthetic),
    "stoic": DatasetEntry(stoic.SPEC, stoic.synthetic),
}


def get_dataset(name: str) -> DatasetEntry:
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[name]


def resolve_source(name: str, mode: str, data_root: str | None) -> str:
    """Which data a dataset runs on: ``synthetic`` or ``real`` (``auto`` prefers real where available)."""
    entry = get_dataset(name)
    if mode == "synthetic":
        return "synthetic"
    if mode not in ("auto", "real"):
        raise DataError(f"--data must be auto, real or synthetic, got {mode!r}")
    if entry.real is not None and data_root:
        return "real"
    if mode == "real":
        raise DataError(f"no real {name} data: pass --data-root pointing at the downloaded dataset "
                        f"(see docs/datasets.md)" if entry.real else f"a real-data loader for {name} is not "
                        f"available yet")
    return "synthetic"
