"""GradNorm: gradient normalisation (Chen, Badrinarayanan, Lee & Rabinovich, ICML 2018)."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from benchmark.training.weighting.base import GradientWeighting, sum_rows, task_jacobians


class GradNormWeighting(GradientWeighting):
    """Learnt weights w = K·softmax(s) (s = 0 at first, stepped by the network's optimiser) that pull
    each task's weighted gradient norm G_k = ‖w_k g_k‖ on the shared parameters towards
    mean(G)·r_k^α, r_k the task's loss ratio L_k / L_k(epoch 0) relative to the tasks' mean (α 1.5):
    s gets the gradient of Σ_k |G_k − mean(G) r_k^α| (the target held constant), the shared
    parameters Σ_k w_k g_k, each task's own parameters its plain gradient. In the first epoch, before
    L(epoch 0) exists, the plain sum of the losses. LibMTL 1.1.5's scheme (the paper renormalises
    the weights after each step instead of the softmax)."""

    name = "gradnorm"

    def __init__(self, n_tasks: int, alpha: float = 1.5):
        super().__init__(n_tasks)
        self.alpha = alpha
        self.scale = nn.Parameter(torch.ones(n_tasks))
        self.epoch = 0
        self.first: np.ndarray | None = None

    def start_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def end_epoch(self, epoch_mean_losses: np.ndarray) -> None:
        if self.first is None:
            self.first = np.asarray(epoch_mean_losses, dtype=np.float64)

    def step(self, losses: torch.Tensor, shared: list[nn.Parameter], others: list[nn.Parameter]) -> torch.Tensor:
        if self.first is None:
            losses.sum().backward()
            return torch.ones(self.n_tasks)
        task_jacobians(losses, shared + others)
        sum_rows(others)
        jac = [p.jac.flatten(1) for p in shared]                 # rows: each task's gradient
        grads = torch.cat(jac, dim=1)
        for p in shared:
            del p.jac
        weights = self.n_tasks * torch.softmax(self.scale, dim=-1)
        norms = torch.linalg.vector_norm(weights.unsqueeze(1).to(grads) * grads, dim=1)
        ratio = losses.detach().double().cpu() / torch.as_tensor(self.first)
        target = (norms.mean() * (ratio / ratio.mean()).to(norms) ** self.alpha).detach()
        (norms - target).abs().sum().backward()                  # into self.scale.grad only
        w = weights.detach().to(grads)
        for p, rows in zip(shared, jac):
            g = (w.unsqueeze(1) * rows).sum(0).view_as(p)
            p.grad = g if p.grad is None else p.grad + g
        return weights.detach().float().cpu()

    def get_extra_state(self) -> dict:
        return {"epoch": self.epoch, "first": None if self.first is None else self.first.tolist()}

    def set_extra_state(self, state: dict) -> None:
        self.epoch = state["epoch"]
        self.first = None if state["first"] is None else np.asarray(state["first"], dtype=np.float64)
