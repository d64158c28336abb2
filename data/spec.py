"""Tasks, datasets and metrics as data (Table 2 of the paper: four datasets, three kinds of task pair).

Code loops over :class:`TaskSpec` values instead of testing dataset names: the loss, the metrics
and the decoder of a task follow from its spec, and a metric's label, unit and direction from
:data:`METRICS`, the one metric table of the suite (the runner, the report and the docs read it).
Nothing here imports torch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class MetricSpec:
    """A reported metric: how captions name it, its unit, its direction and its possible range
    (a value outside it means a broken run, not a bad one)."""

    name: str
    label: str
    unit: str
    higher_is_better: bool
    low: float = 0.0
    high: float = math.inf

    def possible(self, value: float) -> bool:
        """True for a finite value in the range, and for NaN (a metric can be undefined, e.g. the
        AUC of a one-class split)."""
        return math.isnan(value) or self.low <= value <= self.high


METRICS = {m.name: m for m in (
    MetricSpec("dice", "Dice", "%", True, 0.0, 100.0),
    MetricSpec("mae", "MAE", "Gy", False),
    MetricSpec("dose_score", "dose score", "Gy", False),
    MetricSpec("dvh_score", "DVH score", "Gy", False),
    MetricSpec("accuracy", "accuracy", "%", True, 0.0, 100.0),
    MetricSpec("balanced_accuracy", "balanced accuracy", "%", True, 0.0, 100.0),
    MetricSpec("macro_f1", "macro F1", "%", True, 0.0, 100.0),
    MetricSpec("auc", "AUC", "%", True, 0.0, 100.0),
)}

# What a task predicts decides its decoder, loss and metrics (paper Sec. 2.1-2.3, Table 1).
TARGETS = ("segmentation", "regression", "multiclass", "binary")
LOSS_OF_TARGET = {"segmentation": "combo", "regression": "l1", "multiclass": "ce", "binary": "bce"}
METRICS_OF_TARGET = {
    "segmentation": ("dice",),
    "regression": ("mae", "dose_score"),
    "multiclass": ("accuracy", "balanced_accuracy", "macro_f1"),
    "binary": ("auc",),
}


@dataclass(frozen=True)
class TaskSpec:
    """One task of a dataset.

    ``kind`` is "pixel" (dense output at input resolution) or "image" (one prediction per image).
    ``num_outputs`` is the decoder's output channels: classes including background for
    segmentation, 1 for dose, the class count for multi-class and 1 (a logit) for binary tasks.
    ``metric`` is the primary metric, the one Table 2 reports. ``mask`` names the per-sample extra
    (one of the dataset's ``extras``) that bounds the region of masked metrics such as OpenKBP's
    dose score; without one they use the whole image. ``dvh`` names the structures of a dataset's
    test volumes (``data.base.Volumes``), as (name, "oar" | "target") in the bit order of their
    ``structures`` masks: a regression task with them is also scored by OpenKBP's DVH score.
    ``empty_is_perfect`` (segmentation): a case whose truth and prediction are both empty scores a
    Dice of 100 % -- for datasets with structure-free cases by design (BUSI's normal images), where
    skipping them would not reward getting them right; off, such a case is skipped (the paper's
    datasets, where every case holds the structure).
    """

    name: str
    kind: str
    target: str
    num_outputs: int
    metric: str
    class_names: tuple[str, ...] = ()
    # Regression targets are divided by ``scale`` for the loss (dose in Gy / the prescription);
    # predictions are scaled back for metrics.
    scale: float = 1.0
    mask: str | None = None
    dvh: tuple[tuple[str, str], ...] = ()
    empty_is_perfect: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("pixel", "image"):
            raise ValueError(f"task {self.name!r}: kind must be 'pixel' or 'image', got {self.kind!r}")
        if self.target not in TARGETS:
            raise ValueError(f"task {self.name!r}: target must be one of {TARGETS}, got {self.target!r}")
        if self.metric not in METRICS_OF_TARGET[self.target]:
            raise ValueError(f"task {self.name!r}: metric {self.metric!r} is not one of "
                             f"{METRICS_OF_TARGET[self.target]} for a {self.target} task")
        if self.empty_is_perfect and self.target != "segmentation":
            raise ValueError(f"task {self.name!r}: empty_is_perfect is a segmentation task's setting")
        if self.dvh and (self.target != "regression" or any(kind not in ("oar", "target") for _, kind in self.dvh)):
            raise ValueError(f"task {self.name!r}: DVH structures are (name, 'oar' | 'target') of a regression task")

    @property
    def loss(self) -> str:
        return LOSS_OF_TARGET[self.target]

    @property
    def metrics(self) -> tuple[str, ...]:
        return METRICS_OF_TARGET[self.target]

    @property
    def higher_is_better(self) -> bool:
        """Direction of the primary metric."""
        return METRICS[self.metric].higher_is_better


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset of Table 2: its tasks, its input and the paper's batch size (Sec. 2.2).

    ``label`` is the name tables print; ``extras`` are the per-sample arrays besides images and
    targets that every split carries (e.g. OpenKBP's possible-dose mask), named by tasks' ``mask``.
    """

    name: str
    label: str
    tasks: tuple[TaskSpec, ...]
    in_channels: int
    paper_batch_size: int
    native_size: int                 # image side the paper profile trains at (docs/reproduction.md)
    extras: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for t in self.tasks:
            if t.mask is not None and t.mask not in self.extras:
                raise ValueError(f"dataset {self.name!r}: task {t.name!r} is masked by {t.mask!r}, "
                                 f"which is not one of its extras {self.extras}")

    def task(self, name: str) -> TaskSpec:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(f"dataset {self.name!r} has no task {name!r}; tasks: {[t.name for t in self.tasks]}")
