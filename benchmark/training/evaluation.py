"""Evaluation on a split (Sec. 2.3): per-task loss and metrics, from per-sample statistics, and the
per-case results they are made of (``cases.csv``, docs/results-schema.md)."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from benchmark.training import metrics as M
from benchmark.training.batches import batches
from benchmark.training.losses import make_loss
from data.base import Split
from data.spec import TaskSpec


class _Accumulator:
    """Collects what a task's metrics need, batch by batch, as small per-sample arrays."""

    def __init__(self, task: TaskSpec):
        self.task = task
        self.parts: dict[str, list[np.ndarray]] = {}
        self.loss_sum = 0.0
        self.count = 0

    def add(self, name: str, value: torch.Tensor) -> None:
        self.parts.setdefault(name, []).append(value.detach().float().cpu().numpy())

    def update(self, out: torch.Tensor, batch: dict[str, torch.Tensor], loss: torch.Tensor) -> None:
        t = self.task
        y = batch[t.name]
        self.loss_sum += float(loss) * len(y)
        self.count += len(y)
        if t.target == "segmentation":
            pred = out.argmax(1)
            for name, a in (("inter", None), ("pred", pred), ("true", y)):
                cols = []
                for c in range(1, t.num_outputs):
                    m = (pred == c) & (y == c) if a is None else a == c
                    cols.append(m.flatten(1).sum(1))
                self.add(name, torch.stack(cols, 1))
        elif t.target == "regression":
            err = (out * t.scale - y).abs().flatten(1)
            mask = torch.ones_like(err) if t.mask is None else batch[t.mask].flatten(1).to(err.dtype)
            self.add("abs", err.sum(1))
            self.add("pixels", torch.full((len(y),), err.shape[1], dtype=torch.float32))
            self.add("masked_abs", (err * mask).sum(1))
            self.add("mask_pixels", mask.sum(1))
        else:
            self.add("logits", out.reshape(len(y), -1))
            self.add("labels", y)

    def cases(self, case_id: np.ndarray) -> list[dict]:
        """Per-case rows ``{case, metric, part, value, weight}`` from which every set-level metric
        of :meth:`result` is recomputed exactly on any resample of cases
        (``benchmark.report.cases.case_metric``): per case and foreground class the Dice (``part``
        the class; a class absent from both prediction and truth has no row, or 100 with
        ``TaskSpec.empty_is_perfect``), per case the MAE over
        its pixels (``weight`` its pixel count: the paper's MAE pools pixels) and the masked dose
        error (weight 1: the dose score averages cases), per image its label and logits."""
        t, p = self.task, {k: np.concatenate(v) for k, v in self.parts.items()}
        ids = np.unique(case_id)
        group = lambda a: M._group_sum(a, case_id)  # rows in the order of np.unique(case_id)
        rows = []
        if t.target == "segmentation":
            inter, denom = group(p["inter"]), group(p["pred"]) + group(p["true"])
            names = t.class_names[1:] if len(t.class_names) == t.num_outputs else [str(c) for c in range(1, t.num_outputs)]
            for i, case in enumerate(ids):
                rows += [{"case": case, "metric": "dice", "part": names[c],
                          "value": 100 * 2 * inter[i, c] / denom[i, c] if denom[i, c] > 0 else 100.0, "weight": 1.0}
                         for c in range(len(names)) if denom[i, c] > 0 or t.empty_is_perfect]
        elif t.target == "regression":
            err, pixels = group(p["abs"]), group(p["pixels"])
            masked, mask = group(p["masked_abs"]), group(p["mask_pixels"])
            for i, case in enumerate(ids):
                rows.append({"case": case, "metric": "mae", "part": "", "value": err[i] / pixels[i],
                             "weight": float(pixels[i])})
                if mask[i] > 0:
                    rows.append({"case": case, "metric": "dose_score", "part": "", "value": masked[i] / mask[i],
                                 "weight": 1.0})
        else:
            labels, logits = p["labels"].astype(np.int64), p["logits"]
            for i, case in enumerate(case_id):
                rows.append({"case": case, "metric": "label", "part": "", "value": float(labels[i]), "weight": 1.0})
                rows += [{"case": case, "metric": "logit", "part": str(k), "value": float(v), "weight": 1.0}
                         for k, v in enumerate(logits[i])]
        return rows

    def result(self, case_id: np.ndarray) -> dict[str, float]:
        p = {k: np.concatenate(v) for k, v in self.parts.items()}
        res = {"loss": self.loss_sum / max(self.count, 1)}
        if self.task.target == "segmentation":
            res["dice"] = M.dice(p["inter"], p["pred"], p["true"], case_id, self.task.empty_is_perfect)
        elif self.task.target == "regression":
            res["mae"] = M.mae(p["abs"], p["pixels"])
            res["dose_score"] = M.dose_score(p["masked_abs"], p["mask_pixels"], case_id)
        else:
            labels = p["labels"].astype(np.int64)
            for name in self.task.metrics:
                res[name] = getattr(M, name)(labels, p["logits"])
        return res


def evaluate(net: nn.Module, tasks: tuple[TaskSpec, ...], split: Split, batch_size: int,
             device: torch.device | str = "cpu", losses: dict | None = None,
             channels_last: bool = False, cases: list | None = None) -> dict[str, dict[str, float]]:
    """``{task: {"loss": ..., metric: ...}}`` of ``net`` on ``split`` (eval mode, no gradients,
    float32 even when training used bf16 autocast). With a ``cases`` list, each task's per-case
    rows (:meth:`_Accumulator.cases`, with ``task``) are appended to it."""
    losses = losses or {t.name: make_loss(t) for t in tasks}
    was_training = net.training
    net.eval()
    acc = {t.name: _Accumulator(t) for t in tasks}
    with torch.inference_mode():
        for batch in batches(split, batch_size, device=device, channels_last=channels_last):
            out = net(batch["image"])
            for t in tasks:
                acc[t.name].update(out[t.name], batch, losses[t.name](out[t.name], batch[t.name]))
    net.train(was_training)
    if cases is not None:
        for name, a in acc.items():
            cases += [{"task": name, **row} for row in a.cases(split.case_id)]
    return {name: a.result(split.case_id) for name, a in acc.items()}
