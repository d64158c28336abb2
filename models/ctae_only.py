"""CTAN without CTAB (an ablation the paper never ran): CTAE in the encoder, eq. (1), and task t's
decoder receives the shared skips P^1..P^3 and, as its bottleneck, the last CTAE output
E_t = A_{t'}^4 ⊙ P^4 (what CTAB would have embedded)."""
from __future__ import annotations

import torch

from models.blocks import decode
from models.mtan import MTAN


class CTAEOnly(MTAN):
    def mask_source(self, k: int) -> int:
        return 1 - k

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        shared, attended = self.attended_features(x)
        return decode(self.decoders, self.tasks, [shared[:3] + [f[3]] for f in attended], x.shape[-2:])
