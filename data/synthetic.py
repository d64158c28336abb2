"""Vectorised drawing helpers for the synthetic stand-ins (shapes on a [-1, 1]^2 grid)."""
from __future__ import annotations

import numpy as np

from data.base import SPLITS, Split


def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """x (left to right) and y (top to bottom, anterior at the top) coordinates, each [1, S, S]."""
    c = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    y, x = np.meshgrid(c, c, indexing="ij")
    return x[None], y[None]


def col(a) -> np.ndarray:
    """Per-sample parameters as [N, 1, 1] for broadcasting against [1, S, S] grids."""
    return np.asarray(a, dtype=np.float32).reshape(-1, 1, 1)


def ellipse_dist(size: int, cx, cy, rx, ry) -> np.ndarray:
    """Normalised elliptic radius: < 1 inside the ellipse, [N, S, S]."""
    x, y = grid(size)
    return np.sqrt(((x - col(cx)) / col(rx)) ** 2 + ((y - col(cy)) / col(ry)) ** 2)


def ellipse(size: int, cx, cy, rx, ry) -> np.ndarray:
    return ellipse_dist(size, cx, cy, rx, ry) < 1


def smooth_noise(rng: np.random.Generator, n: int, size: int, cells: int = 6, channels: int = 1) -> np.ndarray:
    """Low-frequency noise in about [-1, 1], [N, channels, S, S] (bicubic up-sampled random grid)."""
    import torch  # torch's bicubic resampling; imported here so that the dataset registry stays torch-free
    import torch.nn.functional as F

    coarse = torch.from_numpy(rng.standard_normal((n, channels, cells, cells)).astype(np.float32))
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False).numpy()


def make_splits(generate, seed: int, n_train: int, n_val: int, n_test: int, size: int) -> dict[str, Split]:
    """Draw the three splits from independent streams of one seed (val/test never overlap train)."""
    streams = np.random.SeedSequence(seed).spawn(3)
    splits = {}
    offset = 0
    for name, n, stream in zip(SPLITS, (n_train, n_val, n_test), streams):
        split = generate(np.random.default_rng(stream), n, size)
        split.case_id = np.arange(offset, offset + n)
        offset += n
        splits[name] = split
    return splits
