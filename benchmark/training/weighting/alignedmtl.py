"""Aligned-MTL: independent component alignment (Senushkin et al., CVPR 2023)."""
from __future__ import annotations

from torchjd.aggregation import AlignedMTL as _AlignedMTL

from benchmark.training.weighting.base import GradientWeighting


class AlignedMTLWeighting(GradientWeighting):
    """The task gradients made orthogonal and of equal norm (the Gram matrix's eigendecomposition),
    scaled by the smallest eigenvalue (``scale_mode`` "min", Algorithm 1 of the paper; "rmse" is the
    authors' code's mean eigenvalue), then averaged (torchjd's ``AlignedMTL``)."""

    name = "alignedmtl"

    def __init__(self, n_tasks: int, scale_mode: str = "min"):
        super().__init__(n_tasks)
        self.aggregator = _AlignedMTL(scale_mode=scale_mode)
