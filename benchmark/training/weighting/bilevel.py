"""The bilevel hook: a weighting that learns its task weights from a look-ahead of the network.

Auto-Lambda, MOML and FORUM choose the task weights λ by how a step taken with them would change a
second ("validation") loss: they need, inside the training step, a second batch and copies of the
network with other parameters. The loop gives them both, once per step, before the ordinary update
(``Weighting.bilevel``; ``train_epoch`` in ``benchmark/training/loop.py``):

1. the step's batch goes through the network as for every weighting (``LookAhead.losses``, its graph
   kept: the update after the meta step reuses it, no second forward pass);
2. ``meta_step(look)`` moves the weighting's own parameters (its own optimiser) and may use
   ``look.forward(model, batch)`` on ``look.copy_with(params)`` -- a copy of the network carrying
   other parameters (the look-ahead θ′ = θ − α ∇θ, or θ ± ε d for a finite difference);
3. ``step(losses, ...)`` then sets the network's gradients with the new weights, as a loss weighting.

*Chosen*, as the authors' code and LibMTL's trainer do: the "validation" batch is a second batch of
the **training** split in another order (the ``meta`` batch: one more shuffled pass per epoch, drawn by
the cell's generator), never the validation split, which stays what model selection alone sees.
Copies, not the network perturbed in place: the update's kept graph needs the parameters as they
were (autograd refuses tensors changed in place), and the network's BatchNorm statistics are not
moved by the look-ahead passes. Cost: docs/methods.md, "Cost".
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from benchmark.training.weighting.base import LossWeighting

Batch = dict[str, torch.Tensor]


@dataclass
class LookAhead:
    """What a bilevel weighting's ``meta_step`` sees of one training step."""

    net: nn.Module
    losses: torch.Tensor                                   # [K] of ``train`` at θ, graph kept
    forward: Callable[[nn.Module, Batch], torch.Tensor]    # [K] task losses of a batch through a model
    train: Batch                                           # the step's batch (the update's)
    meta: Batch                                            # a second training batch, another order
    lr: float                                              # the network optimiser's learning rate now
    weight_decay: float

    def params(self) -> list[nn.Parameter]:
        """The network's trainable parameters, in ``net.parameters()`` order."""
        return [p for p in self.net.parameters() if p.requires_grad]

    def copy_with(self, values: list[torch.Tensor], into: nn.Module | None = None) -> nn.Module:
        """A copy of the network (its mode, buffers and state) whose trainable parameters are
        ``values`` (one per :meth:`params`), each a leaf that requires grad; ``into``: a copy made
        before, given the values in place (one copy per step serves every look-ahead)."""
        model = copy.deepcopy(self.net) if into is None else into
        with torch.no_grad():
            for p, v in zip((p for p in model.parameters() if p.requires_grad), values, strict=True):
                p.copy_(v)
        return model


def grads_or_zeros(loss: torch.Tensor, params: list[torch.Tensor], retain_graph: bool = False) -> list[torch.Tensor]:
    """∂loss/∂p for each of ``params``; zeros for a parameter the loss does not reach (a branch a
    batch does not use)."""
    grads = torch.autograd.grad(loss, params, retain_graph=retain_graph, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


class BilevelWeighting(LossWeighting):
    """A loss weighting whose weights a :meth:`meta_step` learns before each update. Subclasses give
    ``meta_step(look)`` and ``combine(losses)`` (the update's weighted sum with the new weights)."""

    kind = "bilevel"
    bilevel = True

    def learnable(self) -> list[nn.Parameter]:
        return []  # the weights have their own optimiser (the authors' meta optimiser), not the network's

    optimizer: torch.optim.Optimizer  # the meta optimiser of the weights: its state is checkpointed

    def meta_step(self, look: LookAhead) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_extra_state(self) -> dict:
        # a copy: an optimiser's state_dict holds its live moment tensors, which its next step changes in place
        return {"optimizer": copy.deepcopy(self.optimizer.state_dict())}

    def set_extra_state(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
