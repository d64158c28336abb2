"""In-memory (or memory-mapped) splits of a dataset, as numpy arrays.

A split holds the image array, one target array per task, a case id per sample (patient or image:
what per-case metrics group by) and the dataset's extras such as OpenKBP's possible-dose mask.
Tensors and batches belong to training (``benchmark.training.batches``): nothing here imports torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

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
        if set(self.extras) != set(spec.extras):
            raise DataError(f"{where}: extras {sorted(self.extras)}, the dataset declares {sorted(spec.extras)}")
        for name, x in self.extras.items():
            if len(x) != n:
                raise DataError(f"{where}: extra {name!r} has {len(x)} rows for {n} images")


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
