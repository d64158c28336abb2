"""Task losses of Table 1 (combo loss for segmentation, L1 for dose, cross-entropy for classes: each
kind's in ``benchmark.training.kinds``) and the one way to get a task's, :func:`make_loss`."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from data.spec import TaskSpec

DICE_WEIGHT, CE_WEIGHT = 0.3, 0.7  # Table 1: combo loss weights (Ma et al. 2021)


def combo_loss() -> nn.Module:
    """0.3·Dice + 0.7·CE with softmax over classes, Dice over foreground classes pooled over the batch.

    MONAI's DiceCELoss is the well-kept implementation; tests compare it with a hand computation.
    """
    from monai.losses import DiceCELoss  # heavy import: only when a segmentation task trains

    dice_ce = DiceCELoss(include_background=False, to_onehot_y=True, softmax=True, batch=True,
                         lambda_dice=DICE_WEIGHT, lambda_ce=CE_WEIGHT)
    return _Unsqueezed(dice_ce)


class _Unsqueezed(nn.Module):
    """MONAI wants [B, 1, H, W] class maps; our targets are [B, H, W]."""

    def __init__(self, loss: nn.Module):
        super().__init__()
        self.loss = loss

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.loss(logits, target.unsqueeze(1))


def make_loss(task: TaskSpec) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss for a task: its kind's (``benchmark.training.kinds``; regression targets are divided
    by ``task.scale`` first)."""
    from benchmark.training.kinds import kind_of  # the kinds build on this module's combo loss
    return kind_of(task).make_loss(task)
