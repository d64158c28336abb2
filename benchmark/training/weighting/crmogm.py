"""CR-MOGM: correlation-reduced multi-objective gradient manipulation (Zhou, Zhang, Jiang, Zhao, Yang &
Liang, NeurIPS 2022) applied to MGDA: the min-norm weights of each step smoothed by an exponential moving
average, λ_t = α λ_{t−1} + (1 − α) λ̂_t (λ_0 = λ̂_1), which removes the bias of stochastic MGDA. torchjd's
``CRMOGMWeighting`` around this suite's exact MGDA weighting (models the paper's MGDA variant); α = 0.9,
torchjd's default (*chosen*: the paper's Corollary 1 lets α grow towards 1 as the learning rate decays;
the paper profile's learning rate is constant). λ is the state (checkpointed)."""
from __future__ import annotations

from torchjd.aggregation import CRMOGMWeighting, GramianWeightedAggregator

from benchmark.training.weighting.base import GradientWeighting
from benchmark.training.weighting.mgda import MinNormWeighting


class CRMOGM(GradientWeighting):
    name = "crmogm"

    def __init__(self, n_tasks: int, alpha: float = 0.9):
        super().__init__(n_tasks)
        # outside the module tree: torchjd's λ is a buffer that is None until the first step
        self.__dict__["aggregator"] = GramianWeightedAggregator(CRMOGMWeighting(MinNormWeighting(), alpha=alpha))

    @property
    def _smoother(self) -> CRMOGMWeighting:
        return self.aggregator.gramian_weighting

    def get_extra_state(self) -> dict:
        lam = self._smoother._lambda
        return {"lambda": None if lam is None else lam.clone()}

    def set_extra_state(self, state: dict) -> None:
        self._smoother.reset()
        if state["lambda"] is not None:
            self._smoother._lambda = state["lambda"].clone()
