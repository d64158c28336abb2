"""FairGrad (Ban & Ji, ICML 2024): the update d = Σ w_k g_k whose improvement of each task, g_kᵀd, equals
w_k^(-1/α) -- α-fair utility maximisation (α = 1: proportional fairness, as Nash-MTL; α -> ∞: max-min)."""
from __future__ import annotations

from torchjd.aggregation import FairGrad as _Aggregator

from benchmark.training.weighting.base import GradientWeighting


class FairGradWeighting(GradientWeighting):
    name = "fairgrad"

    def __init__(self, n_tasks: int, alpha: float = 1.0):
        super().__init__(n_tasks)
        if alpha <= 0:
            raise ValueError(f"fairgrad: alpha must be positive, got {alpha}")
        self.aggregator = _Aggregator(alpha=alpha)
