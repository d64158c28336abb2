"""FAMO: fast adaptive multitask optimization (Liu, Liu, Wang & Liu, NeurIPS 2023)."""
from __future__ import annotations

import copy
from typing import Callable

import torch
from torch import nn

from benchmark.training.weighting.base import LossWeighting

EPS = 1e-8


class FAMO(LossWeighting):
    """Task logits ξ (0 at first), z = softmax(ξ). The network minimises Σ_k z_k log(L_k + ε) / c with
    c = Σ_k z_k / (L_k + ε) (effective weights z_k / (c (L_k + ε))); after each optimiser step, ξ takes
    a step of its own Adam (``lr`` 0.025, weight decay ``gamma`` 0.001) along the gradient of softmax(ξ)
    against Δ_k = log L_k(before) − log L_k(after), the batch's losses re-evaluated after the step
    (one more forward pass per step). As the authors' code, with the minimum losses at 0."""

    name = "famo"

    def __init__(self, n_tasks: int, lr: float = 0.025, gamma: float = 0.001):
        super().__init__(n_tasks)
        self.logits = nn.Parameter(torch.zeros(n_tasks))
        self.optimizer = torch.optim.Adam([self.logits], lr=lr, weight_decay=gamma)
        self._before: torch.Tensor | None = None

    def learnable(self) -> list[nn.Parameter]:
        return []  # ξ has its own optimiser, not the network's

    def combine(self, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.softmax(self.logits, -1).to(losses.device)
        d = losses + EPS
        c = (z / d).sum().detach()
        self._before = losses.detach()
        return (d.log() * z / c).sum(), (z / (c * d)).detach()

    def after_step(self, new_losses: Callable[[], torch.Tensor]) -> None:
        with torch.no_grad():
            after = new_losses().detach().to(self.logits.device)
        delta = (self._before.to(self.logits.device) + EPS).log() - (after + EPS).log()
        with torch.enable_grad():
            grad = torch.autograd.grad(torch.softmax(self.logits, -1), self.logits, grad_outputs=delta)[0]
        self.optimizer.zero_grad()
        self.logits.grad = grad
        self.optimizer.step()

    def get_extra_state(self) -> dict:
        # a copy: an optimiser's state_dict holds its live moment tensors, which its next step changes in place
        return {"optimizer": copy.deepcopy(self.optimizer.state_dict())}

    def set_extra_state(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
