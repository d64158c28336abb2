"""Tasks and datasets as data (Table 2 of the paper: four datasets, three kinds of task pair).

Code loops over :class:`TaskSpec` values instead of testing dataset names: the loss, the metrics
and the decoder of a task all follow from its spec.
"""
from __future__ import annotations

from dataclasses import dataclass, field

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
    """One task of a pair.

    ``kind`` is "pixel" (dense output at input resolution) or "image" (one prediction per image).
    ``num_outputs`` is the decoder's output channels: classes including background for
    segmentation, 1 for dose, the class count for multi-class and 1 (a logit) for binary tasks.
    ``metric`` is the primary metric, the one Table 2 reports.
    """

    name: str
    kind: str
    target: str
    num_outputs: int
    metric: str
    higher_is_better: bool
    unit: str = ""
    class_names: tuple[str, ...] = ()
    # Regression targets are divided by ``scale`` for the loss (dose in Gy / prescription-like
    # scale, so the L1 loss is O(1) like the other tasks'); predictions are scaled back for metrics.
    scale: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in ("pixel", "image"):
            raise ValueError(f"task {self.name!r}: kind must be 'pixel' or 'image', got {self.kind!r}")
        if self.target not in TARGETS:
            raise ValueError(f"task {self.name!r}: target must be one of {TARGETS}, got {self.target!r}")
        if self.metric not in METRICS_OF_TARGET[self.target]:
            raise ValueError(f"task {self.name!r}: metric {self.metric!r} is not one of "
                             f"{METRICS_OF_TARGET[self.target]} for a {self.target} task")

    @property
    def loss(self) -> str:
        return LOSS_OF_TARGET[self.target]

    @property
    def metrics(self) -> tuple[str, ...]:
        return METRICS_OF_TARGET[self.target]


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset of Table 2: its two tasks, its input and the paper's batch size (Sec. 2.2)."""

    name: str
    tasks: tuple[TaskSpec, ...]
    in_channels: int
    paper_batch_size: int
    native_size: int                 # image side the paper profile trains at (docs/reproduction.md)
    description: str = ""
    extras: tuple[str, ...] = field(default=())  # per-sample arrays besides targets, e.g. dose_mask

    def task(self, name: str) -> TaskSpec:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(f"dataset {self.name!r} has no task {name!r}; tasks: {[t.name for t in self.tasks]}")
