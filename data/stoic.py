"""STOIC2021 (Revel et al. 2021): COVID-19 diagnosis and severity from chest CT (both binary, AUC %).

In the public labels every severe case is COVID-positive (about 60 % positive). Each patient is one
2.5D image: three axial slices as channels (see docs/datasets.md).
The synthetic stand-in draws lungs with peripheral multifocal ground-glass opacities for COVID (more
extensive, with consolidation, when severe) and, for some negatives, a single dense focus (another
pneumonia) or small nodules, so that both tasks read the same findings.
"""
from __future__ import annotations

import numpy as np

from data.base import Split, TaskData
from data.spec import DatasetSpec, TaskSpec
from data.synthetic import col, ellipse, ellipse_dist, make_splits, smooth_noise

SPEC = DatasetSpec(
    name="stoic",
    tasks=(
        TaskSpec("covid", "image", "binary", 1, "auc", True, "%", ("negative", "positive")),
        TaskSpec("severity", "image", "binary", 1, "auc", True, "%", ("not severe", "severe")),
    ),
    in_channels=3,
    paper_batch_size=8,
    native_size=256,
    description="chest CT, three axial slices per patient; COVID-19 and severity",
)

P_COVID, P_SEVERE_GIVEN_COVID = 0.6, 0.3


def _draw(rng: np.random.Generator, n: int, size: int) -> Split:
    covid = rng.random(n) < P_COVID
    severe = covid & (rng.random(n) < P_SEVERE_GIVEN_COVID)
    other = ~covid & (rng.random(n) < 0.5)  # another pneumonia: a single dense focus
    extent = np.where(severe, rng.uniform(0.35, 0.8, n), rng.uniform(0.1, 0.45, n)) * covid
    sx = rng.uniform(-0.04, 0.04, n)
    body = ellipse(size, sx, 0, rng.uniform(0.85, 0.95, n), rng.uniform(0.65, 0.75, n))
    lungs = [ellipse_dist(size, sx + side * rng.uniform(0.38, 0.45, n), rng.uniform(-0.08, 0.02, n),
                          rng.uniform(0.26, 0.32, n), rng.uniform(0.45, 0.55, n)) for side in (-1, 1)]
    lung = (lungs[0] < 1) | (lungs[1] < 1)
    periphery = np.clip(np.minimum(lungs[0], lungs[1]), 0, 1)  # 0 at a lung's centre, 1 at its edge

    channels = []
    for _ in range(3):  # three neighbouring slices: the same disease, findings moved a little
        image = np.where(body, 0.05, -1.0) + 0.03 * smooth_noise(rng, n, size)[:, 0]
        image = np.where(lung, -0.85, image)
        ggo = smooth_noise(rng, n, size, cells=7)[:, 0] * 0.6 + periphery * 0.9 - 0.9
        ggo_mask = lung & (ggo > col(1 - 2 * extent) - 0.6) & col(covid).astype(bool)
        image = np.where(ggo_mask, -0.45 + 0.25 * col(severe), image)
        focus = ellipse(size, sx + rng.choice([-0.4, 0.4], n) + rng.uniform(-0.1, 0.1, n),
                        rng.uniform(-0.3, 0.3, n), 0.14, 0.14)
        image = np.where(focus & lung & col(other).astype(bool), -0.1, image)
        nodules = ellipse(size, sx + rng.uniform(-0.6, 0.6, n), rng.uniform(-0.4, 0.4, n), 0.05, 0.05)
        image = np.where(nodules & lung & col(~covid & ~other).astype(bool), 0.0, image)
        channels.append(image + rng.normal(0, 0.05, image.shape))
    image = np.stack(channels, 1).astype(np.float32)
    return Split(image=image, targets={"covid": covid.astype(np.int64), "severity": severe.astype(np.int64)},
                 case_id=np.arange(n))


def synthetic(seed: int, n_train: int, n_val: int, n_test: int, size: int) -> TaskData:
    """Deterministic synthetic stand-in (3 x size x size, one 2.5D image per patient)."""
    return TaskData(SPEC, make_splits(_draw, seed, n_train, n_val, n_test, size), "synthetic",
                    "synthetic chest CT (2.5D)").validate()
