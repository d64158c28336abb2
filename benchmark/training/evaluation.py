"""Evaluation on a split (Sec. 2.3): per-task loss and metrics, from per-sample statistics."""
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

    def result(self, case_id: np.ndarray) -> dict[str, float]:
        p = {k: np.concatenate(v) for k, v in self.parts.items()}
        res = {"loss": self.loss_sum / max(self.count, 1)}
        if self.task.target == "segmentation":
            res["dice"] = M.dice(p["inter"], p["pred"], p["true"], case_id)
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
             channels_last: bool = False) -> dict[str, dict[str, float]]:
    """``{task: {"loss": ..., metric: ...}}`` of ``net`` on ``split`` (eval mode, no gradients,
    float32 even when training used bf16 autocast)."""
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
    return {name: a.result(split.case_id) for name, a in acc.items()}
