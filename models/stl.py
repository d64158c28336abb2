"""STL: single-task learning, one encoder and one decoder per task (Table 2 baseline)."""
from __future__ import annotations

import torch
from torch import nn

from data.spec import TaskSpec
from models.base import MultiTaskModel
from models.blocks import make_decoder
from models.encoder import ResNetEncoder


class SingleTaskNet(MultiTaskModel):
    """A ResNet encoder and the decoder of one task."""

    def __init__(self, task: TaskSpec, backbone: str, pretrained: bool, in_channels: int):
        super().__init__()
        self.tasks = (task,)
        self.encoder = ResNetEncoder(backbone, pretrained, in_channels)
        self.decoder = make_decoder(task, self.encoder.channels)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {self.tasks[0].name: self.decoder(self.encoder(x), x.shape[-2:])}


class STL(MultiTaskModel):
    """Independent single-task networks; each is trained and selected on its own task only."""

    def __init__(self, tasks: tuple[TaskSpec, ...], backbone: str = "resnet50", pretrained: bool = False,
                 in_channels: int = 3):
        super().__init__()
        self.tasks = tuple(tasks)
        self.nets = nn.ModuleDict({t.name: SingleTaskNet(t, backbone, pretrained, in_channels) for t in tasks})

    def networks(self) -> list[tuple[tuple[TaskSpec, ...], nn.Module]]:
        return [(net.tasks, net) for net in self.nets.values()]

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for net in self.nets.values():
            out.update(net(x))
        return out
