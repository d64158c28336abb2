"""IMTL-G (Liu et al. 2021): weights making the combined gradient's projections on every task's
unit gradient equal (the gradient part of IMTL)."""
from __future__ import annotations

from torchjd.aggregation import IMTLG as _Aggregator

from benchmark.training.weighting.base import GradientWeighting


class IMTLGWeighting(GradientWeighting):
    name = "imtlg"

    def __init__(self, n_tasks: int):
        super().__init__(n_tasks)
        self.aggregator = _Aggregator()
