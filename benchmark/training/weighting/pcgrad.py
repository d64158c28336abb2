"""PCGrad (Yu et al. 2020): each task gradient projected off the others it conflicts with, in
random order, then summed."""
from __future__ import annotations

from torchjd.aggregation import PCGrad as _Aggregator

from benchmark.training.weighting.base import GradientWeighting


class PCGradWeighting(GradientWeighting):
    name = "pcgrad"

    def __init__(self, n_tasks: int):
        super().__init__(n_tasks)
        self.aggregator = _Aggregator()
