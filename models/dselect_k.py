"""DSelect-k: differentiable selection of k experts (Hazimeh, Zhao, Chowdhery, Sathiamoorthy, Chen,
Mazumder, Hong & Chi, NeurIPS 2021) on ResNet stages, MMoE's experts (models/mmoe.py) with a sparse gate.

Each task's gate picks ``k`` of the ``experts`` shared encoders: selector i's binary code of the expert
index is relaxed by the smooth-step function S(z) (exactly 0 below −γ/2 and 1 above γ/2, so training
reaches exact selections), the k selectors are mixed by a softmax, and the resulting expert weights mix
the experts' outputs at every stage. Logits from the image average-pooled to 8x8 (MMoE's gate input;
LibMTL flattens the whole image). Defaults k = 2, γ = 1 (LibMTL's ``--num_nonzeros``, ``--kgamma``) and 4
experts (*chosen*: the fewest at which choosing 2 is a selection; LibMTL requires the count). Initialised
as the authors' code: z-logits U(−γ/100, γ/100), w-logits U(−0.05, 0.05).

*Chosen*, not done: the authors' entropy regulariser of the selectors (LibMTL: weight 1e-6, back-propagated
inside ``forward``) -- negligible at that weight, and a backward pass inside the forward would be counted
once per task by a gradient weighting. Expert counts that are not a power of 2 (which need the authors'
second regulariser, against mass on codes with no expert) are refused.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from data.spec import TaskSpec
from models.base import MultiTaskModel
from models.blocks import decode, make_decoder
from models.encoder import ResNetEncoder
from models.mmoe import GATE_GRID, mix


def smooth_step(t: torch.Tensor, gamma: float) -> torch.Tensor:
    """The cubic smooth-step of DSelect-k (eq. 2): 0 for t <= −γ/2, 1 for t >= γ/2, C¹ in between."""
    inner = -2 / gamma ** 3 * t ** 3 + 3 / (2 * gamma) * t + 0.5
    return torch.where(t <= -gamma / 2, torch.zeros_like(t), torch.where(t >= gamma / 2, torch.ones_like(t), inner))


class DSelectK(MultiTaskModel):
    def __init__(self, tasks: tuple[TaskSpec, ...], backbone: str = "resnet50", pretrained: bool = False,
                 in_channels: int = 3, experts: int = 4, k: int = 2, gamma: float = 1.0):
        super().__init__()
        bits = max(1, math.ceil(math.log2(experts)))
        if experts < 2 or experts != 2 ** bits:
            raise ValueError(f"dselect_k: the expert count must be a power of 2 (>= 2), got {experts}")
        if k < 1 or gamma <= 0:
            raise ValueError(f"dselect_k: k must be >= 1 and gamma > 0, got k={k}, gamma={gamma}")
        self.tasks, self.k, self.bits, self.gamma = tuple(tasks), k, bits, gamma
        self.experts = nn.ModuleList(ResNetEncoder(backbone, pretrained, in_channels) for _ in range(experts))
        inputs = in_channels * GATE_GRID ** 2
        self.z_logits = nn.ModuleDict({t.name: nn.Linear(inputs, k * bits) for t in tasks})
        self.w_logits = nn.ModuleDict({t.name: nn.Linear(inputs, k) for t in tasks})
        for p in self.z_logits.parameters():
            nn.init.uniform_(p, -gamma / 100, gamma / 100)
        for p in self.w_logits.parameters():
            nn.init.uniform_(p, -0.05, 0.05)
        # expert e's binary code, most significant bit first: [experts, bits]
        self.register_buffer("codes", torch.tensor([[(e >> (bits - 1 - b)) & 1 for b in range(bits)]
                                                    for e in range(experts)], dtype=torch.bool), persistent=False)
        self.decoders = nn.ModuleDict({t.name: make_decoder(t, self.experts[0].channels) for t in tasks})

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.experts.parameters())

    def gate(self, task: str, pooled: torch.Tensor) -> torch.Tensor:
        """The [B, experts] expert weights of ``task``: Σ_i softmax(w)_i Π_b (S(z_ib) or 1 − S(z_ib))."""
        s = smooth_step(self.z_logits[task](pooled).view(-1, self.k, 1, self.bits), self.gamma)
        selectors = torch.where(self.codes, s, 1 - s).prod(-1)                      # [B, k, experts]
        return torch.einsum("bk,bke->be", torch.softmax(self.w_logits[task](pooled), dim=-1), selectors)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        outputs = [expert(x) for expert in self.experts]                         # [expert][stage]
        pooled = F.adaptive_avg_pool2d(x, GATE_GRID).flatten(1)
        gates = [self.gate(t.name, pooled) for t in self.tasks]           # once per task, shared by its 4 stages
        feats = [[mix(g, [out[j] for out in outputs]) for j in range(4)] for g in gates]
        return decode(self.decoders, self.tasks, feats, x.shape[-2:])
