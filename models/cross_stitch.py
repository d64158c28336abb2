"""Cross-stitch networks (Misra, Shrivastava, Gupta & Hebert, CVPR 2016) on ResNet stages.

One ResNet encoder per task; after every stage a cross-stitch unit mixes the tasks' stage outputs,
x̃_t = Σ_s α_{t,s} ⊙ x_s with a learnt weight per (task, task, channel), initialised to 0.9 for the
task's own features and 0.1 shared among the others (the paper's recommended initialisation). The
mixed features continue through each task's next stage and are its decoder's skips and bottleneck.
Every task's loss depends on every encoder through the units: all of them are shared parameters.
"""
from __future__ import annotations

import torch
from torch import nn

from data.spec import TaskSpec
from models.base import MultiTaskModel
from models.blocks import decode, make_decoder
from models.encoder import ResNetEncoder


class CrossStitchUnit(nn.Module):
    def __init__(self, ntasks: int, channels: int, own: float = 0.9):
        super().__init__()
        init = torch.full((ntasks, ntasks), (1 - own) / max(ntasks - 1, 1))
        init.fill_diagonal_(own)
        self.alpha = nn.Parameter(init[:, :, None].repeat(1, 1, channels))   # [task, source, channel]

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        stacked = torch.stack(xs)                                              # [source, B, C, H, W]
        return list(torch.einsum("tsc,sbchw->tbchw", self.alpha, stacked).unbind(0))


class CrossStitch(MultiTaskModel):
    def __init__(self, tasks: tuple[TaskSpec, ...], backbone: str = "resnet50", pretrained: bool = False,
                 in_channels: int = 3):
        super().__init__()
        self.tasks = tuple(tasks)
        self.encoders = nn.ModuleList(ResNetEncoder(backbone, pretrained, in_channels) for _ in tasks)
        ch = self.encoders[0].channels
        self.units = nn.ModuleList(CrossStitchUnit(len(tasks), c) for c in ch)
        self.decoders = nn.ModuleDict({t.name: make_decoder(t, ch) for t in tasks})

    def shared_parameters(self) -> list[nn.Parameter]:
        return [*self.encoders.parameters(), *self.units.parameters()]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        xs = [enc.stem(x) for enc in self.encoders]
        feats: list[list[torch.Tensor]] = [[] for _ in self.tasks]
        for j, unit in enumerate(self.units):
            xs = unit([enc.stages[j](h) for enc, h in zip(self.encoders, xs)])
            for k, h in enumerate(xs):
                feats[k].append(h)
        return decode(self.decoders, self.tasks, feats, x.shape[-2:])
