"""DB-MTL: dual-balancing MTL (Lin, Ye, Xu, Shi & Zhang, 2023): losses balanced by their logarithm, gradients
by their norm. Each task's gradient of log(L_k + 1e-8) on the shared parameters is averaged over steps,
ĝ_k ← g_k + β_t (ĝ_k − g_k) with β_t = β / t^σ, and the update is Σ_k α_k ĝ_k, α_k = max_j ‖ĝ_j‖ / ‖ĝ_k‖
(every task at the largest task's gradient norm); task-specific parameters get the gradient of
Σ_k log(L_k + 1e-8). Ours (LibMTL's main branch has it, torchjd does not), as LibMTL's; β = 0.9, σ = 0
(its ``--DB_beta``, ``--DB_beta_sigma``). State (checkpointed): the step and the K x P float64 average."""
from __future__ import annotations

import torch
from torch import nn

from benchmark.training.weighting.base import GradientWeighting, add_to_grads, sum_rows


class DBMTL(GradientWeighting):
    name = "dbmtl"

    def __init__(self, n_tasks: int, beta: float = 0.9, beta_sigma: float = 0.0):
        super().__init__(n_tasks)
        if not 0 <= beta < 1 or beta_sigma < 0:
            raise ValueError(f"dbmtl: beta must be in [0, 1) and beta_sigma >= 0, got {beta}, {beta_sigma}")
        self.beta, self.beta_sigma = beta, beta_sigma
        self.steps, self.average = 0, None

    def step(self, losses: torch.Tensor, shared: list[nn.Parameter],
             others: list[nn.Parameter]) -> torch.Tensor:
        with_jac, grads = self.shared_jacobian(torch.log(losses + 1e-8), shared, others)
        self.steps += 1
        # LibMTL's buffer starts at 0: the first average is (1 - β) g
        previous = torch.zeros_like(grads) if self.average is None else self.average
        self.average = grads + self.beta / self.steps ** self.beta_sigma * (previous - grads)
        norms = self.average.norm(dim=1)
        alpha = norms.max() / (norms + 1e-8)
        add_to_grads(with_jac, alpha @ self.average)
        sum_rows(others)
        return alpha.detach().float().cpu()

    def get_extra_state(self) -> dict:
        return {"steps": self.steps, "average": None if self.average is None else self.average.clone()}

    def set_extra_state(self, state: dict) -> None:
        self.steps = state["steps"]
        self.average = None if state["average"] is None else state["average"].clone()
