"""Auto-Lambda (Liu, Li, Kuang, Xie, Chen & Davison, TMLR 2022): task weights learnt by a one-step
look-ahead, as the authors' code (lorenmt/auto-lambda, ``auto_lambda.py``) on every task as primary."""
from __future__ import annotations

import torch
from torch import nn

from benchmark.training.weighting.bilevel import BilevelWeighting, LookAhead, grads_or_zeros


class AutoLambda(BilevelWeighting):
    """Weights λ (``init`` 0.1 each, unconstrained), the update Σ_k λ_k L_k. Before each update:

    θ′ = θ − α (∇θ Σ_k λ_k L_k(train) + wd θ)   (the virtual SGD step at the optimiser's lr α and weight decay)
    d  = ∇θ′ Σ_k L_k(meta; θ′)                   (every task primary)
    ∂L_meta/∂λ ≈ −α (∇λ L(train; θ⁺) − ∇λ L(train; θ⁻)) / 2ε,  θ± = θ ± ε d,  ε = 0.01 / ‖d‖

    (DARTS' finite difference; ∇λ Σ λ_k L_k is the loss vector itself, so the two are forward passes
    only), and λ takes a step of its own Adam (``lr`` 1e-4, the authors' ``--autol_lr``). The
    authors' trainer takes the "validation" batch from a second loader over the training set; the
    loop's ``meta`` batch is that (docs: ``weighting/bilevel.py``)."""

    name = "autolambda"

    def __init__(self, n_tasks: int, init: float = 0.1, lr: float = 1e-4):
        super().__init__(n_tasks)
        self.lambdas = nn.Parameter(torch.full((n_tasks,), float(init)))
        self.optimizer = torch.optim.Adam([self.lambdas], lr=lr)

    def combine(self, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lam = self.lambdas.to(losses.device)
        return (lam * losses).sum(), lam.detach()

    def meta_step(self, look: LookAhead) -> None:
        params, alpha = look.params(), look.lr
        lam = self.lambdas.detach().to(look.losses.device)
        grads = grads_or_zeros((lam * look.losses).sum(), params, retain_graph=True)
        with torch.no_grad():
            ahead = [p - alpha * (g + look.weight_decay * p) for p, g in zip(params, grads)]
        virtual = look.copy_with(ahead)
        virtual_params = [p for p in virtual.parameters() if p.requires_grad]
        d = grads_or_zeros(look.forward(virtual, look.meta).sum(), virtual_params)
        eps = 0.01 / torch.cat([g.reshape(-1) for g in d]).norm()
        with torch.no_grad():
            plus = look.forward(look.copy_with([p + eps * g for p, g in zip(params, d)], virtual), look.train)
            minus = look.forward(look.copy_with([p - eps * g for p, g in zip(params, d)], virtual), look.train)
        hessian = (plus - minus).float() / (2 * eps)
        self.optimizer.zero_grad()
        self.lambdas.grad = (-alpha * hessian).to(self.lambdas.device, self.lambdas.dtype)
        self.optimizer.step()
