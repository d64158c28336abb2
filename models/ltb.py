"""LTB: learning to branch (Guo, Lee & Ulbricht, ICML 2020) on ResNet levels, as LibMTL builds it.

One ResNet encoder per task (a branch); before each of the four stages, task t's branch takes a mix of
every branch's previous output, Σ_s a[j, t, s] f_s^(j-1), with a[j, t] a hard Gumbel-softmax sample of
the learnt logits α[j, t] (straight-through: the forward picks one parent, the gradient reaches α), at
the temperature τ = E / 20 / √(epoch + 1) of LibMTL (E: the run's epochs). During the first E / 100
epochs (LibMTL's warm-up) a = 1: every parent is summed. Each branch's stage outputs are its task's
skips and bottleneck; the branches and α are the shared parameters (a task's loss can reach all of them).

*Chosen* where LibMTL is silent or random: in eval mode the branching is the learnt one, a = one-hot
argmax α (LibMTL samples at test time too, so its test scores are random); the epoch and the run's
length are buffers, so a selected (best-epoch) state is evaluated with its own epoch's rule. The loop
tells the model the epoch through ``start_epoch`` (benchmark/training/loop.py).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from data.spec import TaskSpec
from models.base import MultiTaskModel
from models.blocks import decode, make_decoder
from models.encoder import ResNetEncoder


class LTB(MultiTaskModel):
    def __init__(self, tasks: tuple[TaskSpec, ...], backbone: str = "resnet50", pretrained: bool = False,
                 in_channels: int = 3):
        super().__init__()
        self.tasks = tuple(tasks)
        k = len(self.tasks)
        self.branches = nn.ModuleList(ResNetEncoder(backbone, pretrained, in_channels) for _ in self.tasks)
        self.alpha = nn.Parameter(torch.ones(4, k, k))          # stage, child (task), parent (branch)
        self.register_buffer("epoch", torch.zeros((), dtype=torch.int64))
        self.register_buffer("epochs", torch.ones((), dtype=torch.int64))
        self.decoders = nn.ModuleDict({t.name: make_decoder(t, self.branches[0].channels) for t in tasks})

    def start_epoch(self, epoch: int, epochs: int) -> None:
        self.epoch.fill_(epoch)
        self.epochs.fill_(epochs)

    def shared_parameters(self) -> list[nn.Parameter]:
        return [*self.branches.parameters(), self.alpha]

    def branching(self) -> torch.Tensor:
        """a [4, K, K]: all ones in the warm-up, else a hard Gumbel sample (training) or the argmax (eval)."""
        epoch, epochs = int(self.epoch), int(self.epochs)
        if epoch < epochs / 100:
            return torch.ones_like(self.alpha)
        if not self.training:
            return F.one_hot(self.alpha.argmax(-1), self.alpha.shape[-1]).to(self.alpha.dtype)
        return F.gumbel_softmax(self.alpha, tau=epochs / 20 / math.sqrt(epoch + 1), hard=True, dim=-1)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        a = self.branching()
        prev = [branch.stem(x) for branch in self.branches]
        feats: list[list[torch.Tensor]] = [[] for _ in self.tasks]
        for j in range(4):
            prev = [branch.stages[j](sum(a[j, t, s] * prev[s] for s in range(len(prev))))
                    for t, branch in enumerate(self.branches)]
            for t, f in enumerate(prev):
                feats[t].append(f)
        return decode(self.decoders, self.tasks, feats, x.shape[-2:])
