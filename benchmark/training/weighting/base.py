"""The two kinds of loss weighting and what the training loop asks of them.

Per step the loop calls ``step(losses, shared, others)`` between ``zero_grad`` and the optimiser
step (``shared``: the model's shared parameters, ``others``: its other trainable ones): it sets ``.grad`` of the model's parameters (and of the weighting's own, which the optimiser
also steps) and returns the weights it gave the tasks (logged as each epoch's mean). ``start_epoch``
and ``end_epoch`` see the epochs, ``after_step`` the losses after the optimiser step (FAMO).
Anything a weighting remembers is in its ``state_dict`` (checkpoints, exact resume).
"""
from __future__ import annotations

from typing import Callable, ClassVar

import numpy as np
import torch
from torch import nn


class Weighting(nn.Module):
    name: ClassVar[str]
    kind: ClassVar[str] = "loss"

    def __init__(self, n_tasks: int):
        super().__init__()
        self.n_tasks = n_tasks

    def learnable(self) -> list[nn.Parameter]:
        """The weighting's own parameters that the network's optimiser steps (UW's log-variances)."""
        return list(self.parameters())

    def start_epoch(self, epoch: int) -> None:
        """Called before the epoch's first step."""

    def end_epoch(self, epoch_mean_losses: np.ndarray) -> None:
        """Called with each task's mean training loss of the epoch just finished."""

    def step(self, losses: torch.Tensor, shared: list[nn.Parameter],
             others: list[nn.Parameter]) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def after_step(self, new_losses: Callable[[], torch.Tensor]) -> None:
        """Called after the optimiser step; ``new_losses()`` evaluates the batch's losses again."""


class LossWeighting(Weighting):
    """A weighted sum of the task losses, backpropagated once: heads get λ_k ∇L_k, the shared
    parameters Σ_k λ_k ∇L_k. Subclasses give ``combine(losses) -> (loss, λ)``."""

    def combine(self, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # pragma: no cover
        raise NotImplementedError

    def step(self, losses: torch.Tensor, shared: list[nn.Parameter],
             others: list[nn.Parameter]) -> torch.Tensor:
        loss, weights = self.combine(losses)
        loss.backward()
        return weights.detach()


def task_jacobians(losses: torch.Tensor, params: list[nn.Parameter]) -> None:
    """Each task's gradient of every parameter in ``params``, as rows of ``p.jac`` ([K, *p.shape]):
    torchjd's ``backward``, one vmapped backward pass (the cost of about one pass per task).

    Not ``mtl_backward``: it differentiates to a set of features that must cut the graph, and a
    U-Net's skips are nested (stage 4 is computed from stage 1): its feature gradients would count
    the path through later stages twice.

    One task at a time (``parallel_chunk_size=1``: K ordinary backward passes, the graph kept
    between them), not torchjd's default vmap over the K tasks: a vmapped backward through a
    bfloat16-autocast graph (the quick, realcpu and paper profiles train with ``amp``) fails in
    torch 2.14 ("expected scalar type BFloat16 but found Float"), and torch's ``MemTracker`` can
    follow ordinary passes but not vmapped ones. Cost: docs/methods.md, "Cost"."""
    from torchjd.autojac import backward

    backward(list(losses.float().unbind()), inputs=[p for p in params if p.requires_grad],
             parallel_chunk_size=1)


def sum_rows(params: list[nn.Parameter]) -> None:
    """Task-specific parameters: the plain sum of the tasks' gradients (as LibMTL's gradient methods)."""
    for p in params:
        jac = getattr(p, "jac", None)
        if jac is not None:
            p.grad = jac.sum(0) if p.grad is None else p.grad + jac.sum(0)
            del p.jac


class GradientWeighting(Weighting):
    """Each task's gradient of the shared parameters, combined by an aggregator (torchjd's
    ``jac_to_grad``); every other parameter gets the plain sum of the task gradients (a decoder only
    has its own task's). Subclasses set ``self.aggregator``."""

    kind = "gradient"
    aggregator: nn.Module

    def step(self, losses: torch.Tensor, shared: list[nn.Parameter],
             others: list[nn.Parameter]) -> torch.Tensor:
        from torchjd.autojac import jac_to_grad

        if not shared:
            raise ValueError(f"{self.name} needs a joint multi-task model's shared parameters")
        task_jacobians(losses, shared + others)
        weights = jac_to_grad(shared, self.aggregator)
        sum_rows(others)
        if weights is None:  # aggregators that do not weigh the rows (GradDrop)
            return torch.full((self.n_tasks,), float("nan"))
        return weights.detach().float().cpu()
