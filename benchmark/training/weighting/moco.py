"""MoCo: momentum-corrected multi-objective gradient (Fernando, Shen, Liu, Chaudhury, Murugesan & Chen,
ICLR 2023): each task's gradient, rescaled to its loss (g_k / ‖g_k‖ · L_k), is tracked by y_k ← y_k −
β_t (y_k − g_k); λ ← softmax(λ − γ_t (Y Yᵀ + ρ I) λ); the update Yᵀλ. β_t = β / t^{σ_β}, γ_t = γ / t^{σ_γ}.
Ours (LibMTL's main branch has it, from the authors' code; torchjd does not), as LibMTL's: β = 0.5,
σ_β = 0.5, γ = 0.1, σ_γ = 0.5, ρ = 0. Task-specific parameters get the plain sum of their task
gradients. State (checkpointed): the step, λ and the K x P float64 tracker Y."""
from __future__ import annotations

import torch
from torch import nn

from benchmark.training.weighting.base import GradientWeighting, add_to_grads, sum_rows


class MoCo(GradientWeighting):
    name = "moco"

    def __init__(self, n_tasks: int, beta: float = 0.5, beta_sigma: float = 0.5, gamma: float = 0.1,
                 gamma_sigma: float = 0.5, rho: float = 0.0):
        super().__init__(n_tasks)
        self.beta, self.beta_sigma, self.gamma, self.gamma_sigma, self.rho = beta, beta_sigma, gamma, gamma_sigma, rho
        self.steps, self.y = 0, None
        self.lam = torch.full((n_tasks,), 1.0 / n_tasks, dtype=torch.float64)

    def step(self, losses: torch.Tensor, shared: list[nn.Parameter],
             others: list[nn.Parameter]) -> torch.Tensor:
        with_jac, grads = self.shared_jacobian(losses, shared, others)
        self.steps += 1
        scaled = grads / (grads.norm(dim=1, keepdim=True) + 1e-8) * losses.detach().to(grads.dtype)[:, None]
        y = torch.zeros_like(scaled) if self.y is None else self.y
        self.y = y - self.beta / self.steps ** self.beta_sigma * (y - scaled)
        eye = torch.eye(self.n_tasks, dtype=grads.dtype, device=grads.device)
        lam = self.lam.to(grads.device)
        self.lam = torch.softmax(lam - self.gamma / self.steps ** self.gamma_sigma
                                 * (self.y @ self.y.T + self.rho * eye) @ lam, dim=-1)
        add_to_grads(with_jac, self.lam @ self.y)
        sum_rows(others)
        return self.lam.detach().float().cpu()

    def get_extra_state(self) -> dict:
        return {"steps": self.steps, "lam": self.lam.clone(), "y": None if self.y is None else self.y.clone()}

    def set_extra_state(self, state: dict) -> None:
        self.steps, self.lam = state["steps"], state["lam"].clone()
        self.y = None if state["y"] is None else state["y"].clone()
