"""MMoE: multi-gate mixture of experts (Ma, Zhao, Yi, Chen, Hong & Chi, KDD 2018) on ResNet stages.

``experts`` ResNet encoders (2 by default) share the input; each task has a gate, a softmax over the
experts computed from the image (average-pooled to 8x8, then one linear layer, as LibMTL's gate is
a linear layer of the input), that mixes the experts' outputs at every stage: task t's features
f_t^j = Σ_e g_{t,e}(x) f_e^j are its decoder's skips and bottleneck. The experts are the shared
parameters; the gates are task-specific.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from data.spec import TaskSpec
from models.base import MultiTaskModel
from models.blocks import decode, make_decoder
from models.encoder import ResNetEncoder

GATE_GRID = 8


class MMoE(MultiTaskModel):
    def __init__(self, tasks: tuple[TaskSpec, ...], backbone: str = "resnet50", pretrained: bool = False,
                 in_channels: int = 3, experts: int = 2):
        super().__init__()
        self.tasks = tuple(tasks)
        self.experts = nn.ModuleList(ResNetEncoder(backbone, pretrained, in_channels) for _ in range(experts))
        self.gates = nn.ModuleDict({t.name: nn.Linear(in_channels * GATE_GRID ** 2, experts) for t in tasks})
        self.decoders = nn.ModuleDict({t.name: make_decoder(t, self.experts[0].channels) for t in tasks})

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.experts.parameters())

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        outputs = [expert(x) for expert in self.experts]                       # [expert][stage]
        pooled = F.adaptive_avg_pool2d(x, GATE_GRID).flatten(1)
        # one softmax per task, shared by its 4 stages (as one graph node: a softmax per stage would sum
        # the gate's gradient in another order)
        gates = [torch.softmax(self.gates[t.name](pooled), dim=-1) for t in self.tasks]    # [B, experts]
        feats = [[mix(g, [out[j] for out in outputs]) for j in range(4)] for g in gates]
        return decode(self.decoders, self.tasks, feats, x.shape[-2:])


def mix(gate: torch.Tensor, maps: list[torch.Tensor]) -> torch.Tensor:
    """Σ_e g_e f_e: the experts' feature maps weighted per sample by a gate's [B, experts] softmax."""
    return sum(gate[:, e, None, None, None] * f for e, f in enumerate(maps))
