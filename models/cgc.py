"""CGC: customized gate control (Tang, Liu, Zhao & Gong, RecSys 2020, the single-level PLE) on ResNet
stages, as LibMTL builds it from whole encoders.

``shared`` ResNet encoders serve every task and each task has ``specific`` encoders of its own (1 and 1
by default: *chosen*, the smallest CGC; LibMTL requires the numbers). Task t's gate, a softmax over the
shared experts and its own computed from the image (average-pooled to 8x8, one linear layer: MMoE's gate,
models/mmoe.py), mixes their outputs at every stage into t's skips and bottleneck. The shared experts
are the shared parameters; a task's own experts and gate only get its loss.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from data.spec import TaskSpec
from models.base import MultiTaskModel
from models.blocks import decode, make_decoder
from models.encoder import ResNetEncoder
from models.mmoe import GATE_GRID, mix


class CGC(MultiTaskModel):
    def __init__(self, tasks: tuple[TaskSpec, ...], backbone: str = "resnet50", pretrained: bool = False,
                 in_channels: int = 3, shared: int = 1, specific: int = 1):
        super().__init__()
        self.tasks = tuple(tasks)
        self.shared, self.specific = experts("cgc", tasks, backbone, pretrained, in_channels, shared, specific)
        self.gates = nn.ModuleDict({t.name: nn.Linear(in_channels * GATE_GRID ** 2, shared + specific)
                                    for t in tasks})
        self.decoders = nn.ModuleDict({t.name: make_decoder(t, self.shared[0].channels) for t in tasks})

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.shared.parameters())

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        common = [expert(x) for expert in self.shared]                         # [expert][stage]
        pooled = F.adaptive_avg_pool2d(x, GATE_GRID).flatten(1)
        feats = []
        for t in self.tasks:
            outputs = common + [expert(x) for expert in self.specific[t.name]]
            gate = torch.softmax(self.gates[t.name](pooled), dim=-1)
            feats.append([mix(gate, [out[j] for out in outputs]) for j in range(4)])
        return decode(self.decoders, self.tasks, feats, x.shape[-2:])


def experts(name: str, tasks: tuple[TaskSpec, ...], backbone: str, pretrained: bool, in_channels: int,
            shared: int, specific: int) -> tuple[nn.ModuleList, nn.ModuleDict]:
    """CGC's and PLE's experts: ``shared`` encoders for every task, ``specific`` of each task's own."""
    if shared < 1 or specific < 0:
        raise ValueError(f"{name}: needs at least one shared expert and no negative count, got {shared}, {specific}")
    encoder = lambda: ResNetEncoder(backbone, pretrained, in_channels)          # noqa: E731
    return (nn.ModuleList(encoder() for _ in range(shared)),
            nn.ModuleDict({t.name: nn.ModuleList(encoder() for _ in range(specific)) for t in tasks}))
