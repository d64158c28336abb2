"""MGDA: multiple-gradient descent (Sener & Koltun 2018): the min-norm point of the task gradients'
convex hull (Frank-Wolfe), no normalisation (LibMTL's mgda_gn='none')."""
from __future__ import annotations

from torchjd.aggregation import MGDA as _Aggregator

from benchmark.training.weighting.base import GradientWeighting


class MGDAWeighting(GradientWeighting):
    name = "mgda"

    def __init__(self, n_tasks: int):
        super().__init__(n_tasks)
        self.aggregator = _Aggregator()
