"""Tasks, datasets and metrics as data (Table 2 of the paper: four datasets, three kinds of task pair).

Code loops over :class:`TaskSpec` values instead of testing dataset names: the loss, the metrics
and the decoder of a task follow from its kind (:data:`TASK_KINDS`, named by ``TaskSpec.target``; the
behaviour in ``benchmark.training.kinds``), and a metric's label, unit and direction from
:data:`METRICS`, the one metric table of the suite (the runner, the report and the docs read it).
Nothing here imports torch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


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
    # OpenKBP's dose score on whole patients (training.volumes), and its slice-level form: the same masked
    # error averaged over slices, all a dataset without whole volumes can give; named apart (issue 24)
    MetricSpec("dose_score", "dose score", "Gy", False),
    MetricSpec("slice_dose_score", "dose score (slices)", "Gy", False),
    MetricSpec("dvh_score", "DVH score", "Gy", False),
    MetricSpec("accuracy", "accuracy", "%", True, 0.0, 100.0),
    MetricSpec("balanced_accuracy", "balanced accuracy", "%", True, 0.0, 100.0),
    MetricSpec("macro_f1", "macro F1", "%", True, 0.0, 100.0),
    MetricSpec("auc", "AUC", "%", True, 0.0, 100.0),
)}

@dataclass(frozen=True)
class KindInfo:
    """A task kind as data: what a task of this ``TaskSpec.target`` predicts, in the torch-free
    catalog :data:`TASK_KINDS` (its behaviour -- loss, per-sample statistics, metrics, per-case rows,
    exported predictions -- is the class of the same name in ``benchmark.training.kinds.KINDS``).

    ``outputs`` is "pixel" (a map at input resolution: ``models.blocks.PixelDecoder``) or "image" (one
    vector per image: ``ImageDecoder``); ``metrics`` name entries of :data:`METRICS` (a task's primary
    ``metric`` is one of them); ``loss`` says what the loss is; ``labels``: targets are integer class
    labels (0..max(num_outputs, 2) - 1), otherwise real values.
    """

    name: str
    outputs: str
    metrics: tuple[str, ...]
    loss: str
    labels: bool

    def target_shape(self, task: TaskSpec, n: int, h: int, w: int) -> tuple[int, ...]:
        """The shape of ``n`` samples' targets: a label map ``[n, H, W]``, a value map
        ``[n, C, H, W]``, a label ``[n]`` or a value vector ``[n, C]`` (C: ``task.num_outputs``)."""
        if self.outputs == "pixel":
            return (n, h, w) if self.labels else (n, task.num_outputs, h, w)
        return (n,) if self.labels else (n, task.num_outputs)

    def target_problem(self, task: TaskSpec, y) -> str:
        """What is wrong with targets ``y`` of the right shape ("" when nothing is)."""
        if self.labels:
            limit = max(task.num_outputs, 2)
            bad = (y < 0) | (y >= limit)
            return f"has label {int(y[bad].flat[0])} outside 0..{limit - 1}" if bad.any() else ""
        return "" if np.isfinite(y).all() else "targets contain NaN or infinite values"

    def constant_prediction(self, task: TaskSpec, y):
        """The constant prediction learnt from training targets ``y`` alone, one value per output
        channel, in the loss's scale: the class prior as logits (labels), the prevalence as a logit
        (one output of labels: binary), the mean target (values) -- the model-selection reference
        (``benchmark.training.loop.trivial_losses``)."""
        y = np.asarray(y)
        if not self.labels:
            if task.num_outputs == 1:
                return np.array([float(y.mean()) / task.scale])
            axes = tuple(a for a in range(y.ndim) if a != 1)
            return y.mean(axis=axes).astype(np.float64) / task.scale
        counts = np.bincount(y.reshape(-1).astype(np.int64), minlength=max(task.num_outputs, 2)).astype(np.float64)
        prior = (counts + 1.0) / (counts.sum() + len(counts))  # add-one: a class absent from training stays finite
        if task.num_outputs == 1:
            return np.array([np.log(prior[1] / prior[0])])
        return np.log(prior[:task.num_outputs])


OUTPUTS = ("pixel", "image")   # a map at input resolution, or one vector per image (KindInfo.outputs)

# What a task predicts decides its decoder, loss and metrics (paper Sec. 2.1-2.3, Table 1). A plug-in
# adds a kind with ``benchmark.plugins.register_task_kind`` (docs/extending.md).
TASK_KINDS = {k.name: k for k in (
    KindInfo("segmentation", "pixel", ("dice",), "combo", labels=True),
    KindInfo("regression", "pixel", ("mae", "slice_dose_score"), "l1", labels=False),
    KindInfo("multiclass", "image", ("accuracy", "balanced_accuracy", "macro_f1"), "ce", labels=True),
    KindInfo("binary", "image", ("auc",), "bce", labels=True),
)}


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
        if self.kind not in OUTPUTS:
            raise ValueError(f"task {self.name!r}: kind must be 'pixel' or 'image', got {self.kind!r}")
        if self.target not in TASK_KINDS:
            raise ValueError(f"task {self.name!r}: target must be one of {tuple(TASK_KINDS)}, got {self.target!r}")
        info = TASK_KINDS[self.target]
        if self.kind != info.outputs:
            raise ValueError(f"task {self.name!r}: a {self.target} task predicts per {info.outputs}, "
                             f"its kind must be {info.outputs!r}, got {self.kind!r}")
        if self.metric not in info.metrics:
            raise ValueError(f"task {self.name!r}: metric {self.metric!r} is not one of "
                             f"{info.metrics} for a {self.target} task")
        if self.empty_is_perfect and self.target != "segmentation":
            raise ValueError(f"task {self.name!r}: empty_is_perfect is a segmentation task's setting")
        if self.dvh and (self.target != "regression" or any(kind not in ("oar", "target") for _, kind in self.dvh)):
            raise ValueError(f"task {self.name!r}: DVH structures are (name, 'oar' | 'target') of a regression task")

    @property
    def info(self) -> KindInfo:
        """The task's kind (:data:`TASK_KINDS`)."""
        return TASK_KINDS[self.target]

    @property
    def loss(self) -> str:
        return self.info.loss

    @property
    def metrics(self) -> tuple[str, ...]:
        return self.info.metrics

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
