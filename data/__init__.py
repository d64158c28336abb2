"""The datasets of Table 2 and their one registry, ``DATASETS``, read by the CLI, the runner, the
report, the speed tool and the tests.

Each entry holds a dataset's spec (tasks, input, paper batch size), its synthetic stand-in and the
reader of its real files. What lives where: ``spec.py`` (tasks, datasets and metrics as data),
``base.py`` (splits as numpy arrays), ``synthetic.py`` (drawing helpers), one module per dataset
(its spec and stand-in), ``real/`` (the publishers' formats and the prepared-data cache) and
``prepare.py`` (which data a run uses; preparing and loading real data, ``python -m data.prepare``),
``download.py`` (the public datasets from their publishers, on request: ``python -m data.download``).
Nothing here imports torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Callable

from data import ham10000, openkbp, prostate, stoic
from data.base import DataError, TaskData
from data.real import ham10000 as ham10000_reader
from data.real import openkbp as openkbp_reader
from data.real import prostate as prostate_reader
from data.real import stoic as stoic_reader
from data.real.reader import Reader, protocol_problems
from data.spec import DatasetSpec


GROUPS = ("paper", "public", "user")


@dataclass(frozen=True)
class DatasetEntry:
    """A dataset the grid can run: its spec (tasks, input), its synthetic stand-in, its reader.

    ``group``: ``paper`` (Table 2's four: ``--all``), ``public`` (public datasets of the same kinds of
    task pair, real data only: ``--public``) or ``user`` (a plug-in's). ``folds`` > 0: the dataset has no official split and
    is cross-validated with the committed fold table ``fold_table`` (``data.folds``); 0: the reader's
    own train/val/test split.
    """

    spec: DatasetSpec
    synthetic: Callable[..., TaskData]   # (seed, n_train, n_val, n_test, size) -> TaskData
    reader: ModuleType | Reader          # data/real/<name>.py or a data.real.reader.Reader
    group: str = "paper"
    folds: int = 0
    fold_table: Path | None = None


# In the paper's order (Table 2).
DATASETS = {e.spec.name: e for e in (
    DatasetEntry(prostate.SPEC, prostate.synthetic, prostate_reader),
    DatasetEntry(openkbp.SPEC, openkbp.synthetic, openkbp_reader),
    DatasetEntry(ham10000.SPEC, ham10000.synthetic, ham10000_reader),
    DatasetEntry(stoic.SPEC, stoic.synthetic, stoic_reader),
)}


def entry_problems(entry: DatasetEntry) -> list[str]:
    """What is inconsistent in ``entry`` (empty when it can be registered)."""
    problems = [f"reader lacks {m}" for m in protocol_problems(entry.reader)]
    if entry.group not in GROUPS:
        problems.append(f"group {entry.group!r} is not one of {GROUPS}")
    if not callable(entry.synthetic):
        problems.append("synthetic is not callable (seed, n_train, n_val, n_test, size) -> TaskData")
    if entry.folds < 0 or entry.folds == 1:
        problems.append(f"folds must be 0 (the reader's split) or at least 2, got {entry.folds}")
    if entry.folds and (entry.fold_table is None or not Path(entry.fold_table).is_file()):
        problems.append(f"folds={entry.folds} needs its committed fold table, {entry.fold_table} is not a file")
    return problems


def register_dataset(entry: DatasetEntry) -> DatasetEntry:
    """Add ``entry`` to ``DATASETS`` under its spec's name, after checking it (a ValueError naming the
    dataset and every problem otherwise). The one way in for a dataset besides the paper's four:
    the public ones (``data/public/``) and users' plug-ins (``benchmark.plugins``) alike."""
    name = entry.spec.name
    if name in DATASETS:
        raise ValueError(f"dataset {name!r} is already registered; choose another name")
    if entry.group == "paper":
        raise ValueError(f"dataset {name!r} says group='paper'; only Table 2's four are")
    problems = entry_problems(entry)
    if problems:
        raise ValueError(f"dataset {name!r}: " + "; ".join(problems))
    DATASETS[name] = entry
    return entry


def datasets_of(group: str) -> list[str]:
    """The registered datasets of ``group``, in registration order."""
    return [name for name, e in DATASETS.items() if e.group == group]


def get_dataset(name: str) -> DatasetEntry:
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of {list(DATASETS)}")
    return DATASETS[name]


def _register_public() -> None:
    """PH2 and BUSI enter through :func:`register_dataset` like any plug-in's dataset (data/public/)."""
    from data import public
    for entry in public.entries(DatasetEntry):
        register_dataset(entry)


_register_public()
