"""EW: equal weights, the plain sum of the task losses."""
from __future__ import annotations

import torch

from benchmark.training.weighting.base import LossWeighting


class EW(LossWeighting):
    name = "ew"

    def combine(self, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weights = torch.ones_like(losses)
        return (weights * losses).sum(), weights
