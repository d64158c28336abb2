"""STCH: smooth Tchebycheff scalarization (Lin, Zhang, Yang, Zhang & Zhang, ICML 2024), as its authors'
MTL code and LibMTL run it: for ``warmup_epoch`` epochs the sum of log-losses; in epoch ``warmup_epoch``
that sum again while the mean losses are collected as the nadir point z; after it
K μ log Σ_k exp(log(L_k / z_k) / μ), torchjd's ``STCH`` scalarizer (equal preference, no ideal-point shift)
on the log-normalised losses. Defaults μ = 1, warm-up 4 epochs: LibMTL's (``STCH_mu``, ``STCH_warmup_epoch``).
A run of ``warmup_epoch`` + 1 epochs or fewer never leaves the log-sum phase."""
from __future__ import annotations

import torch
from torchjd.scalarization import STCH as _Scalarizer

from benchmark.training.weighting.base import LossWeighting, loss_weights

_EPS = 1e-20      # LibMTL's, inside each log


class STCH(LossWeighting):
    name = "stch"

    def __init__(self, n_tasks: int, mu: float = 1.0, warmup_epoch: int = 4):
        super().__init__(n_tasks)
        if warmup_epoch < 0:
            raise ValueError(f"stch: warmup_epoch must be >= 0, got {warmup_epoch}")
        self.scalarizer = _Scalarizer(mu, weights=torch.ones(n_tasks))
        self.warmup_epoch = warmup_epoch
        self.epoch = 0
        # the nadir point's running sum and count (epoch warmup_epoch), then the point itself
        self.register_buffer("loss_sum", torch.zeros(n_tasks, dtype=torch.float64))
        self.register_buffer("loss_count", torch.zeros((), dtype=torch.int64))
        self.register_buffer("nadir", torch.full((n_tasks,), float("nan"), dtype=torch.float64))

    def start_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def combine(self, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.epoch <= self.warmup_epoch:
            if self.epoch == self.warmup_epoch:
                self.loss_sum += losses.detach().to(self.loss_sum.device, torch.float64)
                self.loss_count += 1
            loss = torch.log(losses + _EPS).sum()
        else:
            if torch.isnan(self.nadir).any():
                if int(self.loss_count) == 0:
                    raise ValueError(f"stch: no losses were collected in epoch {self.warmup_epoch} for its nadir "
                                     "point (a resumed run must resume from a checkpoint that holds them)")
                self.nadir.copy_(self.loss_sum / self.loss_count)
            nadir = self.nadir.to(losses.device, losses.dtype)
            loss = self.n_tasks * self.scalarizer(torch.log(losses / nadir + _EPS))
        return loss, loss_weights(loss, losses)
