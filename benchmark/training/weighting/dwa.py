"""Dynamic Weight Averaging (Liu et al. 2019, used by the paper in Sec. 2.2)."""
from __future__ import annotations

import numpy as np


class DWA:
    """λ_k(e) = K·exp(w_k/T) / Σ_j exp(w_j/T) with w_k = L_k(e-1) / L_k(e-2), where L_k(e) is task k's
    training loss averaged over epoch e; λ_k = 1 in the first two epochs. The weights sum to K."""

    def __init__(self, num_tasks: int, temperature: float = 2.0):
        self.num_tasks = num_tasks
        self.temperature = temperature
        self.history: list[np.ndarray] = []

    def weights(self) -> np.ndarray:
        """Weights for the next epoch, from the epochs recorded so far."""
        if len(self.history) < 2:
            return np.ones(self.num_tasks)
        w = self.history[-1] / self.history[-2]
        e = np.exp((w - w.max()) / self.temperature)  # shifted for stability; the ratio is unchanged
        return self.num_tasks * e / e.sum()

    def record(self, epoch_mean_losses) -> None:
        self.history.append(np.asarray(epoch_mean_losses, dtype=np.float64))

    def state_dict(self) -> dict:
        """What a checkpoint keeps: the epoch-mean losses recorded so far."""
        return {"history": [h.tolist() for h in self.history]}

    def load_state_dict(self, state: dict) -> None:
        self.history = [np.asarray(h, dtype=np.float64) for h in state["history"]]
