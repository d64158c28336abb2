"""User plug-ins: an architecture, a loss weighting or a dataset added from the user's own module,
the suite never edited (docs/extending.md).

A plug-in is a Python module that, when imported, calls

    register_method(MethodInfo("mine", "Mine", "what it is"), MyModel)          # models.base.MultiTaskModel
    register_weighting(WeightingInfo("half", "Half", "loss", "what it is"), MyWeighting)
    register_dataset(DatasetEntry(SPEC, my_synthetic, MyReader(), group="user"))  # data.DatasetEntry
    register_task_kind(MyKind, metrics=(MetricSpec("abs_error", ...),))     # benchmark.training.kinds.TaskKind

which adds the name to the torch-free catalog (CLI choices, report labels; for a task kind
``data.spec.TASK_KINDS`` and its metrics to ``data.spec.METRICS``) and the class to the registry (what a
cell builds) together, after checking the two agree. A task kind is registered before the dataset
whose tasks use it. It is loaded by

- ``--plugin MODULE`` (repeatable) of ``reproduce.py``: an importable module name, or a ``.py`` file;
- ``$CTAN_PLUGINS`` (comma-separated, the same forms): what ``--plugin`` sets, so that the worker
  processes that train the cells load the same plug-ins;
- an installed package's entry point in the group ``ctan_bench.plugins`` (``[project.entry-points]``).

A clash with a name already registered, a class that does not match its entry, or a module that does
not import is one :class:`PluginError` at start-up naming the plug-in and the entry.
"""
from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Iterable

from benchmark.training.weighting.catalog import NONE, WEIGHTINGS, WeightingInfo
from models.catalog import METHODS, MethodInfo

ENV_VAR = "CTAN_PLUGINS"
ENTRY_POINT_GROUP = "ctan_bench.plugins"
_loaded: dict[str, object] = {}        # plug-in spec -> its module (each is imported once per process)
_current = "<direct call>"              # the plug-in being imported, for error messages


class PluginError(ValueError):
    """A plug-in that cannot be loaded or registers an inconsistent entry: the message names both."""


def _import(spec: str):
    path = Path(spec)
    if spec.endswith(".py"):
        if not path.is_file():
            raise PluginError(f"plug-in {spec}: no such file")
        name = f"ctan_plugin_{path.stem}"
        module_spec = importlib.util.spec_from_file_location(name, path.resolve())
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        module_spec.loader.exec_module(module)
        return module
    return importlib.import_module(spec)


def _load_one(key: str, label: str, loader) -> None:
    """``loader()`` once per process under ``key``; what it raises becomes one PluginError naming
    ``label``, and registrations made meanwhile name it in theirs."""
    global _current
    if key in _loaded:
        return
    _current = label
    try:
        _loaded[key] = loader()
    except PluginError:
        raise
    except Exception as exc:                     # the user's module: say which and what it raised
        raise PluginError(f"plug-in {label} could not be imported: {type(exc).__name__}: {exc}") from None
    finally:
        _current = "<direct call>"


def load(specs: Iterable[str]) -> list[str]:
    """Import each plug-in (a module name or a ``.py`` path) once; returns the specs now loaded."""
    for spec in (s.strip() for s in specs):
        if spec:
            _load_one(spec, spec, lambda spec=spec: _import(spec))
    return list(_loaded)


def load_all(specs: Iterable[str] = ()) -> list[str]:
    """The plug-ins of ``specs``, ``$CTAN_PLUGINS`` and installed entry points; ``specs`` are added to
    ``$CTAN_PLUGINS`` (as absolute paths for files) so that worker processes started later load them."""
    specs = [str(Path(s).resolve()) if s.endswith(".py") else s for s in specs]
    from_env = [s for s in os.environ.get(ENV_VAR, "").split(",") if s.strip()]
    every = list(dict.fromkeys(from_env + specs))
    if every:
        os.environ[ENV_VAR] = ",".join(every)
    load(every)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        _load_one(ep.value, f"entry point {ep.name} ({ep.value})", ep.load)
    return list(_loaded)


def _clash(kind: str, name: str, known: Iterable[str]) -> None:
    if name in known or name == NONE:
        raise PluginError(f"plug-in {_current}: {kind} {name!r} is already registered; choose another name")


def register_method(info: MethodInfo, cls: type) -> type:
    """Add architecture ``cls`` under ``info.name``: built as ``cls(tasks, backbone=, pretrained=,
    in_channels=)`` like every method (models/registry.py). Not one of the paper's (``paper`` False)."""
    from models.base import MultiTaskModel
    from models.registry import MODELS
    _clash("method", info.name, METHODS)
    if not (inspect.isclass(cls) and issubclass(cls, MultiTaskModel)):
        raise PluginError(f"plug-in {_current}: method {info.name!r}: {cls!r} is not a models.base.MultiTaskModel")
    params = inspect.signature(cls.__init__).parameters
    missing = [p for p in ("backbone", "pretrained", "in_channels") if p not in params]
    if missing and not any(p.kind == p.VAR_KEYWORD for p in params.values()):
        raise PluginError(f"plug-in {_current}: method {info.name!r}: {cls.__name__}.__init__ lacks {missing}")
    if info.paper:
        raise PluginError(f"plug-in {_current}: method {info.name!r} says paper=True; only the paper's four are")
    METHODS[info.name] = info
    MODELS[info.name] = cls
    return cls


def register_weighting(info: WeightingInfo, cls: type) -> type:
    """Add loss weighting ``cls`` under ``info.name``: built as ``cls(n_tasks, **defaults)`` with the
    hyper-parameters ``info.defaults`` lists (the catalog is their one source; ``NAME+KEY=VALUE``
    overrides them on the command line)."""
    from benchmark.training.weighting.base import Weighting
    from benchmark.training.weighting.registry import CLASSES
    _clash("weighting", info.name, WEIGHTINGS)
    if not (inspect.isclass(cls) and issubclass(cls, Weighting)):
        raise PluginError(f"plug-in {_current}: weighting {info.name!r}: {cls!r} is not a "
                          f"benchmark.training.weighting.base.Weighting")
    if getattr(cls, "name", None) != info.name or cls.kind != info.kind:
        raise PluginError(f"plug-in {_current}: weighting {info.name!r} ({info.kind}): the class says name "
                          f"{getattr(cls, 'name', None)!r}, kind {cls.kind!r}")
    params = inspect.signature(cls.__init__).parameters
    missing = [k for k, _ in info.defaults if k not in params]
    if missing:
        raise PluginError(f"plug-in {_current}: weighting {info.name!r}: {cls.__name__}.__init__ takes no "
                          f"{missing}, which its entry lists as hyper-parameters")
    WEIGHTINGS[info.name] = info
    CLASSES[info.name] = cls
    return cls


def register_dataset(entry):
    """Add dataset ``entry`` (a ``data.DatasetEntry``: spec, synthetic stand-in, reader) through
    ``data.register_dataset``, the path the suite's public datasets take too; an inconsistent entry or
    a clash is one PluginError naming the plug-in."""
    from data import DatasetEntry, register_dataset as add
    if not isinstance(entry, DatasetEntry):
        raise PluginError(f"plug-in {_current}: {entry!r} is not a data.DatasetEntry")
    try:                                    # a clash or an inconsistent entry: data.register_dataset says which
        return add(entry)
    except ValueError as exc:
        raise PluginError(f"plug-in {_current}: {exc}") from None


_KIND_METHODS = ("make_loss", "statistics", "result", "cases")   # what a kind must give (TaskKind's docstring)


def register_task_kind(cls: type, metrics: Iterable = ()) -> type:
    """Add task kind ``cls`` (a ``benchmark.training.kinds.TaskKind`` whose ``info`` is its
    ``data.spec.KindInfo``) under ``info.name``, and the ``data.spec.MetricSpec`` of each new metric it
    reports. Its tasks then train, are scored and reach the report like the suite's own kinds; a
    metric's per-case rows must be its weighted mean per case (``benchmark.report.cases``)."""
    from benchmark.training.kinds import KINDS, TaskKind
    from data.spec import METRICS, OUTPUTS, TASK_KINDS, KindInfo, MetricSpec
    info = getattr(cls, "info", None)
    if not (inspect.isclass(cls) and issubclass(cls, TaskKind) and isinstance(info, KindInfo)):
        raise PluginError(f"plug-in {_current}: {cls!r} is not a benchmark.training.kinds.TaskKind with a "
                          f"data.spec.KindInfo as its info")
    _clash("task kind", info.name, TASK_KINDS)
    if info.outputs not in OUTPUTS:
        raise PluginError(f"plug-in {_current}: task kind {info.name!r}: outputs must be 'pixel' or 'image', "
                          f"got {info.outputs!r}")
    missing = [m for m in _KIND_METHODS if getattr(cls, m) is getattr(TaskKind, m)]
    if missing:
        raise PluginError(f"plug-in {_current}: task kind {info.name!r}: {cls.__name__} does not define {missing}")
    new = {}
    for m in metrics:
        if not isinstance(m, MetricSpec):
            raise PluginError(f"plug-in {_current}: task kind {info.name!r}: {m!r} is not a data.spec.MetricSpec")
        if m.name in METRICS or m.name in new:
            raise PluginError(f"plug-in {_current}: task kind {info.name!r}: metric {m.name!r} is already "
                              f"registered; choose another name")
        new[m.name] = m
    unknown = [m for m in info.metrics if m not in METRICS and m not in new]
    if not info.metrics or unknown:
        raise PluginError(f"plug-in {_current}: task kind {info.name!r}: its metrics {list(info.metrics)} need "
                          f"a MetricSpec each" + (f"; none given for {unknown}" if unknown else ""))
    METRICS.update(new)
    TASK_KINDS[info.name] = info
    KINDS[info.name] = cls()
    return cls
