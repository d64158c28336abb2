"""UPGrad (Quinton & Rey 2024): each task gradient projected onto the dual cone of all of them,
averaged."""
from __future__ import annotations

from torchjd.aggregation import UPGrad as _Aggregator

from benchmark.training.weighting.base import GradientWeighting


class UPGradWeighting(GradientWeighting):
    name = "upgrad"

    def __init__(self, n_tasks: int):
        super().__init__(n_tasks)
        self.aggregator = _Aggregator()
