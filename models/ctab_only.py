"""CTAB on HPS (an ablation the paper never ran): the HPS encoder, and at its bottleneck CTAB,
eq. (2), on the shared stage-4 features embedded per task: task t's decoder receives the shared
skips P^1..P^3 and Ā_t."""
from __future__ import annotations

import torch

from models.blocks import decode
from models.ctan import CTAB
from models.hps import HPS


class CTABOnly(HPS):
    def __init__(self, tasks, backbone: str = "resnet50", pretrained: bool = False, in_channels: int = 3):
        if len(tasks) != 2:
            raise ValueError(f"CTAB is defined for a pair of tasks (eq. 2), got {len(tasks)}")
        super().__init__(tasks, backbone, pretrained, in_channels)
        c4 = self.encoder.channels[3]
        self.ctab = CTAB(c4, c4 // 4, len(self.tasks))

    def decoder_channels(self) -> tuple[int, ...]:
        c = self.encoder.channels
        return c[:3] + (c[3] // 4,)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.encoder(x)
        bottleneck = self.ctab([feats[3]] * len(self.tasks))
        return decode(self.decoders, self.tasks, [feats[:3] + [b] for b in bottleneck], x.shape[-2:])
