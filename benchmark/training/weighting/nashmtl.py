"""Nash-MTL: multi-task learning as a bargaining game (Navon et al., ICML 2022)."""
from __future__ import annotations

import warnings

import numpy as np
from torchjd.aggregation import NashMTL as _NashMTL

from benchmark.training.weighting.base import GradientWeighting


class NashMTLWeighting(GradientWeighting):
    """Weights solving the Nash bargaining step (torchjd's ``NashMTL``, cvxpy/ECOS), re-solved every
    ``update_weights_every`` steps with ``optim_niter`` iterations, the update's norm clipped to
    ``max_norm`` (the authors' defaults 1, 20, 1.0). Its state (step counter, last weights) is kept
    in checkpoints; the solver's warm start is rebuilt on resume."""

    name = "nashmtl"

    def __init__(self, n_tasks: int, update_weights_every: int = 1, optim_niter: int = 20, max_norm: float = 1.0):
        super().__init__(n_tasks)
        self.aggregator = _NashMTL(n_tasks=n_tasks, max_norm=max_norm, update_weights_every=update_weights_every,
                                   optim_niter=optim_niter)

    def step(self, losses, shared, others):
        with warnings.catch_warnings():  # cvxpy notes on every solve that the problem is not DPP: harmless
            warnings.filterwarnings("ignore", message=".*not DPP.*")
            return super().step(losses, shared, others)

    def get_extra_state(self) -> dict:
        w = self.aggregator.weighting
        return {"step": float(w.step), "prvs_alpha": w.prvs_alpha.tolist(),
                "normalization_factor": w.normalization_factor.tolist()}

    def set_extra_state(self, state: dict) -> None:
        w = self.aggregator.weighting
        w.reset()
        if state["step"] > 0:
            w._init_optim_problem()  # the cvxpy problem is built at step 0; a resumed run is past it
        w.step = state["step"]
        w.prvs_alpha = np.asarray(state["prvs_alpha"], dtype=np.float32)
        w.normalization_factor = np.asarray(state["normalization_factor"])
