"""Tensor batches sliced straight from a split's arrays: no per-sample Python in the training loop."""
from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from data.base import Split


def as_tensor(a: np.ndarray, device: torch.device) -> torch.Tensor:
    # numpy may give size-1 axes (one-channel CT) any stride; torch then reads the batch as
    # channels-last and converts layouts in every conv. view() restores the standard strides, no copy.
    t = torch.from_numpy(np.ascontiguousarray(a))
    t = t.view(t.shape)
    if device.type == "cuda":  # page-locked host memory lets the copy overlap the previous step
        t = t.pin_memory()
    return t.to(device, non_blocking=True)


def batch_count(n: int, batch_size: int, drop_last: bool = False) -> int:
    """How many batches :func:`batches` yields for ``n`` rows (``drop_last`` keeps a lone short batch when
    ``n < batch_size``: a split smaller than a batch still trains)."""
    return n // batch_size if drop_last and n >= batch_size else -(-n // batch_size)


def batches(split: Split, batch_size: int, shuffle: bool = False, rng: np.random.Generator | None = None,
            device: torch.device | str = "cpu", drop_last: bool = False,
            channels_last: bool = False) -> Iterator[dict[str, torch.Tensor]]:
    """Yield ``{"image", <task>..., <extra>..., "index"}`` tensor batches sliced from the arrays
    (images in NHWC memory format with ``channels_last``, for a network converted to it)."""
    device = torch.device(device)
    n = len(split)
    order = rng.permutation(n) if shuffle else np.arange(n)
    for start in range(0, batch_count(n, batch_size, drop_last) * batch_size, batch_size):
        idx = order[start:start + batch_size]
        if not shuffle:  # contiguous slices are views: no copy for memory-mapped arrays
            idx = slice(start, min(start + batch_size, n))
        image = as_tensor(split.image[idx], device)
        batch = {"image": image.contiguous(memory_format=torch.channels_last) if channels_last else image}
        for name, y in split.targets.items():
            batch[name] = as_tensor(y[idx], device)
        for name, x in split.extras.items():
            batch[name] = as_tensor(x[idx], device)
        batch["index"] = torch.as_tensor(np.arange(n)[idx])
        yield batch
