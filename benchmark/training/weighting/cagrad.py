"""CAGrad: conflict-averse gradient descent (Liu, Liu, Jin, Stone & Liu, NeurIPS 2021)."""
from __future__ import annotations

import torch
from torch import nn
from torchjd.aggregation import CAGrad as _CAGrad

from benchmark.training.weighting.base import GradientWeighting


class CAGradWeighting(GradientWeighting):
    """The update maximising the worst task's improvement within a ball of radius c‖g₀‖ around the
    mean gradient g₀ (torchjd's ``CAGrad(c)``), divided by 1 + c² when ``rescale`` is 1 (the authors'
    default, as LibMTL), 1 + c when 2, left as is when 0."""

    name = "cagrad"

    def __init__(self, n_tasks: int, c: float = 0.5, rescale: int = 1):
        super().__init__(n_tasks)
        if rescale not in (0, 1, 2):
            raise ValueError(f"cagrad: rescale must be 0, 1 or 2, got {rescale}")
        self.aggregator = _CAGrad(c=c)
        self.factor = {0: 1.0, 1: 1 + c ** 2, 2: 1 + c}[rescale]

    def step(self, losses: torch.Tensor, shared: list[nn.Parameter], others: list[nn.Parameter]) -> torch.Tensor:
        weights = super().step(losses, shared, others)
        for p in shared:
            if p.grad is not None:
                p.grad.div_(self.factor)
        return weights / self.factor
