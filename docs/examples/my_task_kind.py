"""An example task-kind plug-in (docs/extending.md): **image-level regression**, a kind the suite does not
have (its regression is per pixel), and a dataset that uses it -- "discs", grey images of one bright disc
whose pixels are segmented and whose area (% of the image) is regressed from the whole image. Use it with

    python reproduce.py --plugin docs/examples/my_task_kind.py --dataset discs --method stl --method hps \
        --profile smoke --seeds 0

tests/test_plugins.py copies this file (with docs/examples/my_plugin.py's architecture and weighting)
into a temporary folder outside the tree and runs a grid of them into the report.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.plugins import register_dataset, register_task_kind
from benchmark.training.kinds import TaskKind
from data import DatasetEntry
from data.base import DataError, Split, TaskData
from data.real.reader import Reader
from data.spec import DatasetSpec, KindInfo, MetricSpec, TaskSpec
from data.synthetic import ellipse, make_splits


class ImageRegression(TaskKind):
    """One real value per image: L1 on targets divided by ``task.scale``; the mean absolute error over
    images (``image_mae``, in the target's unit). Targets are ``[n, C]`` (``KindInfo.target_shape``), the
    image decoder's output ``[B, C]``: the same shape, nothing broadcast."""

    info = KindInfo("image_regression", "image", ("image_mae",), "l1", labels=False)

    def make_loss(self, task):
        return lambda pred, target: F.l1_loss(pred, target / task.scale)

    def statistics(self, task, out, batch):
        err = (out * task.scale - batch[task.name]).abs().flatten(1)       # [B, C]
        return {"abs": err.sum(1), "count": torch.full((len(err),), err.shape[1], dtype=torch.float32)}

    def result(self, task, parts, case_id):
        return {"image_mae": float(parts["abs"].sum(dtype=np.float64) / parts["count"].sum(dtype=np.float64))}

    def cases(self, task, parts, case_id):
        """Per case its mean error, weighted by its number of values: their weighted mean is the set's."""
        ids, inverse = np.unique(case_id, return_inverse=True)
        err, count = np.bincount(inverse, parts["abs"]), np.bincount(inverse, parts["count"])
        return [{"case": c, "metric": "image_mae", "part": "", "value": err[i] / count[i], "weight": float(count[i])}
                for i, c in enumerate(ids)]


# The kind first: the dataset's TaskSpec names it.
register_task_kind(ImageRegression, metrics=(MetricSpec("image_mae", "MAE", "%", higher_is_better=False),))

SPEC = DatasetSpec("discs", "Discs", (TaskSpec("segmentation", "pixel", "segmentation", 2, "dice"),
                                      TaskSpec("area", "image", "image_regression", 1, "image_mae", scale=10.0)),
                   in_channels=1, paper_batch_size=8, native_size=64)


def _draw(rng: np.random.Generator, n: int, size: int) -> Split:
    cx, cy = rng.uniform(-0.3, 0.3, n), rng.uniform(-0.3, 0.3, n)
    r = rng.uniform(0.15, 0.5, n)
    mask = ellipse(size, cx, cy, r, r)
    area = 100.0 * mask.reshape(n, -1).mean(1, keepdims=True)             # [n, 1], % of the image
    image = (0.2 + 0.6 * mask + rng.normal(0, 0.1, mask.shape)).astype(np.float32)[:, None]
    return Split(image, {"segmentation": mask.astype(np.int64), "area": area.astype(np.float32)}, np.arange(n))


def synthetic(seed: int, n_train: int, n_val: int, n_test: int, size: int) -> TaskData:
    return TaskData(SPEC, make_splits(_draw, seed, n_train, n_val, n_test, size), "synthetic",
                    "synthetic discs").validate()


class StandInOnly(Reader):
    """This example has no real files, only its stand-in (a reader of real files: docs/examples/my_dataset.py)."""

    LAYOUT = "no real files: the discs example is synthetic only"

    def inventory(self, root: Path) -> list[Path]:
        raise DataError(f"{root}: the discs example has no real files; run it with --data synthetic")

    def read(self, root: Path, size: int, writer, bad) -> dict:
        raise DataError(f"{root}: the discs example has no real files")


register_dataset(DatasetEntry(SPEC, synthetic, StandInOnly(), group="user"))
