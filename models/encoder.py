"""ResNet encoder exposing the stem and the four stages (paper Sec. 2.1, "Encoder and Decoder").

The paper uses ResNet-50 pre-trained on ImageNet; ResNet-18/34 serve CPU profiles. Each stage can be
split into its intermediate blocks (MTAN's ``u_b``, the paper's U^j) and its last block (``u_t``,
the paper's P^j) so that attention modules can sit around them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn
from torchvision import models as tvm

from models.catalog import BACKBONES as CATALOG_BACKBONES


@dataclass(frozen=True)
class BackboneInfo:
    constructor: object
    weights: object  # torchvision weights enum member (IMAGENET1K_V1, as of the paper's PyTorch 1.9)


BACKBONES = {
    "resnet18": BackboneInfo(tvm.resnet18, tvm.ResNet18_Weights.IMAGENET1K_V1),
    "resnet34": BackboneInfo(tvm.resnet34, tvm.ResNet34_Weights.IMAGENET1K_V1),
    "resnet50": BackboneInfo(tvm.resnet50, tvm.ResNet50_Weights.IMAGENET1K_V1),
}


if tuple(BACKBONES) != CATALOG_BACKBONES:  # one list of names: models/catalog.py
    raise ImportError(f"models.encoder.BACKBONES {list(BACKBONES)} and models.catalog.BACKBONES disagree")


class PretrainedWeightsMissing(FileNotFoundError):
    """ImageNet weights are not in the local torch cache (nothing is downloaded at run time)."""


def pretrained_weights_path(backbone: str) -> str:
    """Where torchvision keeps the backbone's IMAGENET1K_V1 checkpoint (``$TORCH_HOME/hub/checkpoints``)."""
    url = BACKBONES[backbone].weights.url
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(url))


def load_pretrained_state(backbone: str) -> dict:
    path = pretrained_weights_path(backbone)
    if not os.path.isfile(path):
        url = BACKBONES[backbone].weights.url
        raise PretrainedWeightsMissing(
            f"ImageNet weights for {backbone} not found at {path}. This suite never downloads at run "
            f"time: on a machine with internet run `python -c \"import torchvision; "
            f"torchvision.models.{backbone}(weights='IMAGENET1K_V1')\"` (or download {url}) and copy "
            f"the file to {path}, or set TORCH_HOME to the folder whose hub/checkpoints holds it.")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated download is the usual cause
        raise PretrainedWeightsMissing(f"ImageNet weights file {path} is unreadable ({exc}); "
                                       f"delete it and copy a fresh one.") from None


def _adapt_first_conv(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    """Re-shape the RGB stem for ``in_channels`` inputs, keeping pretrained filters meaningful.

    For one channel (CT) the RGB filters are summed, so a grey image gives the response the
    pretrained network gives to the same image replicated to RGB; other counts tile the mean filter.
    """
    if in_channels == 3:
        return conv
    new = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding, bias=False)
    with torch.no_grad():
        w = conv.weight
        new.weight.copy_(w.sum(1, keepdim=True) if in_channels == 1
                         else w.mean(1, keepdim=True).repeat(1, in_channels, 1, 1) * 3.0 / in_channels)
    return new


class ResNetEncoder(nn.Module):
    """Stem (7x7 conv, BN, ReLU, max-pool: the paper's input embedding S^0) and stages 1-4.

    ``forward`` returns the four stage outputs, at strides 4, 8, 16 and 32.
    """

    def __init__(self, backbone: str = "resnet50", pretrained: bool = False, in_channels: int = 3):
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r}; choose one of {list(BACKBONES)}")
        net = BACKBONES[backbone].constructor(weights=None)
        if pretrained:
            net.load_state_dict(load_pretrained_state(backbone))
        net.conv1 = _adapt_first_conv(net.conv1, in_channels)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.stages = nn.ModuleList([net.layer1, net.layer2, net.layer3, net.layer4])
        self.block_type = type(net.layer1[0])
        self.channels = tuple(_out_channels(stage)
                              for stage in self.stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats

    def split_stage(self, j: int) -> tuple[nn.Module, nn.Module]:
        """Stage j as (all blocks but the last, the last block): the paper's U^j -> P^j."""
        stage = self.stages[j]
        return stage[:-1], stage[-1]


def _out_channels(stage: nn.Sequential) -> int:
    last = stage[-1]
    return (last.bn3 if hasattr(last, "bn3") else last.bn2).num_features
