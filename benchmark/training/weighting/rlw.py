"""Random loss weighting (Lin et al., TMLR 2022)."""
from __future__ import annotations

import torch

from benchmark.training.weighting.base import LossWeighting


class RLW(LossWeighting):
    """Weights softmax(z), z ~ N(0, I) drawn anew every step (torch's generator: reproducible from
    the cell's seed and kept in checkpoints)."""

    name = "rlw"

    def combine(self, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weights = torch.softmax(torch.randn(self.n_tasks), dim=-1).to(losses.device)
        return (weights * losses).sum(), weights
