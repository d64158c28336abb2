"""FORUM: a first-order multi-gradient algorithm for multi-objective bilevel optimisation (Ye, Lin, Lin,
Zhang, Huang & Zhang, ECAI 2024), as its authors' implementation in LibMTL's main branch
(``trainer.bacth_forward_FORUM``)."""
from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from benchmark.training.weighting.bilevel import BilevelWeighting, LookAhead, grads_or_zeros
from benchmark.training.weighting.moml import flat

DIVERGED_INNER_LOSS = 1e5   # LibMTL's: an inner loss above it stops the inner loop (too large a step)


class Programme:
    """argmin over w >= 0 of wᵀ G w − c w_K subject to Σ_{k<K} w_k = 1 and w_K >= Σ_k w_k π_k (the
    K + 1 rows of G: the K normalised meta gradients, then the inner problem's q): LibMTL's cvxpy
    problem, with G's symmetric square root from ``eigh``. Built and compiled once, with G's root, π and
    c as cvxpy parameters set at each step (LibMTL builds a new problem every step)."""

    def __init__(self, k: int):
        import cvxpy as cp

        self.root, self.pi, self.c = cp.Parameter((k + 1, k + 1)), cp.Parameter(k), cp.Parameter(nonneg=True)
        self.w = cp.Variable(k + 1, nonneg=True)
        self.problem = cp.Problem(cp.Minimize(cp.sum_squares(self.root @ self.w) - self.c * self.w[k]),
                                  [cp.sum(self.w[:k]) == 1, self.w[k] >= self.pi @ self.w[:k]])
        # cvxpy's first solve compiles the problem, later ones reuse that compilation, and the two paths differ
        # in the last bits: one throwaway solve puts every real one on the same path, so a run resumed with a
        # fresh programme takes the same steps as one that went on
        self.solve(np.eye(k + 1), np.zeros(k), 0.0)

    def solve(self, gramian: np.ndarray, pi: np.ndarray, c: float) -> np.ndarray:
        vals, vecs = np.linalg.eigh((gramian + gramian.T) / 2)
        self.root.value = vecs @ np.diag(np.sqrt(np.maximum(vals, 0.0))) @ vecs.T
        self.pi.value, self.c.value = np.asarray(pi, dtype=np.float64), max(float(c), 0.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # Clarabel (interior point): accurate to 1e-8 where OSQP, cvxpy's pick, stops at 1e-3, and without
            # a warm start that would carry one step's solution into the next
            self.problem.solve(solver="CLARABEL")
        if self.w.value is None:
            raise RuntimeError(f"FORUM: its weights' quadratic programme was not solved ({self.problem.status}); "
                               f"Gramian diagonal {np.diag(gramian).tolist()}, pi {np.asarray(pi).tolist()}")
        return np.asarray(self.w.value, dtype=np.float64)


class FORUM(BilevelWeighting):
    """The inner problem f = Σ_k softmax(α)_k L_k(train) over (α, θ), the outer objectives the meta
    batch's task losses F_k(θ). Each step (``phi`` 0.1, ``inner_step`` 5 SGD steps of ``inner_lr`` 0.1,
    α's Adam ``outer_lr`` 1e-3: LibMTL's defaults):

    q = ∇_(α,θ) f(α, θ) − (∇_α f(α, θ_T), 0), θ_T after the inner steps from θ (a copy);
    g_k = ∇θ F_k / ‖∇θ F_k‖ (padded with zeros for α); π_k = φ − q·g_k / ‖q‖²;
    w = argmin ‖[g; q]ᵀ w‖² − φ‖q‖² w_q  s.t. Σ_k w_k = 1, w_q >= Σ_k w_k π_k, w >= 0  (cvxpy);
    λ ← λ + (w_{1..K} − λ) / (epoch + 1)^{3/4}  (λ = 0 at first); ν = max(Σ_k λ_k π_k, 0);

    and (α, θ) step along Σ_k λ_k g_k + ν q: the network's optimiser takes the θ part (this weighting's
    ``step`` writes it as the gradient), α's Adam the rest. Logged weights: λ. Unlike Auto-Lambda and MOML
    the update is no weighted loss: ``step`` applies the direction its meta step found."""

    name = "forum"

    def __init__(self, n_tasks: int, phi: float = 0.1, inner_step: int = 5, inner_lr: float = 0.1,
                 outer_lr: float = 1e-3):
        super().__init__(n_tasks)
        self.phi, self.inner_step, self.inner_lr = phi, inner_step, inner_lr
        self.alpha = nn.Parameter(torch.full((n_tasks,), 1.0 / n_tasks))
        self.optimizer = torch.optim.Adam([self.alpha], lr=outer_lr)
        self.register_buffer("lambdas", torch.zeros(n_tasks))
        self.epoch = 0
        self._pending: tuple[list[nn.Parameter], torch.Tensor] | None = None
        self._programme: Programme | None = None

    def start_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _inner(self, losses: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        return (torch.softmax(alpha, -1).to(losses.device) * losses).sum()

    def meta_step(self, look: LookAhead) -> None:
        params, k = look.params(), self.n_tasks
        alpha = self.alpha.detach().clone().requires_grad_(True)
        g_f = flat(grads_or_zeros(self._inner(look.losses, alpha), [alpha, *params]))
        inner = look.copy_with([p.detach() for p in params])
        inner_params = [p for p in inner.parameters() if p.requires_grad]
        for _ in range(self.inner_step):
            loss = self._inner(look.forward(inner, look.train), alpha.detach())
            if float(loss.detach()) > DIVERGED_INNER_LOSS:
                break
            with torch.no_grad():
                for p, g in zip(inner_params, grads_or_zeros(loss, inner_params)):
                    p -= self.inner_lr * g
        with torch.no_grad():
            after = look.forward(inner, look.train)
        g_alpha_after = torch.autograd.grad(self._inner(after.detach(), alpha), alpha)[0]
        q = g_f.double()
        q[:k] -= g_alpha_after.double()
        outer = look.copy_with([p.detach() for p in params])   # at θ; a copy: the network's BN statistics stay
        outer_params = [p for p in outer.parameters() if p.requires_grad]
        meta = look.forward(outer, look.meta)
        g = torch.stack([flat(grads_or_zeros(meta[t], outer_params, retain_graph=t < k - 1))
                         for t in range(k)]).double()
        g = g / g.norm(dim=1, keepdim=True).clamp_min(torch.finfo(g.dtype).tiny)
        g = torch.cat([torch.zeros(k, k, dtype=g.dtype, device=g.device), g], dim=1)
        qq = float(q @ q) + 1e-8
        pi = self.phi - (g @ q).cpu().numpy() / qq
        a = torch.cat([g, q.unsqueeze(0)])
        self._programme = self._programme or Programme(k)
        w = self._programme.solve((a @ a.T).cpu().numpy(), pi, self.phi * qq)
        rate = 1.0 / (self.epoch + 1) ** 0.75
        lam = self.lambdas.double().cpu().numpy()
        lam = lam + rate * (w[:k] - lam)
        self.lambdas.copy_(torch.as_tensor(lam, dtype=self.lambdas.dtype))
        nu = max(float(lam @ pi), 0.0)
        direction = torch.as_tensor(lam, dtype=g.dtype, device=g.device) @ g + nu * q
        self.optimizer.zero_grad()
        self.alpha.grad = direction[:k].to(self.alpha.device, self.alpha.dtype)
        self.optimizer.step()
        self._pending = (params, direction[k:])

    def step(self, losses: torch.Tensor, shared: list[nn.Parameter], others: list[nn.Parameter]) -> torch.Tensor:
        if self._pending is None:
            raise RuntimeError("FORUM's update is the direction of its meta step: call meta_step first "
                               "(the training loop does, with the step's LookAhead)")
        params, vector = self._pending
        self._pending = None
        offset = 0
        for p in params:
            piece = vector[offset:offset + p.numel()].view(p.shape).to(p.dtype)
            offset += p.numel()
            p.grad = piece if p.grad is None else p.grad + piece
        return self.lambdas.detach().clone()

    def get_extra_state(self) -> dict:
        return {**super().get_extra_state(), "epoch": self.epoch}

    def set_extra_state(self, state: dict) -> None:
        super().set_extra_state(state)
        self.epoch = state["epoch"]
