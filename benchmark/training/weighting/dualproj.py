"""DualProj (Quinton & Rey 2024, torchjd): the mean task gradient projected onto the dual cone of the task
gradients -- the closest update to the mean that conflicts with no task."""
from __future__ import annotations

from torchjd.aggregation import DualProj as _Aggregator

from benchmark.training.weighting.base import GradientWeighting


class DualProjWeighting(GradientWeighting):
    name = "dualproj"

    def __init__(self, n_tasks: int):
        super().__init__(n_tasks)
        self.aggregator = _Aggregator()
