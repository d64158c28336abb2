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
    real: Callable[..., TaskData] | None = None   # (data_root, size, skip_bad=False) -> TaskData


def _real(name: str) -> Callable[..., TaskData]:
    """Real ``name`` data, prepared and cached on first use; the reader (and Pillow, SimpleITK or
    nibabel) is imported only then (``data.prepare.READERS`` names the reader modules)."""
    def load(data_root: str | None, size: int, skip_bad: bool = False) -> TaskData:
        from data.prepare import load as prepare_load
        return prepare_load(name, data_root, size, skip_bad=skip_bad)
    load.__qualname__ = load.__name__ = f"load_real_{name}"
    return load


DATASETS = {
    "prostate": DatasetEntry(prostate.SPEC, prostate.synthetic, _real("prostate")),
    "openkbp": DatasetEntry(openkbp.SPEC, openkbp.synthetic, _real("openkbp")),
    "ham10000": DatasetEntry(ham10000.SPEC, ham10000.synthetic, _real("ham10000")),
    "stoic": DatasetEntry(stoic.SPEC, stoic.synthetic, _real("stoic")),
}


def get_dataset(name: str) -> DatasetEntry:
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {sorted(DATASETS)}")
    return DATASETS[name]


def resolve_source(name: str, mode: str, data_root: str | None) -> str:
    """Which data a dataset runs on: ``synthetic`` or ``real``.

    ``auto`` picks real data where ``data_root`` holds the dataset (the folder itself or its
    subfolder ``name``, recognised by layout) or where it has been prepared in the cache
    (``python -m data.prepare``), and the synthetic stand-in otherwise; ``real`` insists.
    """
    entry = get_dataset(name)
    if mode == "synthetic":
        return "synthetic"
    if mode not in ("auto", "real"):
        raise DataError(f"--data must be auto, real or synthetic, got {mode!r}")
    if entry.real is not None:
        from data.prepare import find_real
        if find_real(name, data_root) is not None:
            return "real"
    if mode == "real":
        if entry.real is None:
            raise DataError(f"a real-data loader for {name} is not available yet")
        from data.prepare import reader
        where = f"in {data_root} (nor in its subfolder {name}/)" if data_root else "(no --data-root given)"
        raise DataError(f"no real {name} data {where} and none prepared in the cache: pass --data-root "
                        f"pointing at the downloaded dataset ({reader(name).LAYOUT}; see docs/datasets.md)")
    return "synthetic"


def real_source(name: str, data_root: str | None) -> str | None:
    """Where real ``name`` data would be read from (a raw folder or a prepared cache), or None."""
    from data.prepare import find_real
    return find_real(name, data_root) if get_dataset(name).real is not None else None


def load_real(name: str, data_root: str | None, size: int, skip_bad: bool = False) -> TaskData:
    """The real dataset ``name`` at ``size`` x ``size`` (prepared on first use; see docs/datasets.md)."""
    entry = get_dataset(name)
    if entry.real is None:
        raise DataError(f"a real-data loader for {name} is not available yet")
    return entry.real(data_root, size, skip_bad=skip_bad).validate()
