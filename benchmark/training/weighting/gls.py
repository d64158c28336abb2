"""Geometric loss strategy (Chennupati et al., CVPR workshops 2019)."""
from __future__ import annotations

import torch

from benchmark.training.weighting.base import LossWeighting


class GLS(LossWeighting):
    """The geometric mean of the task losses, (Π_k L_k)^{1/K}. Its gradient weighs task k by
    (Π L)^{1/K} / (K L_k), the weight logged (LibMTL 1.1.5 logs another, wrong, expression)."""

    name = "gls"

    def combine(self, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loss = torch.pow(losses.prod(), 1.0 / self.n_tasks)
        return loss, loss.detach() / (self.n_tasks * losses.detach())
