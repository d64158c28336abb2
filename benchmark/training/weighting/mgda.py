"""MGDA: multiple-gradient descent (Sener & Koltun 2018): the min-norm point of the task gradients'
convex hull, no normalisation (LibMTL's mgda_gn='none').

The min-norm point is found exactly, not by Frank-Wolfe: torchjd's and LibMTL's solvers stop at a
tolerance (torchjd 0.18: 1e-3 on the step size, 100 iterations), which on the tests' 3-task Jacobian (a
1:100 loss scale, two nearly opposite rows) stopped at weights (0.526, 0.417, 0.057) where the exact
point is (0.500233, 0.498819, 0.000948). With K tasks the optimum lies on one of the 2^K - 1 faces of
the simplex; on each, the equality-constrained problem is a (K+1)-square linear system, and the
best face whose solution is feasible is the answer (exact to rounding; K <= 12 here, 4,095 faces)."""
from __future__ import annotations

import itertools

import torch
from torchjd.aggregation import GramianWeightedAggregator, Weighting

from benchmark.training.weighting.base import GradientWeighting

MAX_EXACT_TASKS = 12


def min_norm_weights(gramian: torch.Tensor) -> torch.Tensor:
    """argmin over the simplex of wᵀ G w, G = J Jᵀ (Sener & Koltun's eq. 3), in G's dtype.

    For each support S: minimise wᵀ G_S w subject to Σ w = 1 (the KKT system [G_S 1; 1ᵀ 0] [w; μ] =
    [0; 1], least squares where G_S is singular); keep the solutions with w >= 0 and return the one of
    lowest norm."""
    k = gramian.shape[0]
    if k > MAX_EXACT_TASKS:
        raise ValueError(f"exact MGDA enumerates 2^K faces; {k} tasks > {MAX_EXACT_TASKS}")
    g = gramian.double()
    scale = float(g.diagonal().abs().max()) or 1.0
    g = g / scale                                  # the weights do not depend on G's scale
    best, best_value = None, float("inf")
    for size in range(1, k + 1):
        for support in itertools.combinations(range(k), size):
            idx = list(support)
            system = torch.zeros(size + 1, size + 1, dtype=g.dtype)
            system[:size, :size] = g[idx][:, idx]
            system[:size, size] = 1.0
            system[size, :size] = 1.0
            rhs = torch.zeros(size + 1, dtype=g.dtype)
            rhs[size] = 1.0
            sol = torch.linalg.lstsq(system, rhs.unsqueeze(1), driver="gelsd").solution.squeeze(1)[:size]
            if (sol < -1e-12).any():
                continue
            w = torch.zeros(k, dtype=g.dtype)
            w[idx] = sol.clamp(min=0.0)
            w = w / w.sum()
            value = float(w @ g @ w)
            if value < best_value - 1e-15:
                best, best_value = w, value
    return best.to(gramian.dtype)


class MinNormWeighting(Weighting):
    """torchjd ``Weighting`` of a Gramian: :func:`min_norm_weights`."""

    def forward(self, gramian: torch.Tensor, /) -> torch.Tensor:
        return min_norm_weights(gramian)


class MGDAWeighting(GradientWeighting):
    name = "mgda"

    def __init__(self, n_tasks: int):
        super().__init__(n_tasks)
        self.aggregator = GramianWeightedAggregator(MinNormWeighting())
