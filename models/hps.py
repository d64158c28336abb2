"""HPS: hard parameter sharing, one shared encoder and one decoder per task (Fig. 1)."""
from __future__ import annotations

import torch
from torch import nn

from data.spec import TaskSpec
from models.base import MultiTaskModel
from models.blocks import decode, make_decoder
from models.encoder import ResNetEncoder


class HPS(MultiTaskModel):
    def __init__(self, tasks: tuple[TaskSpec, ...], backbone: str = "resnet50", pretrained: bool = False,
                 in_channels: int = 3):
        super().__init__()
        self.tasks = tuple(tasks)
        self.encoder = ResNetEncoder(backbone, pretrained, in_channels)
        self.decoders = nn.ModuleDict({t.name: make_decoder(t, self.decoder_channels()) for t in tasks})

    def decoder_channels(self) -> tuple[int, ...]:
        return self.encoder.channels

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.encoder(x)
        return decode(self.decoders, self.tasks, [feats] * len(self.tasks), x.shape[-2:])
