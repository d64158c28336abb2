"""ConFIG: conflict-free inverse gradients (Liu, Chu & Thuerey, ICLR 2025): the direction whose cosine with
every unit task gradient is equal, scaled by the sum of the task gradients' projections on it."""
from __future__ import annotations

from torchjd.aggregation import ConFIG as _Aggregator

from benchmark.training.weighting.base import GradientWeighting


class ConFIGWeighting(GradientWeighting):
    name = "config"

    def __init__(self, n_tasks: int):
        super().__init__(n_tasks)
        self.aggregator = _Aggregator()
