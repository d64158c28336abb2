"""MTAN: multi-task attention network on a ResNet encoder (Liu et al., CVPR 2019; Fig. 1).

Per task t and stage j an attention mask A_t^j = g_t^j(U^j) (stage 1) or
g_t^j([U^j, a_t^{j-1}]) (stages 2-4) gates the stage output: a_t^j = A_t^j * P^j. The attended
features pass through a shared block (residual block + pooling) to the next stage. Task t's decoder
receives a_t^1..a_t^4 (a_t^4 is its bottleneck): everything it sees has passed its own attention
(the paper is silent on MTAN with U-Net decoders; docs/architecture.md).
"""
from __future__ import annotations

import torch
from torch import nn

from data.spec import TaskSpec
from models.base import MultiTaskModel
from models.blocks import attention_blocks, decode, make_decoder, shared_blocks
from models.encoder import ResNetEncoder


class MTAN(MultiTaskModel):
    def __init__(self, tasks: tuple[TaskSpec, ...], backbone: str = "resnet50", pretrained: bool = False,
                 in_channels: int = 3):
        super().__init__()
        self.tasks = tuple(tasks)
        self.encoder = ResNetEncoder(backbone, pretrained, in_channels)
        ch = self.encoder.channels
        self.attention = attention_blocks(ch, len(tasks))
        self.shared = shared_blocks(self.encoder.block_type, ch)
        self.decoders = nn.ModuleDict({t.name: make_decoder(t, self.decoder_channels()) for t in tasks})

    def decoder_channels(self) -> tuple[int, ...]:
        return self.encoder.channels

    def mask_source(self, k: int) -> int:
        """Index of the task whose mask gates task k's features."""
        return k

    def attended_features(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[list[torch.Tensor]]]:
        """The encoder half of the method: the shared encoder's stage outputs P^1..P^4 and, per
        task, the gated features of the four stages."""
        ntasks = len(self.tasks)
        shared: list[torch.Tensor] = []
        feats: list[list[torch.Tensor]] = [[] for _ in range(ntasks)]
        prev: list[torch.Tensor | None] = [None] * ntasks
        x = self.encoder.stem(x)
        for j in range(4):
            body, last = self.encoder.split_stage(j)
            u = body(x)
            p = last(u)
            masks = [g(u if prev[k] is None else torch.cat([u, prev[k]], 1))
                     for k, g in enumerate(self.attention[j])]
            for k in range(ntasks):
                a = masks[self.mask_source(k)] * p
                feats[k].append(a)
                if j < 3:
                    prev[k] = self.shared[j](a)
            shared.append(p)
            x = p
        return shared, feats

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return decode(self.decoders, self.tasks, self.attended_features(x)[1], x.shape[-2:])
