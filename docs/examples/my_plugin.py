"""An example plug-in (docs/extending.md): one architecture and one loss weighting, registered from
outside the suite. Use it with

    python reproduce.py --plugin docs/examples/my_plugin.py --dataset stoic --method stl --method hps_gate \
        --weighting fixed --profile smoke --seeds 0

tests/test_plugins.py copies it into a temporary folder and runs exactly that.
"""
from __future__ import annotations

import torch
from torch import nn

from benchmark.plugins import register_method, register_weighting
from benchmark.training.weighting.base import LossWeighting
from benchmark.training.weighting.catalog import WeightingInfo
from models.base import MultiTaskModel
from models.blocks import decode, make_decoder
from models.catalog import MethodInfo
from models.encoder import ResNetEncoder


class HPSWithGate(MultiTaskModel):
    """Hard parameter sharing with one learned per-task channel gate on the bottleneck features."""

    def __init__(self, tasks, backbone: str = "resnet50", pretrained: bool = False, in_channels: int = 3):
        super().__init__()
        self.tasks = tuple(tasks)
        self.encoder = ResNetEncoder(backbone, pretrained, in_channels)
        last = self.encoder.channels[-1]
        self.gates = nn.ParameterDict({t.name: nn.Parameter(torch.zeros(last)) for t in self.tasks})
        self.decoders = nn.ModuleDict({t.name: make_decoder(t, self.encoder.channels) for t in self.tasks})

    def forward(self, x):
        feats = self.encoder(x)
        per_task = [[*feats[:-1], feats[-1] * (1 + self.gates[t.name]).view(1, -1, 1, 1)] for t in self.tasks]
        return decode(self.decoders, self.tasks, per_task, x.shape[-2:])


class FixedWeights(LossWeighting):
    """λ = (K·w, K·(1 - w)) for two tasks, equal weights otherwise: the simplest weighting there is."""

    name = "fixed"

    def __init__(self, n_tasks: int, w: float = 0.5):
        super().__init__(n_tasks)
        self.w = w

    def combine(self, losses):
        if self.n_tasks == 2:
            weights = torch.tensor([2 * self.w, 2 * (1 - self.w)], device=losses.device)
        else:
            weights = torch.ones(self.n_tasks, device=losses.device)
        return (weights * losses).sum(), weights


register_method(MethodInfo("hps_gate", "HPS+gate", "HPS with a per-task bottleneck gate (example plug-in)",
                           paper=False), HPSWithGate)
register_weighting(WeightingInfo("fixed", "Fixed", "loss", "fixed task weights (example plug-in)",
                                 (("w", 0.5),)), FixedWeights)
