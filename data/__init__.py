"""The datasets of Table 2 and their one registry, ``DATASETS``, read by the CLI, the runner, the
report, the speed tool and the tests.

Each entry holds a dataset's spec (tasks, input, paper batch size), its synthetic stand-in and the
reader of its real files. What lives where: ``spec.py`` (tasks, datasets and metrics as data),
``base.py`` (splits as numpy arrays), ``synthetic.py`` (drawing helpers), one module per dataset
(its spec and stand-in), ``real/`` (the publishers' formats and the prepared-data cache) and
``prepare.py`` (which data a run uses; preparing and loading real data, ``python -m data.prepare``).
Nothing here imports torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Callable

from data import ham10000, openkbp, prostate, stoic
from data.base import DataError, TaskData
from data.real import ham10000 as ham10000_reader
from data.real import openkbp as openkbp_reader
from data.real import prostate as prostate_reader
from data.real import stoic as stoic_reader
from data.spec import DatasetSpec


@dataclass(frozen=True)
class DatasetEntry:
    spec: DatasetSpec
    synthetic: Callable[..., TaskData]   # (seed, n_train, n_val, n_test, size) -> TaskData
    reader: ModuleType                   # data/real/<name>.py (protocol in data/real/__init__.py)


# In the paper's order (Table 2).
DATASETS = {e.spec.name: e for e in (
    DatasetEntry(prostate.SPEC, prostate.synthetic, prostate_reader),
    DatasetEntry(openkbp.SPEC, openkbp.synthetic, openkbp_reader),
    DatasetEntry(ham10000.SPEC, ham10000.synthetic, ham10000_reader),
    DatasetEntry(stoic.SPEC, stoic.synthetic, stoic_reader),
)}


def get_dataset(name: str) -> DatasetEntry:
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {list(DATASETS)}")
    return DATASETS[name]
