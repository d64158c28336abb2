"""IMTL-L: impartial MTL, loss part (Liu et al., ICLR 2021): Σ_k (e^{s_k} L_k − s_k), the scales s_k learnt
with the network (initialised to 0: the plain sum at the start). torchjd's ``IMTLL`` scalarizer; its
weights are e^{s_k}. (LibMTL's IMTL combines this with IMTL-G; the gradient part alone is ``imtlg``.)"""
from __future__ import annotations

import torch
from torchjd.scalarization import IMTLL as _Scalarizer

from benchmark.training.weighting.base import LossWeighting


class IMTLL(LossWeighting):
    name = "imtll"

    def __init__(self, n_tasks: int):
        super().__init__(n_tasks)
        self.scalarizer = _Scalarizer(n_tasks)

    def combine(self, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.scalarizer(losses), torch.exp(self.scalarizer.log_scale).detach()
