"""In-memory (or memory-mapped) splits and the batch iterator shared by every dataset.

A split holds the image array, one target array per task, a case id per sample (patient or image:
what per-case metrics group by) and optional extras such as OpenKBP's possible-dose mask.
Batches are sliced straight from the arrays: no per-sample Python in the training loop.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import torch

from data.spec import DatasetSpec

SPLITS = ("train", "val", "test")


class DataError(ValueError):
    """Bad input data: the message names the file or value and what is wrong."""


@dataclass
class Split:
    image: np.ndarray                       # [N, C, H, W] float32
    targets: dict[str, np.ndarray]          # task -> [N, H, W] int64 | [N, 1, H, W] float32 | [N] int64
    case_id: np.ndarray                     # [N] case (patient or image) of each sample
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # e.g. dose_mask [N, H, W] bool

    def __len__(self) -> int:
        return len(self.image)

    def validate(self, spec: DatasetSpec, where: str) -> None:
        """Shapes and label ranges agree with the spec; one clear error otherwise."""
        n = len(self.image)
        if self.image.ndim != 4 or self.image.shape[1] != spec.in_channels:
            raise DataError(f"{where}: images must be [N, {spec.in_channels}, H, W], got {self.image.shape}")
        if not np.isfinite(self.image).all():
            raise DataError(f"{where}: images contain NaN or infinite values")
        h, w = self.image.shape[-2:]
        for task in spec.tasks:
            if task.name not in self.targets:
                raise DataError(f"{where}: no targets for task {task.name!r}")
            y = self.targets[task.name]
            expected = {"segmentation": (n, h, w), "regression": (n, 1, h, w)}.get(task.target, (n,))
            if y.shape != expected:
                raise DataError(f"{where}: task {task.name!r} targets must have shape {expected}, got {y.shape}")
            if task.target in ("segmentation", "multiclass", "binary"):
                limit = 2 if task.target == "binary" else task.num_outputs
                bad = (y < 0) | (y >= limit)
                if bad.any():
                    raise DataError(f"{where}: task {task.name!r} has label {int(y[bad].flat[0])} outside 0..{limit - 1}")
            elif not np.isfinite(y).all():
                raise DataError(f"{where}: task {task.name!r} targets contain NaN or infinite values")
        if len(self.case_id) != n:
            raise DataError(f"{where}: {len(self.case_id)} case ids for {n} images")


@dataclass
class TaskData:
    """A dataset ready for training: its spec, its three splits and where it came from."""

    spec: DatasetSpec
    splits: dict[str, Split]
    source: str                     # "synthetic" | "real"
    description: str = ""

    def validate(self) -> "TaskData":
        for name in SPLITS:
            if name not in self.splits or len(self.splits[name]) == 0:
                raise DataError(f"{self.spec.name} ({self.source}): split {name!r} is missing or empty")
            self.splits[name].validate(self.spec, f"{self.spec.name} ({self.source}) {name}")
        return self

    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.splits.items()}


def _as_tensor(a: np.ndarray, device: torch.device) -> torch.Tensor:
    # numpy may give size-1 axes (one-channel CT) any stride; torch then reads the batch as
    # channels-last and converts layouts in every conv. view() restores the standard strides, no copy.
    t = torch.from_numpy(np.ascontiguousarray(a))
    t = t.view(t.shape)
    if device.type == "cuda":  # page-locked host memory lets the copy overlap the previous step
        t = t.pin_memory()
    return t.to(device, non_blocking=True)


def batches(split: Split, batch_size: int, shuffle: bool = False, rng: np.random.Generator | None = None,
            device: torch.device | str = "cpu", drop_last: bool = False) -> Iterator[dict[str, torch.Tensor]]:
    """Yield ``{"image", <task>..., <extra>..., "index"}`` tensor batches sliced from the arrays."""
    device = torch.device(device)
    n = len(split)
    order = rng.permutation(n) if shuffle else np.arange(n)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        idx = order[start:start + batch_size]
        if not shuffle:  # contiguous slices are views: no copy for memory-mapped arrays
            idx = slice(start, min(start + batch_size, n))
        batch = {"image": _as_tensor(split.image[idx], device)}
        for name, y in split.targets.items():
            batch[name] = _as_tensor(y[idx], device)
        for name, x in split.extras.items():
            batch[name] = _as_tensor(x[idx], device)
        batch["index"] = torch.as_tensor(np.arange(n)[idx])
        yield batch
