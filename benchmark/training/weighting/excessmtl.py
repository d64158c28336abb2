"""ExcessMTL (He, Zhou, Zhao, Zhang & Han, ICML 2024): task weights moved by exponentiated gradient
towards the tasks with the larger excess risk, estimated as gᵀ H⁻¹ g with AdaGrad's diagonal H (the
running sum of squared gradients), relative to the first step's. torchjd's ``ExcessMTLWeighting`` with one
warm-up step: the first step keeps equal weights and sets the baseline, as LibMTL's and the authors' code
do (torchjd's default of no warm-up moves the weights on the first step already). As LibMTL, the weights
(rescaled to sum to K) weigh the loss: the shared parameters get K wᵀJ, every other the same weighted
sum. Default step size 1e-2: LibMTL's ``robust_step_size`` (torchjd's is 1.0). State (checkpointed): the
weights, the baseline and the K x P squared-gradient sum -- K x P float64 in memory and in a checkpoint."""
from __future__ import annotations

import torch
from torch import nn
from torchjd.aggregation import ExcessMTLWeighting as _Weighting

from benchmark.training.weighting.base import GradientWeighting, add_to_grads

_STATE = ("_weights", "_sq_grad_sum", "_initial_w", "_warmup_w_sum")


class ExcessMTL(GradientWeighting):
    name = "excessmtl"

    def __init__(self, n_tasks: int, robust_step_size: float = 1e-2):
        super().__init__(n_tasks)
        # outside the module tree: torchjd's state buffers are None until the first step
        self.__dict__["weighting"] = _Weighting(robust_step_size=robust_step_size, n_warmup_steps=1)

    def step(self, losses: torch.Tensor, shared: list[nn.Parameter],
             others: list[nn.Parameter]) -> torch.Tensor:
        with_jac, matrix = self.shared_jacobian(losses, shared, others)
        weights = self.n_tasks * self.weighting(matrix)
        add_to_grads(with_jac, weights @ matrix)
        for p in others:
            rows = getattr(p, "jac", None)
            if rows is not None:
                piece = torch.tensordot(weights.to(rows.dtype), rows, dims=1)
                p.grad = piece if p.grad is None else p.grad + piece
                del p.jac
        return weights.detach().float().cpu()

    def get_extra_state(self) -> dict:
        w = self.weighting
        return {"n_steps": w._n_steps, **{k: None if getattr(w, k) is None else getattr(w, k).clone() for k in _STATE}}

    def set_extra_state(self, state: dict) -> None:
        w = self.weighting
        w.reset()
        if state["_sq_grad_sum"] is None:
            return
        for k in _STATE:
            setattr(w, k, None if state[k] is None else state[k].clone())
        sq = w._sq_grad_sum
        w._n_steps, w._state_key = state["n_steps"], (sq.shape[0], sq.shape[1], sq.dtype, sq.device)
