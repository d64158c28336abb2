"""PBI: penalty-based boundary intersection (Zhang & Li, MOEA/D, IEEE TEVC 2007), as a loss scalarization:
d₁ + θ d₂, d₁ the losses' length along the preference direction w/|w| and d₂ their distance to it, from the
origin (losses are non-negative). torchjd's ``PBI`` scalarizer with equal preferences; θ = 5, the value of
the MOEA/D paper's experiments (torchjd gives no default; LibMTL has no PBI)."""
from __future__ import annotations

import torch
from torchjd.scalarization import PBI as _Scalarizer

from benchmark.training.weighting.base import LossWeighting, loss_weights


class PBI(LossWeighting):
    name = "pbi"

    def __init__(self, n_tasks: int, theta: float = 5.0):
        super().__init__(n_tasks)
        self.scalarizer = _Scalarizer(theta, weights=torch.ones(n_tasks))

    def combine(self, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.scalarizer.weights = self.scalarizer.weights.to(losses.device, losses.dtype)
        loss = self.scalarizer(losses)
        return loss, loss_weights(loss, losses)
