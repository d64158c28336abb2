"""MoDo: multi-objective gradient with double sampling (Chen, Fernando, Ying & Chen, NeurIPS 2023 / JMLR
2024): λ ← Π_simplex(λ − γ (J₁ J₂ᵀ λ + ρ λ)) from two independent batches' Jacobians, the update λᵀ J₃ from
a third's (as LibMTL's MoDo takes batches 0, 1 and 2). torchjd's ``MoDoWeighting``; λ is the state
(checkpointed). Defaults γ = 1e-3, ρ = 0.1: LibMTL's (``MoDo_gamma``, ``MoDo_rho``); torchjd's γ is 0.1."""
from __future__ import annotations

import torch
from torchjd.aggregation import MoDoWeighting as _Weighting

from benchmark.training.weighting.base import SampledGradientWeighting


class MoDo(SampledGradientWeighting):
    name = "modo"
    pair, update = (0, 1), 2

    def __init__(self, n_tasks: int, gamma: float = 1e-3, rho: float = 0.1):
        super().__init__(n_tasks)
        # outside the module tree: torchjd's λ is a buffer that is None until the first step, which
        # load_state_dict cannot fill; get/set_extra_state carry it
        self.__dict__["weighting"] = _Weighting(gamma=gamma, rho=rho)

    def weigh(self, a: torch.Tensor) -> torch.Tensor:
        return self.weighting(a)

    def get_extra_state(self) -> dict:
        lam = self.weighting._lambda
        return {"lambda": None if lam is None else lam.clone()}

    def set_extra_state(self, state: dict) -> None:
        self.weighting.reset()
        lam = state["lambda"]
        if lam is not None:      # the key torchjd checks before it would start from uniform again
            self.weighting._lambda = lam.clone()
            self.weighting._state_key = (lam.shape[0], lam.dtype, lam.device)
