"""GradVac: gradient vaccine (Wang, Tsvetkov, Firat & Cao, ICLR 2021): each task's gradient is moved
towards every other task's until their cosine reaches an EMA target of past cosines (a target of 0 is
PCGrad's projection); the update is the sum of the moved rows. torchjd's aggregator, whose EMA targets
are the weighting's state (checkpointed: a resumed cell continues from the same targets)."""
from __future__ import annotations

from torchjd.aggregation import GradVac as _Aggregator

from benchmark.training.weighting.base import GradientWeighting


class GradVacWeighting(GradientWeighting):
    name = "gradvac"

    def __init__(self, n_tasks: int, beta: float = 0.5):
        super().__init__(n_tasks)
        # Kept outside the module tree: torchjd registers the targets as a buffer that is None until the
        # first step, which load_state_dict cannot fill; get/set_extra_state carry them instead.
        self.__dict__["aggregator"] = _Aggregator(beta=beta)

    def get_extra_state(self) -> dict:
        phi = self.aggregator.gramian_weighting._phi_t
        return {"phi": None if phi is None else phi.clone()}

    def set_extra_state(self, state: dict) -> None:
        weighting = self.aggregator.gramian_weighting
        weighting.reset()
        phi = state["phi"]
        if phi is not None:      # the key torchjd checks before it would start from zero targets again
            weighting._phi_t, weighting._state_key = phi.clone(), (phi.shape[0], phi.dtype)
