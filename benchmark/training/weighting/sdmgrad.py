"""SDMGrad: stochastic direction-oriented multi-objective gradient (Xiao, Ban & Ji, NeurIPS 2023): w on
the simplex from 20 projected-SGD steps on ½ wᵀAw + λ wᵀA w̃, A = J₁ J₂ᵀ of two independent batches
(scaled by the mean of √diag A), the update ((w + λ w̃)/(1 + λ))ᵀ J₀ from a third (as LibMTL's SDMGrad takes
batch 0 for the update, 1 and 2 for A); w̃ uniform (the direction of the mean gradient). torchjd's
``SDMGradWeighting``; w is the state (checkpointed). Defaults λ = 0.3, 20 inner steps: LibMTL's
(``SDMGrad_lamda``, ``SDMGrad_niter``); the inner SGD's lr 5, momentum 0.5 are LibMTL's fixed values
(torchjd's default lr is 10)."""
from __future__ import annotations

import torch
from torchjd.aggregation import SDMGradWeighting as _Weighting

from benchmark.training.weighting.base import SampledGradientWeighting


class SDMGrad(SampledGradientWeighting):
    name = "sdmgrad"
    pair, update = (1, 2), 0

    def __init__(self, n_tasks: int, lamda: float = 0.3, niter: int = 20):
        super().__init__(n_tasks)
        # outside the module tree: torchjd's w is a buffer that is None until the first step
        self.__dict__["weighting"] = _Weighting(lr=5.0, momentum=0.5, n_iter=niter, lambda_=lamda)

    def weigh(self, a: torch.Tensor) -> torch.Tensor:
        return self.weighting(a)

    def get_extra_state(self) -> dict:
        w = self.weighting._w
        return {"w": None if w is None else w.clone()}

    def set_extra_state(self, state: dict) -> None:
        self.weighting.reset()
        w = state["w"]
        if w is not None:
            self.weighting._w = w.clone()
            self.weighting._state_key = (w.shape[0], w.dtype, w.device)
