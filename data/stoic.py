"""STOIC2021 (Revel et al. 2021): COVID-19 diagnosis and severity from chest CT (both binary, AUC %).

In the public labels every severe case is COVID-positive (about 60 % positive). Each patient is one
2.5D image: three axial slices as channels (see docs/datasets.md).
The synthetic stand-in draws lungs with peripheral multifocal ground-glass opacities for COVID whose
extent and density drive the chance of a severe outcome; some negatives show a single dense focus
(another pneumonia) or a COVID-like viral pattern, some positives almost nothing, so neither label
is certain from the image and both tasks read the same findings.
"""
from __future__ import annotations

import numpy as np

from data.base import Split, TaskData
from data.spec import DatasetSpec, TaskSpec
from data.synthetic import col, ellipse, ellipse_dist, make_splits, smooth_noise

SPEC = DatasetSpec(
    name="stoic",
    label="STOIC",
    tasks=(
        TaskSpec("covid", "image", "binary", 1, "auc", ("negative", "positive")),
        TaskSpec("severity", "image", "binary", 1, "auc", ("not severe", "severe")),
    ),
    in_channels=3,
    paper_batch_size=8,
    native_size=256,
)

P_COVID = 0.6


def _draw(rng: np.random.Generator, n: int, size: int) -> Split:
    covid = rng.random(n) < P_COVID
    # Imaging does not settle either label: some positives show almost nothing, some negatives show
    # a COVID-like viral pattern, and severity (intubation or death) follows the extent only loosely.
    extent = np.where(covid, rng.beta(2.0, 3.0, n), 0.0)
    extent = np.where(covid & (rng.random(n) < 0.15), 0.03, extent)
    mimic = ~covid & (rng.random(n) < 0.2)
    extent = np.where(mimic, rng.beta(1.5, 4.0, n), extent)
    p_severe = 1 / (1 + np.exp(-(extent - 0.5) * 10))
    severe = covid & (rng.random(n) < p_severe * 0.8)
    other = ~covid & ~mimic & (rng.random(n) < 0.4)  # another pneumonia: a single dense focus
    sx = rng.uniform(-0.04, 0.04, n)
    body = ellipse(size, sx, 0, rng.uniform(0.85, 0.95, n), rng.uniform(0.65, 0.75, n))
    lungs = [ellipse_dist(size, sx + side * rng.uniform(0.38, 0.45, n), rng.uniform(-0.08, 0.02, n),
                          rng.uniform(0.26, 0.32, n), rng.uniform(0.45, 0.55, n)) for side in (-1, 1)]
    lung = (lungs[0] < 1) | (lungs[1] < 1)
    periphery = np.clip(np.minimum(lungs[0], lungs[1]), 0, 1)  # 0 at a lung's centre, 1 at its edge
    density = col(-0.55 + 0.2 * extent)  # more extensive disease is also denser (consolidation)

    channels = []
    for _ in range(3):  # three neighbouring slices: the same disease, findings moved a little
        image = np.where(body, 0.05, -1.0) + 0.03 * smooth_noise(rng, n, size)[:, 0]
        image = np.where(lung, -0.85, image)
        ggo = smooth_noise(rng, n, size, cells=7)[:, 0] * 0.6 + periphery * 0.9 - 0.9
        ggo_mask = lung & (ggo > col(1 - 2 * extent) - 0.6) & col(extent > 0).astype(bool)
        image = np.where(ggo_mask, density, image)
        focus = ellipse(size, sx + rng.choice([-0.4, 0.4], n) + rng.uniform(-0.1, 0.1, n),
                        rng.uniform(-0.3, 0.3, n), 0.14, 0.14)
        image = np.where(focus & lung & col(other).astype(bool), -0.1, image)
        nodules = ellipse(size, sx + rng.uniform(-0.6, 0.6, n), rng.uniform(-0.4, 0.4, n), 0.05, 0.05)
        image = np.where(nodules & lung & (rng.random((n, 1, 1)) < 0.5), 0.0, image)
        channels.append(image + rng.normal(0, 0.08, image.shape))
    image = np.stack(channels, 1).astype(np.float32)
    return Split(image=image, targets={"covid": covid.astype(np.int64), "severity": severe.astype(np.int64)},
                 case_id=np.arange(n))


def synthetic(seed: int, n_train: int, n_val: int, n_test: int, size: int) -> TaskData:
    """Deterministic synthetic stand-in (3 x size x size, one 2.5D image per patient)."""
    return TaskData(SPEC, make_splits(_draw, seed, n_train, n_val, n_test, size), "synthetic",
                    "synthetic chest CT (2.5D)").validate()
