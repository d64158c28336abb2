"""The two kinds of loss weighting and what the training loop asks of them.

Per step the loop calls ``step(losses, shared, others)`` between ``zero_grad`` and the optimiser
step (``shared``: the model's shared parameters, ``others``: its other trainable ones): it sets ``.grad``
of the model's parameters (and of the weighting's own, which the optimiser also steps) and returns the
weights it gave the tasks (logged as each epoch's mean). ``losses`` are the K task losses of the step's
batch, or, for a weighting whose ``samples`` is S > 1 (MoDo, SDMGrad: independent batches), an [S, K]
tensor of S batches' losses; a ``bilevel`` weighting (Auto-Lambda, MOML, FORUM) first gets a
``meta_step`` with a second batch and copies of the network (``bilevel.py``). ``start_epoch``
and ``end_epoch`` see the epochs, ``after_step`` the losses after the optimiser step (FAMO).
Anything a weighting remembers is in its ``state_dict`` (checkpoints, exact resume).
"""
from __future__ import annotations

from typing import Callable, ClassVar, Sequence

import numpy as np
import torch
from torch import nn


class Weighting(nn.Module):
    name: ClassVar[str]
    kind: ClassVar[str] = "loss"
    samples: ClassVar[int] = 1      # batches per step (the loop draws them; docs/methods.md, "Cost")
    bilevel: ClassVar[bool] = False  # meta_step(LookAhead) before each step (weighting/bilevel.py)

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


def loss_weights(loss: torch.Tensor, losses: torch.Tensor) -> torch.Tensor:
    """∂loss/∂L_k: the weight a scalarization (STCH, PBI) gives each task at this step, as the loop logs it."""
    return torch.autograd.grad(loss, losses, retain_graph=True)[0].detach()


def task_jacobians(losses: torch.Tensor, params: list[nn.Parameter], retain_graph: bool = False) -> None:
    """Each task's gradient of every parameter in ``params``, as rows of ``p.jac`` ([K, *p.shape]):
    torchjd's ``backward``, one ordinary backward pass per task (below). ``retain_graph`` keeps the graph
    for a further pass through it.

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
             retain_graph=retain_graph, parallel_chunk_size=1)


def sum_rows(params: list[nn.Parameter]) -> None:
    """Task-specific parameters: the plain sum of the tasks' gradients (as LibMTL's gradient methods)."""
    for p in params:
        jac = getattr(p, "jac", None)
        if jac is not None:
            p.grad = jac.sum(0) if p.grad is None else p.grad + jac.sum(0)
            del p.jac


#: The precision the task Jacobian is aggregated in. float32 made Aligned-MTL, IMTL-G and CAGrad depend
#: on the order of the tasks (relative change of the combined gradient up to 1.3e-4, 6.7e-5, 2.6e-5 on a
#: 3-task Jacobian with a 1:100 loss scale and two nearly parallel rows, condition number 1.5e4;
#: float64: < 1e-6), because their Gramians' inverses and eigen-decompositions amplify rounding.
#: Cost (a step 1.05-1.15x): docs/methods.md, "Precision of the aggregation".
AGGREGATION_DTYPE = torch.float64


def united_jacobian(params: list[nn.Parameter]) -> tuple[list[nn.Parameter], torch.Tensor]:
    """The parameters with a ``.jac`` and their rows united into one R x P matrix in
    :data:`AGGREGATION_DTYPE` (the ``.jac`` are consumed)."""
    with_jac = [p for p in params if getattr(p, "jac", None) is not None]
    if not with_jac:
        raise ValueError("no task Jacobian to aggregate: the shared parameters have no .jac")
    rows = with_jac[0].jac.shape[0]
    matrix = torch.cat([p.jac.reshape(rows, -1).to(AGGREGATION_DTYPE) for p in with_jac], dim=1)
    for p in with_jac:
        del p.jac
    return with_jac, matrix


def add_to_grads(params: list[nn.Parameter], vector: torch.Tensor) -> None:
    """``vector`` (the length of all ``params``) split back into their ``.grad``, in their own dtype."""
    offset = 0
    for p in params:
        piece = vector[offset:offset + p.numel()].view(p.shape).to(p.dtype)
        offset += p.numel()
        p.grad = piece if p.grad is None else p.grad + piece


def aggregate_jacobians(params: list[nn.Parameter], aggregator: nn.Module) -> torch.Tensor | None:
    """torchjd's ``jac_to_grad``, in :data:`AGGREGATION_DTYPE`: the rows of every ``p.jac`` united into
    one K x P matrix, aggregated into one vector, split back into the parameters' ``.grad`` (in their own
    dtype). Returns the weights the aggregator gave the rows, or None for one that does not weigh them
    (GradDrop) -- as ``jac_to_grad`` does, with the same forward hook on ``aggregator.weighting``."""
    from torchjd.aggregation import WeightedAggregator

    with_jac, matrix = united_jacobian(params)
    weights: list[torch.Tensor] = []
    handle = (aggregator.weighting.register_forward_hook(lambda _m, _i, out: weights.append(out))
              if isinstance(aggregator, WeightedAggregator) else None)
    try:
        vector = aggregator(matrix)
    finally:
        if handle is not None:
            handle.remove()
    add_to_grads(with_jac, vector)
    return weights[-1] if weights else None


class GradientWeighting(Weighting):
    """Each task's gradient of the shared parameters, combined by an aggregator in float64
    (:func:`aggregate_jacobians`); every other parameter gets the plain sum of the task gradients (a
    decoder only has its own task's). Subclasses set ``self.aggregator`` (a torchjd aggregator)."""

    kind = "gradient"
    aggregator: nn.Module

    def shared_jacobian(self, losses: torch.Tensor, shared: list[nn.Parameter],
                        others: list[nn.Parameter]) -> tuple[list[nn.Parameter], torch.Tensor]:
        """Every parameter's task Jacobian (``.jac``), and the shared parameters' united into one K x P
        matrix (:func:`united_jacobian`): the start of a gradient weighting that combines it itself."""
        if not shared:
            raise ValueError(f"{self.name} needs a joint multi-task model's shared parameters")
        task_jacobians(losses, shared + others)
        return united_jacobian(shared)

    def step(self, losses: torch.Tensor, shared: list[nn.Parameter],
             others: list[nn.Parameter]) -> torch.Tensor:
        if not shared:
            raise ValueError(f"{self.name} needs a joint multi-task model's shared parameters")
        task_jacobians(losses, shared + others)
        weights = aggregate_jacobians(shared, self.aggregator)
        sum_rows(others)
        if weights is None:  # aggregators that do not weigh the rows (GradDrop)
            return torch.full((self.n_tasks,), float("nan"))
        return weights.detach().float().cpu()


class SampledGradientWeighting(Weighting):
    """Task weights from the Jacobians of two independent batches, applied to a third's: MoDo and SDMGrad
    (double sampling: Jᵢ Jⱼᵀ is an unbiased estimate of the Gramian, J Jᵀ of one batch is not). A step
    takes ``samples`` = 3 batches, as LibMTL's trainer draws them; ``losses`` is [3, K]. The shared
    parameters get wᵀ J_u (u: ``update``, the batch the update is taken from); every other parameter the
    sum over tasks of the mean over the 3 batches (LibMTL's MoDo divides the decoders' gradient by 3;
    its SDMGrad leaves it at the sum, 3x: the mean is taken for both). Subclasses give ``weigh(A)`` with
    A = J_a J_bᵀ, (a, b) = ``pair``."""

    kind = "gradient"
    samples = 3
    pair: ClassVar[tuple[int, int]]
    update: ClassVar[int]

    def weigh(self, a: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def step(self, losses: torch.Tensor | Sequence[torch.Tensor], shared: list[nn.Parameter],
             others: list[nn.Parameter]) -> torch.Tensor:
        """``losses``: [samples, K], or a sequence of the samples' [K] loss vectors (the loop's: each its own
        graph). The Jacobian is taken one batch at a time: a pass from a row of one stacked tensor would also
        carry zeros back through the other batches' graphs (3x the backward work; measured on the quick
        profile's HPS: a MoDo step 17.7x DWA's that way, 9.8x this way, docs/methods.md "Cost")."""
        if not shared:
            raise ValueError(f"{self.name} needs a joint multi-task model's shared parameters")
        shapes = [tuple(row.shape) for row in losses]
        if len(shapes) != self.samples or any(len(shape) != 1 for shape in shapes):
            raise ValueError(f"{self.name} takes the losses of {self.samples} batches per step ([samples, tasks]), "
                             f"got shapes {shapes}")
        (s, k), params = (len(shapes), shapes[0][0]), shared + others
        per_batch: dict[int, list[torch.Tensor]] = {id(p): [] for p in params}
        for b, row in enumerate(losses):
            task_jacobians(row, params, retain_graph=b < s - 1)    # a stacked input shares one graph
            for p in params:
                if getattr(p, "jac", None) is not None:
                    per_batch[id(p)].append(p.jac)
                    del p.jac
        for p in params:
            if per_batch[id(p)]:
                p.jac = torch.cat(per_batch[id(p)])        # batch-major rows: batch b, task t at b * K + t
        with_jac, matrix = united_jacobian(shared)
        jac = matrix.view(s, k, -1)
        weights = self.weigh(jac[self.pair[0]] @ jac[self.pair[1]].T)
        add_to_grads(with_jac, weights @ jac[self.update])
        for p in others:
            rows = getattr(p, "jac", None)
            if rows is not None:
                mean = rows.sum(0) / s
                p.grad = mean if p.grad is None else p.grad + mean
                del p.jac
        return weights.detach().float().cpu()
