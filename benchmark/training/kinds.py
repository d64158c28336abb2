"""Task kinds: what follows from what a task predicts (paper Sec. 2.1-2.3, Table 1) -- its loss, the
per-sample statistics evaluation collects, the metrics and per-case rows made of them, and the
predictions ``benchmark.evaluate --export`` stores.

One :class:`TaskKind` per entry of the torch-free catalog ``data.spec.TASK_KINDS`` (named by
``TaskSpec.target``), in :data:`KINDS`; the training loop, evaluation and the exporter call these and
never test a target's name, so a plug-in's kind (``benchmark.plugins.register_task_kind``,
docs/extending.md) trains, is scored and reaches the report like the suite's own.

Evaluation keeps small per-sample arrays (overlaps, error sums, logits), never whole prediction maps.
Per-case rows are ``{case, metric, part, value, weight}`` (docs/results-schema.md): for every metric
but the classification ones (recomputed from each image's ``label`` and ``logit`` rows) the set value is
the weighted mean of its per-case values per ``part``, then the mean over parts
(``benchmark.report.cases``), which is how the report resamples cases.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.training import metrics as M
from benchmark.training.losses import combo_loss
from data.spec import TASK_KINDS, KindInfo, TaskSpec

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class TaskKind:
    """The behaviour of one task kind; ``info`` is its catalog entry (``data.spec.KindInfo``).

    Required: :meth:`make_loss`, :meth:`statistics`, :meth:`result`, :meth:`cases`. :meth:`export`
    defaults to the raw output (in the target's scale for value kinds).
    """

    info: KindInfo

    def make_loss(self, task: TaskSpec) -> Loss:
        """``loss(output, target)`` for a batch."""
        raise NotImplementedError

    def statistics(self, task: TaskSpec, out: torch.Tensor, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Per-sample arrays (first axis: the batch's samples) that :meth:`result` and :meth:`cases`
        need, from the network's output and the batch (targets under ``task.name``, the extras)."""
        raise NotImplementedError

    def result(self, task: TaskSpec, parts: dict[str, np.ndarray], case_id: np.ndarray) -> dict[str, float]:
        """``{metric: value}`` for every name of ``info.metrics`` from the split's concatenated statistics."""
        raise NotImplementedError

    def cases(self, task: TaskSpec, parts: dict[str, np.ndarray], case_id: np.ndarray) -> list[dict]:
        """Per-case rows from which :meth:`result` is recomputed on any resample of cases."""
        raise NotImplementedError

    def export(self, task: TaskSpec, out: torch.Tensor) -> torch.Tensor:
        """What ``benchmark.evaluate --export`` stores of a batch's output (float32)."""
        return out * task.scale if not self.info.labels else out


class Segmentation(TaskKind):
    """Pixel classes: combo loss (0.3 Dice + 0.7 CE, MONAI), Dice per case and foreground class."""

    info = TASK_KINDS["segmentation"]

    def make_loss(self, task):
        return combo_loss()

    def statistics(self, task, out, batch):
        y = batch[task.name]
        pred = out.argmax(1)
        stats = {}
        for name, a in (("inter", None), ("pred", pred), ("true", y)):
            cols = []
            for c in range(1, task.num_outputs):
                m = (pred == c) & (y == c) if a is None else a == c
                cols.append(m.flatten(1).sum(1))
            stats[name] = torch.stack(cols, 1)
        return stats

    def result(self, task, parts, case_id):
        return {"dice": M.dice(parts["inter"], parts["pred"], parts["true"], case_id, task.empty_is_perfect)}

    def cases(self, task, parts, case_id):
        """Per case and foreground class the Dice (``part`` the class; a class absent from both
        prediction and truth has no row, or 100 with ``TaskSpec.empty_is_perfect``)."""
        ids = np.unique(case_id)
        group = lambda a: M._group_sum(a, case_id)  # rows in the order of np.unique(case_id)
        inter, denom = group(parts["inter"]), group(parts["pred"]) + group(parts["true"])
        names = task.class_names[1:] if len(task.class_names) == task.num_outputs else \
            [str(c) for c in range(1, task.num_outputs)]
        rows = []
        for i, case in enumerate(ids):
            rows += [{"case": case, "metric": "dice", "part": names[c],
                      "value": 100 * 2 * inter[i, c] / denom[i, c] if denom[i, c] > 0 else 100.0, "weight": 1.0}
                     for c in range(len(names)) if denom[i, c] > 0 or task.empty_is_perfect]
        return rows

    def export(self, task, out):
        return out.argmax(1)


class PixelRegression(TaskKind):
    """Dose maps: L1 on targets divided by ``task.scale``; MAE over every pixel (Gy) and the masked
    per-case dose score over slices, ``slice_dose_score`` (OpenKBP's ``dose_score`` is on whole patients:
    ``training.volumes``)."""

    info = TASK_KINDS["regression"]

    def make_loss(self, task):
        return lambda pred, target: F.l1_loss(pred, target / task.scale)

    def statistics(self, task, out, batch):
        y = batch[task.name]
        err = (out * task.scale - y).abs().flatten(1)
        mask = torch.ones_like(err) if task.mask is None else batch[task.mask].flatten(1).to(err.dtype)
        return {"abs": err.sum(1), "pixels": torch.full((len(y),), err.shape[1], dtype=torch.float32),
                "masked_abs": (err * mask).sum(1), "mask_pixels": mask.sum(1)}

    def result(self, task, parts, case_id):
        return {"mae": M.mae(parts["abs"], parts["pixels"]),
                "slice_dose_score": M.slice_dose_score(parts["masked_abs"], parts["mask_pixels"], case_id)}

    def cases(self, task, parts, case_id):
        """Per case the MAE over its pixels (``weight`` its pixel count: the paper's MAE pools pixels)
        and the masked dose error (weight 1: the dose score averages cases)."""
        ids = np.unique(case_id)
        group = lambda a: M._group_sum(a, case_id)
        err, pixels = group(parts["abs"]), group(parts["pixels"])
        masked, mask = group(parts["masked_abs"]), group(parts["mask_pixels"])
        rows = []
        for i, case in enumerate(ids):
            rows.append({"case": case, "metric": "mae", "part": "", "value": err[i] / pixels[i],
                         "weight": float(pixels[i])})
            if mask[i] > 0:
                rows.append({"case": case, "metric": "slice_dose_score", "part": "", "value": masked[i] / mask[i],
                             "weight": 1.0})
        return rows


class _Classification(TaskKind):
    """Image labels: each image's label and logits are kept; the metrics are sklearn's on them."""

    def statistics(self, task, out, batch):
        y = batch[task.name]
        return {"logits": out.reshape(len(y), -1), "labels": y}

    def result(self, task, parts, case_id):
        labels = parts["labels"].astype(np.int64)
        return {name: getattr(M, name)(labels, parts["logits"]) for name in self.info.metrics}

    def cases(self, task, parts, case_id):
        """Per image its label and logits."""
        labels, logits = parts["labels"].astype(np.int64), parts["logits"]
        rows = []
        for i, case in enumerate(case_id):
            rows.append({"case": case, "metric": "label", "part": "", "value": float(labels[i]), "weight": 1.0})
            rows += [{"case": case, "metric": "logit", "part": str(k), "value": float(v), "weight": 1.0}
                     for k, v in enumerate(logits[i])]
        return rows


class MultiClass(_Classification):
    """One of C classes: cross-entropy; accuracy, balanced accuracy, macro F1; softmax exported."""

    info = TASK_KINDS["multiclass"]

    def make_loss(self, task):
        return F.cross_entropy

    def export(self, task, out):
        return out.softmax(1)


class Binary(_Classification):
    """A yes/no label from one logit: binary cross-entropy; ROC AUC; the probability exported."""

    info = TASK_KINDS["binary"]

    def make_loss(self, task):
        return lambda logit, target: F.binary_cross_entropy_with_logits(logit.view(-1), target.float().view(-1))

    def export(self, task, out):
        return torch.sigmoid(out)


KINDS: dict[str, TaskKind] = {k.info.name: k for k in (Segmentation(), PixelRegression(), MultiClass(), Binary())}


def kind_of(task: TaskSpec) -> TaskKind:
    """The behaviour of ``task``'s kind."""
    return KINDS[task.target]
