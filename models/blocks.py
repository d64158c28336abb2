"""Building blocks shared by the methods: conv units, decoders (Sec. 2.1) and MTAN-style blocks."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from data.spec import TaskSpec


def conv_bn_relu(cin: int, cout: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class UpBlock(nn.Module):
    """Bilinear x2 up-sampling to the skip's size, concatenation, two 3x3 conv units (U-Net style)."""

    def __init__(self, cin: int, cskip: int, cout: int):
        super().__init__()
        self.convs = nn.Sequential(conv_bn_relu(cin + cskip, cout), conv_bn_relu(cout, cout))

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.convs(torch.cat([x, skip], 1))


class PixelDecoder(nn.Module):
    """Pixel-level decoder (segmentation, dose): skips from stages 3, 2, 1 into three bilinear
    up-sampling blocks, a final 1x1 conv, and bilinear resizing to the input resolution."""

    def __init__(self, channels: tuple[int, ...], out_channels: int, widths: tuple[int, ...] = (256, 128, 64)):
        super().__init__()
        ins = (channels[3],) + widths[:-1]
        self.ups = nn.ModuleList(UpBlock(cin, cskip, w) for cin, cskip, w in zip(ins, channels[2::-1], widths))
        self.head = nn.Conv2d(widths[-1], out_channels, 1)

    def forward(self, feats: list[torch.Tensor], size: tuple[int, int]) -> torch.Tensor:
        x = feats[3]
        for up, skip in zip(self.ups, feats[2::-1]):
            x = up(x, skip)
        return F.interpolate(self.head(x), size=size, mode="bilinear", align_corners=False)


class ImageDecoder(nn.Module):
    """Image-level decoder (classification): starts at stage 1 and goes down through four stride-2
    layers; after each of the first three the next stage's features join through a skip
    (concatenation + 1x1 conv); then global average pooling and a fully connected layer.
    Returns logits: sigmoid/softmax belong to the loss and the metrics."""

    def __init__(self, channels: tuple[int, ...], out_channels: int, widths: tuple[int, ...] = (64, 128, 256, 512)):
        super().__init__()
        self.entry = conv_bn_relu(channels[0], widths[0], 1)
        self.downs = nn.ModuleList(conv_bn_relu(widths[k], widths[k], 3, 2) for k in range(3))
        self.merges = nn.ModuleList(conv_bn_relu(widths[k] + channels[k + 1], widths[k + 1], 1) for k in range(3))
        self.last_down = conv_bn_relu(widths[3], widths[3], 3, 2)
        self.fc = nn.Linear(widths[3], out_channels)

    def forward(self, feats: list[torch.Tensor], size: tuple[int, int] | None = None) -> torch.Tensor:
        x = self.entry(feats[0])
        for down, merge, skip in zip(self.downs, self.merges, feats[1:]):
            x = down(x)
            if x.shape[-2:] != skip.shape[-2:]:  # odd input sizes
                x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = merge(torch.cat([x, skip], 1))
        return self.fc(self.last_down(x).mean((2, 3)))


def make_decoder(task: TaskSpec, channels: tuple[int, ...]) -> nn.Module:
    """The decoder a task's kind calls for; ``channels`` are the four feature maps it receives."""
    cls = PixelDecoder if task.kind == "pixel" else ImageDecoder
    return cls(channels, task.num_outputs)


def decode(decoders: nn.ModuleDict, tasks: tuple[TaskSpec, ...], feats: list[list[torch.Tensor]],
           size: tuple[int, int]) -> dict[str, torch.Tensor]:
    """Run each task's decoder on its own list of feature maps."""
    return {t.name: decoders[t.name](f, size) for t, f in zip(tasks, feats)}


class AttentionBlock(nn.Sequential):
    """MTAN's task attention g: 1x1 conv, BN, ReLU, 1x1 conv, BN, sigmoid (Liu et al. 2019).

    CTAN splits the same pipeline into the task embedding block (first half, ``embed``) and the
    attention block (second half, ``mask``), see docs/architecture.md."""

    def __init__(self, cin: int, cmid: int, cout: int):
        super().__init__(conv_bn_relu(cin, cmid, 1),
                         nn.Sequential(nn.Conv2d(cmid, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.Sigmoid()))

    @property
    def embed(self) -> nn.Module:
        return self[0]

    @property
    def mask(self) -> nn.Module:
        return self[1]


class SharedBlock(nn.Module):
    """MTAN's shared block between stages: a residual block of the backbone's type with a 1x1
    projection (C_j -> C_{j+1}), then 2x2 max-pooling (ceil mode, like the strided stages). In CTAN
    this is the pooling block of eq. (1)."""

    def __init__(self, block_type: type, cin: int, cout: int):
        super().__init__()
        expansion = getattr(block_type, "expansion", 1)
        proj = nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.block = block_type(cin, cout // expansion, downsample=proj)
        self.pool = nn.MaxPool2d(2, 2, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(self.block(x))


def attention_blocks(channels: tuple[int, ...], ntasks: int) -> nn.ModuleList:
    """Per stage j, one attention block per task: C_1 -> C_1/4 -> C_1 at stage 1 (U^1 alone),
    2C_j -> C_j/4 -> C_j afterwards (U^j concatenated with the previous attended features)."""
    return nn.ModuleList(
        nn.ModuleList(AttentionBlock(c if j == 0 else 2 * c, c // 4, c) for _ in range(ntasks))
        for j, c in enumerate(channels))


def shared_blocks(block_type: type, channels: tuple[int, ...]) -> nn.ModuleList:
    return nn.ModuleList(SharedBlock(block_type, channels[j], channels[j + 1]) for j in range(3))
