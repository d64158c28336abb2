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

    def every(self, k: int) -> "Split":
        """Every ``k``-th sample (views, no copy: memory-mapped arrays stay on disk)."""
        return Split(self.image[::k], {t: y[::k] for t, y in self.targets.items()}, self.case_id[::k],
                     {e: x[::k] for e, x in self.extras.items()})

    def take(self, idx: np.ndarray) -> "Split":
        """The samples at ``idx``, as contiguous copies (a fold's share of a pooled dataset)."""
        c = np.ascontiguousarray
        return Split(c(self.image[idx]), {t: c(y[idx]) for t, y in self.targets.items()}, self.case_id[idx],
                     {e: c(x[idx]) for e, x in self.extras.items()})

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
            expected = task.info.target_shape(task, n, h, w)
            if y.shape != expected:
                raise DataError(f"{where}: task {task.name!r} targets must have shape {expected}, got {y.shape}")
            problem = task.info.target_problem(task, y)
            if problem:
                raise DataError(f"{where}: task {task.name!r} {problem}")
        if len(self.case_id) != n:
            raise DataError(f"{where}: {len(self.case_id)} case ids for {n} images")
        if set(self.extras) != set(spec.extras):
            raise DataError(f"{where}: extras {sorted(self.extras)}, the dataset declares {sorted(spec.extras)}")
        for name, x in self.extras.items():
            if len(x) != n:
                raise DataError(f"{where}: extra {name!r} has {len(x)} rows for {n} images")


@dataclass
class Volumes:
    """Whole test patients of a 3D dataset cut into axial slices, for scores defined on volumes
    (OpenKBP's dose and DVH scores): every slice the possible-dose mask or a structure touches, the
    network's input at the training size and the reference at the dataset's native size.

    Rows are slices, a patient's slices contiguous and in axial order (``z``). ``structures`` holds
    one bit per structure of the dose task's ``dvh`` list.
    """

    image: np.ndarray                       # [N, C, S, S] float32, the network's input
    dose: np.ndarray                        # [N, H, W] float32, reference dose in Gy (native size)
    dose_mask: np.ndarray                   # [N, H, W] bool, the possible-dose mask
    structures: np.ndarray                  # [N, H, W] int32 bit masks
    voxel_mm: np.ndarray                    # [N, 3] float32, the patient's voxel size
    z: np.ndarray                           # [N] int64, the slice's index in the patient's volume
    case_id: np.ndarray                     # [N] patient of each slice

    def __len__(self) -> int:
        return len(self.image)

    def patients(self) -> list[tuple[object, slice]]:
        """(patient, rows) in order; a patient's rows are contiguous."""
        ids = self.case_id
        starts = [0] + [i for i in range(1, len(ids)) if ids[i] != ids[i - 1]] + [len(ids)]
        return [(ids[a], slice(a, b)) for a, b in zip(starts, starts[1:])]

    def take(self, idx: np.ndarray) -> "Split":
        """The samples at ``idx``, as contiguous copies (a fold's share of a pooled dataset)."""
        c = np.ascontiguousarray
        return Split(c(self.image[idx]), {t: c(y[idx]) for t, y in self.targets.items()}, self.case_id[idx],
                     {e: c(x[idx]) for e, x in self.extras.items()})

    def validate(self, spec: DatasetSpec, where: str) -> None:
        n = len(self.image)
        if self.image.ndim != 4 or self.image.shape[1] != spec.in_channels:
            raise DataError(f"{where}: images must be [N, {spec.in_channels}, H, W], got {self.image.shape}")
        native = self.dose.shape[1:]
        for name in ("dose", "dose_mask", "structures"):
            if getattr(self, name).shape != (n, *native):
                raise DataError(f"{where}: {name} must be {(n, *native)}, got {getattr(self, name).shape}")
        if self.voxel_mm.shape != (n, 3) or len(self.z) != n or len(self.case_id) != n:
            raise DataError(f"{where}: voxel_mm, z and case_id must have one row per slice")
        if not np.isfinite(self.dose).all():
            raise DataError(f"{where}: the reference dose contains NaN or infinite values")
        if len({c for c, _ in self.patients()}) != len(self.patients()):
            raise DataError(f"{where}: a patient's slices are not contiguous")


@dataclass
class TaskData:
    """A dataset ready for training: its spec, its three splits, where it came from and, for
    volume scores, its whole test patients."""

    spec: DatasetSpec
    splits: dict[str, Split]
    source: str                     # "synthetic" | "real"
    description: str = ""
    volumes: Volumes | None = None

    def validate(self) -> "TaskData":
        for name in SPLITS:
            if name not in self.splits or len(self.splits[name]) == 0:
                raise DataError(f"{self.spec.name} ({self.source}): split {name!r} is missing or empty")
            self.splits[name].validate(self.spec, f"{self.spec.name} ({self.source}) {name}")
        if self.volumes is not None:
            self.volumes.validate(self.spec, f"{self.spec.name} ({self.source}) test volumes")
        return self

    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.splits.items()}
