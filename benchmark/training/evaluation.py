"""Evaluation on a split (Sec. 2.3): per-task loss and metrics, from per-sample statistics, and the
per-case results they are made of (``cases.csv``, docs/results-schema.md)."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from benchmark.training.batches import batches
from benchmark.training.kinds import kind_of
from benchmark.training.losses import make_loss
from data.base import Split
from data.spec import TaskSpec


class _Accumulator:
    """Collects what a task's metrics need, batch by batch, as small per-sample arrays (its kind's
    ``statistics``: ``benchmark.training.kinds``)."""

    def __init__(self, task: TaskSpec):
        self.task, self.kind = task, kind_of(task)
        self.parts: dict[str, list[np.ndarray]] = {}
        self.loss_sum = 0.0
        self.count = 0

    def update(self, out: torch.Tensor, batch: dict[str, torch.Tensor], loss: torch.Tensor) -> None:
        n = len(batch[self.task.name])
        self.loss_sum += float(loss) * n
        self.count += n
        for name, value in self.kind.statistics(self.task, out, batch).items():
            self.parts.setdefault(name, []).append(value.detach().float().cpu().numpy())

    def _parts(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate(v) for k, v in self.parts.items()}

    def cases(self, case_id: np.ndarray) -> list[dict]:
        """Per-case rows ``{case, metric, part, value, weight}`` from which every set-level metric
        of :meth:`result` is recomputed exactly on any resample of cases
        (``benchmark.report.cases.case_metric``; each kind's ``cases`` says what its rows are)."""
        return self.kind.cases(self.task, self._parts(), case_id)

    def result(self, case_id: np.ndarray) -> dict[str, float]:
        return {"loss": self.loss_sum / max(self.count, 1), **self.kind.result(self.task, self._parts(), case_id)}


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
