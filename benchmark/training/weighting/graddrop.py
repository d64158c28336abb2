"""GradDrop: gradient sign dropout (Chen et al., NeurIPS 2020)."""
from __future__ import annotations

import torch
from torchjd.aggregation import GradDrop as _GradDrop

from benchmark.training.weighting.base import GradientWeighting


class GradDropWeighting(GradientWeighting):
    """Per coordinate of the shared parameters, keep the task gradients of one sign, chosen at random
    with the probability of the positive sign's share (torchjd's ``GradDrop``, the ``leak`` fraction of
    each task gradient always kept). The authors drop signs on the shared activations' gradients;
    torchjd, and this suite, on the shared parameters' Jacobian (docs/methods.md)."""

    name = "graddrop"

    def __init__(self, n_tasks: int, leak: float = 0.0):
        super().__init__(n_tasks)
        self.aggregator = _GradDrop(leak=torch.full((n_tasks,), float(leak)) if leak else None)
