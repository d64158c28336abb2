"""Uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018)."""
from __future__ import annotations

import torch
from torch import nn

from benchmark.training.weighting.base import LossWeighting


class UW(LossWeighting):
    """Σ_k L_k / (2σ_k²) + log σ_k, the log-variances s_k = log σ_k² learnt with the network:
    Σ_k e^{−s_k} L_k / 2 + s_k / 2 (s_k initialised to ``init``, −0.5 as in LibMTL)."""

    name = "uw"

    def __init__(self, n_tasks: int, init: float = -0.5):
        super().__init__(n_tasks)
        self.log_var = nn.Parameter(torch.full((n_tasks,), float(init)))

    def combine(self, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weights = torch.exp(-self.log_var) / 2
        return (weights * losses + self.log_var / 2).sum(), weights
