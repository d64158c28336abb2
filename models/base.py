"""What every method shares: the task pair it serves and how it is split into trainable networks."""
from __future__ import annotations

import torch
from torch import nn

from data.spec import TaskSpec


class MultiTaskModel(nn.Module):
    """A model mapping an image batch to ``{task name: prediction}`` for every task it serves.

    A joint model names its shared parameters, those every task's loss depends on: gradient-based
    loss weightings aggregate the task gradients there (benchmark/training/weighting/base.py).
    """

    tasks: tuple[TaskSpec, ...]

    def networks(self) -> list[tuple[tuple[TaskSpec, ...], nn.Module]]:
        """The independently trained networks: one joint network for MTL methods (default)."""
        return [(self.tasks, self)]

    def start_epoch(self, epoch: int, epochs: int) -> None:
        """Called by the training loop before each epoch of ``epochs`` (LTB's branching schedule); by
        default nothing. Anything it sets that changes the forward must be in the state_dict."""

    def shared_parameters(self) -> list[nn.Parameter]:
        """The parameters every task's loss depends on (default: the encoder's)."""
        return list(self.encoder.parameters())

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters of a model."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
