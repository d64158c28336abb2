"""Dynamic Weight Averaging (Liu et al. 2019), the paper's weighting (Sec. 2.2)."""
from __future__ import annotations

import numpy as np
import torch

from benchmark.training.weighting.base import LossWeighting


class DWA(LossWeighting):
    """λ_k(e) = K·exp(w_k/T) / Σ_j exp(w_j/T) with w_k = L_k(e-1) / L_k(e-2), where L_k(e) is task k's
    training loss averaged over epoch e; λ_k = 1 in the first two epochs. The weights sum to K."""

    name = "dwa"

    def __init__(self, n_tasks: int, T: float = 2.0):
        super().__init__(n_tasks)
        self.temperature = T
        self.history: list[np.ndarray] = []
        self._epoch_weights = torch.ones(n_tasks)

    def weights(self) -> np.ndarray:
        """Weights for the next epoch, from the epochs recorded so far."""
        if len(self.history) < 2:
            return np.ones(self.n_tasks)
        w = self.history[-1] / self.history[-2]
        e = np.exp((w - w.max()) / self.temperature)  # shifted for stability; the ratio is unchanged
        return self.n_tasks * e / e.sum()

    def start_epoch(self, epoch: int) -> None:
        self._epoch_weights = torch.as_tensor(self.weights(), dtype=torch.float32)

    def end_epoch(self, epoch_mean_losses: np.ndarray) -> None:
        self.history.append(np.asarray(epoch_mean_losses, dtype=np.float64))

    def combine(self, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weights = self._epoch_weights.to(losses.device)
        return (weights * losses).sum(), weights

    def get_extra_state(self) -> dict:
        return {"history": [h.tolist() for h in self.history]}

    def set_extra_state(self, state: dict) -> None:
        self.history = [np.asarray(h, dtype=np.float64) for h in state["history"]]
