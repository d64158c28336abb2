"""MOML: multi-objective meta learning (Ye, Lin, Yang, Zhang, Huang & Zhang, NeurIPS 2021; AIJ 2024),
one inner step, as its authors' implementation in LibMTL's main branch (``trainer.bacth_forward_MOML``)."""
from __future__ import annotations

import torch
from torch import nn

from benchmark.training.weighting.bilevel import BilevelWeighting, LookAhead, grads_or_zeros
from benchmark.training.weighting.mgda import min_norm_weights


def flat(grads: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in grads])


class MOML(BilevelWeighting):
    """Task weights s = softmax(α) (α = 1/K at first), the update Σ_k s_k L_k. Before each update:

    g_f = each task's gradient at θ on the step's batch (K × P), θ′ = θ − η s g_f (η ``inner_lr`` 0.1,
    no weight decay, as LibMTL); g_F = each task's gradient at θ′ on the meta batch; each task's
    hypergradient of α, row k of H = −η g_F g_fᵀ (diag(s) − s sᵀ), divided by its norm; α's gradient
    the min-norm point of those rows (MGDA, exact here) and a step of α's own Adam (``outer_lr`` 1e-3).

    LibMTL draws the inner and outer batches at half the batch size and the update from a third, full
    one; here the inner batch is the update's (as Auto-Lambda's authors) and the outer the loop's meta
    batch: one more batch a step, not two (docs/methods.md)."""

    name = "moml"

    def __init__(self, n_tasks: int, inner_lr: float = 0.1, outer_lr: float = 1e-3):
        super().__init__(n_tasks)
        self.inner_lr = inner_lr
        self.alpha = nn.Parameter(torch.full((n_tasks,), 1.0 / n_tasks))
        self.optimizer = torch.optim.Adam([self.alpha], lr=outer_lr)

    def weights(self) -> torch.Tensor:
        return torch.softmax(self.alpha.detach(), -1)

    def combine(self, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.weights().to(losses.device)
        return (s * losses).sum(), s

    def hypergradients(self, look: LookAhead) -> torch.Tensor:
        """H (K × K, float64): row k the gradient of task k's meta loss at θ′ with respect to α."""
        params, k = look.params(), self.n_tasks
        g_f = torch.stack([flat(grads_or_zeros(look.losses[t], params, retain_graph=True)) for t in range(k)])
        s = self.weights().to(g_f.device, g_f.dtype)
        with torch.no_grad():
            step, offset, ahead = s @ g_f, 0, []
            for p in params:
                ahead.append(p - self.inner_lr * step[offset:offset + p.numel()].view(p.shape))
                offset += p.numel()
        virtual = look.copy_with(ahead)
        virtual_params = [p for p in virtual.parameters() if p.requires_grad]
        meta = look.forward(virtual, look.meta)
        g_F = torch.stack([flat(grads_or_zeros(meta[t], virtual_params, retain_graph=t < k - 1)) for t in range(k)])
        softmax_jacobian = torch.diag(s) - torch.outer(s, s)
        return -self.inner_lr * (g_F.double() @ g_f.double().T) @ softmax_jacobian.double()

    def meta_step(self, look: LookAhead) -> None:
        h = self.hypergradients(look)
        h = h / h.norm(dim=1, keepdim=True).clamp_min(torch.finfo(h.dtype).tiny)   # LibMTL's 'l2' normaliser
        sol = min_norm_weights(h @ h.T)
        self.optimizer.zero_grad()
        self.alpha.grad = (sol @ h).to(self.alpha.device, self.alpha.dtype)
        self.optimizer.step()
