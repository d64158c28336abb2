"""PLE: progressive layered extraction (Tang, Liu, Zhao & Gong, RecSys 2020) on ResNet levels, as
LibMTL builds it: the stem and the four stages are five extraction levels.

At every level each task's representation (the image at level 0) goes through that level of the
``shared`` experts and of its own ``specific`` ones (1 and 1 by default, as CGC, models/cgc.py), and the
task's gate for that level, a softmax computed from the level's input, mixes their outputs into the
task's representation for the next level; after stages 1-4 it is the task decoder's skip or bottleneck.
The gate of level 0 is MMoE's (the image average-pooled to 8x8, one linear layer); of later levels one
linear layer of the input's channel means (LibMTL flattens the whole map into its gate: at 256 px that is
a 1M-input layer; the channel means are *chosen* instead). As in LibMTL, and unlike the paper's
recommender model, there is no gate of the shared experts: each task's stream runs through them, so the
shared experts run once per task. They are the shared parameters.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from data.spec import TaskSpec
from models.base import MultiTaskModel
from models.blocks import decode, make_decoder
from models.cgc import experts
from models.encoder import ResNetEncoder
from models.mmoe import GATE_GRID, mix


def _levels(encoder: ResNetEncoder) -> list[nn.Module]:
    return [encoder.stem, *encoder.stages]


class PLE(MultiTaskModel):
    def __init__(self, tasks: tuple[TaskSpec, ...], backbone: str = "resnet50", pretrained: bool = False,
                 in_channels: int = 3, shared: int = 1, specific: int = 1):
        super().__init__()
        self.tasks = tuple(tasks)
        self.shared, self.specific = experts("ple", tasks, backbone, pretrained, in_channels, shared, specific)
        first = self.shared[0]
        inputs = (in_channels * GATE_GRID ** 2, first.stem[0].out_channels, *first.channels[:3])
        self.gates = nn.ModuleDict({t.name: nn.ModuleList(nn.Linear(n, shared + specific) for n in inputs)
                                    for t in tasks})
        self.decoders = nn.ModuleDict({t.name: make_decoder(t, first.channels) for t in tasks})

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.shared.parameters())

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = []
        for t in self.tasks:
            experts = [*self.shared, *self.specific[t.name]]
            rep, maps = x, []
            for level, gate in enumerate(self.gates[t.name]):
                summary = F.adaptive_avg_pool2d(rep, GATE_GRID if level == 0 else 1).flatten(1)
                rep = mix(torch.softmax(gate(summary), dim=-1), [_levels(e)[level](rep) for e in experts])
                if level:
                    maps.append(rep)
            feats.append(maps)
        return decode(self.decoders, self.tasks, feats, x.shape[-2:])
