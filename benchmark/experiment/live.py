"""Live training curves: each network's per-epoch losses, loss weights, validation metrics and
selection score as TensorBoard event files in its cell's folder, so that ``tensorboard --logdir
results/runs`` watches a whole grid while it runs. Written once per epoch, never per step."""
from __future__ import annotations

from pathlib import Path

from benchmark.training.loop import EpochEnd


class EpochLog:
    """An ``on_epoch`` hook of ``train_network`` writing to ``folder``."""

    def __init__(self, folder: Path):
        from torch.utils.tensorboard import SummaryWriter  # tensorboard loads only when curves are written

        self.writer = SummaryWriter(log_dir=str(folder))

    def __call__(self, end: EpochEnd) -> None:
        w, e = self.writer, end.epoch
        for k, t in enumerate(end.tasks):
            w.add_scalar(f"train_loss/{t.name}", float(end.train_losses[k]), e)
            w.add_scalar(f"loss_weight/{t.name}", float(end.weights[k]), e)
            w.add_scalar(f"val_loss/{t.name}", end.val[t.name]["loss"], e)
            w.add_scalar(f"val_{t.metric}/{t.name}", end.val[t.name][t.metric], e)
        w.add_scalar("selection_score", end.score, e)
        w.flush()

    def close(self) -> None:
        self.writer.close()
