"""CTAN: cross-task attention network (Kim et al. 2023, Sec. 2.1, Fig. 2).

CTAE, eq. (1): the encoder of MTAN with the masks applied in the cross direction,
    Â_t^j = Pool(A_{t'}^j ⊙ P^j),
where A_t^j comes from task t's task-embedding and attention blocks applied to U^j (j = 1) or
[U^j, Â_t^{j-1}] (j > 1), and Pool is the pooling (shared) block.
CTAB, eq. (2): at the bottleneck, each task's features E_t = A_{t'}^4 ⊙ P^4 are embedded to Ê_t and
    Ā_t = Ê_t · (Ê_{t'}^T · Ê_t)        (scaled by 1 / (N·sqrt(d)), see docs/architecture.md).
Decoders, Algorithm 1 line 29, D_t(Ā_t, U^{j∈[0,n]}): task t's decoder receives Ā_t as its
bottleneck and, as skips, the shared encoder's features at strides 4, 8, 16 (the stage outputs
P^1..P^3, the same skips HPS's decoders get; docs/architecture.md says why).
"""
from __future__ import annotations

import math
import warnings

import torch
from torch import nn

from data.spec import TaskSpec
from models.blocks import conv_bn_relu, decode
from models.mtan import MTAN


_WARNED_N1 = False  # the 1x1-bottleneck warning is shown once per process


def cross_task_attention(e_t: torch.Tensor, e_other: torch.Tensor, scale: bool = True) -> torch.Tensor:
    """Eq. (2) on [B, d, H, W] embeddings: Ā_t = Ê_t · (Ê_{t'}^T · Ê_t), with Ê as d x N matrices.

    Value and key are task t's embedding, the query is the other task's. With ``scale`` the product
    is divided by N·sqrt(d) (N = H·W positions), so it stays bounded as feature maps grow.
    """
    b, d, h, w = e_t.shape
    v = e_t.flatten(2)                      # [B, d, N]
    q = e_other.flatten(2)                  # [B, d, N]
    affinity = q.transpose(1, 2) @ v        # [B, N, N]: <ê_t'(p), ê_t(q)>
    out = v @ affinity                      # [B, d, N]
    if scale:
        out = out / (h * w * math.sqrt(d))
    return out.view(b, d, h, w)


class CTAB(nn.Module):
    """Cross-task attention bottleneck: per-task embedding (1x1 conv and BN; C -> d) then eq. (2).
    The paper names no activation; without one the embedding is zero-mean, so eq. (2)'s affinities
    compare positions instead of being dominated by a shared positive mean (``relu=True``, the
    alternative, measured in docs/architecture.md, CTAB)."""

    def __init__(self, channels: int, embed_channels: int, ntasks: int = 2, relu: bool = False):
        super().__init__()
        self.embed = nn.ModuleList(
            conv_bn_relu(channels, embed_channels, 1) if relu else
            nn.Sequential(nn.Conv2d(channels, embed_channels, 1, bias=False), nn.BatchNorm2d(embed_channels))
            for _ in range(ntasks))

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        global _WARNED_N1
        if feats[0].shape[-2:].numel() == 1 and not _WARNED_N1:  # once per process
            _WARNED_N1 = True
            warnings.warn("CTAN runs with a 1x1 bottleneck: eq. (2) has one position (N = 1), so CTAB only "
                          "scales each task's embedding by a cross-task similarity and does not attend over "
                          "space; give it an image of at least 48 px (docs/reproduction.md)", stacklevel=3)
        e = [emb(f) for emb, f in zip(self.embed, feats)]
        return [cross_task_attention(e[k], e[1 - k]) for k in range(len(e))]


class CTAN(MTAN):
    """CTAE in the encoder (cross-direction masks) and CTAB at the bottleneck; any pair of tasks."""

    def __init__(self, tasks: tuple[TaskSpec, ...], backbone: str = "resnet50", pretrained: bool = False,
                 in_channels: int = 3, ctab_relu: bool = False):
        if len(tasks) != 2:
            raise ValueError(f"CTAN is defined for a pair of tasks (eqs. 1-2), got {len(tasks)}")
        super().__init__(tasks, backbone, pretrained, in_channels)
        c4 = self.encoder.channels[3]
        self.ctab = CTAB(c4, c4 // 4, len(tasks), relu=ctab_relu)

    def decoder_channels(self) -> tuple[int, ...]:
        c = self.encoder.channels
        return c[:3] + (c[3] // 4,)

    def mask_source(self, k: int) -> int:
        return 1 - k

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        shared, attended = self.attended_features(x)
        bottleneck = self.ctab([f[3] for f in attended])
        return decode(self.decoders, self.tasks, [shared[:3] + [b] for b in bottleneck], x.shape[-2:])
