"""Prostate (private in the paper): organ segmentation + radiotherapy dose prediction on planning CT.

Tasks (Table 2): segmentation of rectum, bladder, left femur, right femur (dice, %) and dose (MAE, Gy).
The synthetic stand-in draws axial pelvic CT slices; the dose depends on a target that is invisible
on CT and sits between bladder and rectum, and is spared inside those organs, so knowing where the
organs are tells the dose network where the target must be.
"""
from __future__ import annotations

import numpy as np

from data.base import Split, TaskData
from data.spec import DatasetSpec, TaskSpec
from data.synthetic import ellipse, ellipse_dist, make_splits, smooth_noise

ORGANS = ("rectum", "bladder", "left_femur", "right_femur")
PRESCRIPTION_GY = 78.0

SPEC = DatasetSpec(
    name="prostate",
    label="Prostate",
    tasks=(
        TaskSpec("segmentation", "pixel", "segmentation", len(ORGANS) + 1, "dice", ("background",) + ORGANS),
        TaskSpec("dose", "pixel", "regression", 1, "mae", scale=PRESCRIPTION_GY, mask="dose_mask"),
    ),
    in_channels=1,
    paper_batch_size=32,
    native_size=256,
    extras=("dose_mask",),
)


def _draw(rng: np.random.Generator, n: int, size: int) -> Split:
    u = lambda lo, hi: rng.uniform(lo, hi, n).astype(np.float32)  # noqa: E731
    shift_x, shift_y = u(-0.06, 0.06), u(-0.06, 0.06)
    body = ellipse(size, shift_x, shift_y, u(0.8, 0.92), u(0.6, 0.72))
    bladder_c = (shift_x + u(-0.08, 0.08), shift_y + u(-0.4, -0.22))
    bladder_r = (u(0.15, 0.28), u(0.1, 0.2))
    rectum_c = (shift_x + u(-0.05, 0.05), shift_y + u(0.3, 0.42))
    rectum_r = u(0.07, 0.11)
    femur_r = u(0.11, 0.15)
    bladder = ellipse(size, *bladder_c, *bladder_r)
    rectum = ellipse(size, *rectum_c, rectum_r, rectum_r)
    rectum_gas = ellipse(size, *rectum_c, rectum_r * 0.55, rectum_r * 0.55)
    femurs = [ellipse(size, shift_x + side * u(0.55, 0.65), shift_y + u(-0.02, 0.1), femur_r, femur_r)
              for side in (1, -1)]  # left femur on the image's right (radiological view)
    # The target (prostate) lies between the bladder's lower edge and the rectum's upper edge.
    tx = (bladder_c[0] + rectum_c[0]) / 2 + u(-0.04, 0.04)
    ty = ((bladder_c[1] + bladder_r[1]) + (rectum_c[1] - rectum_r)) / 2 + u(-0.03, 0.03)
    tr = u(0.09, 0.14)
    target_d = ellipse_dist(size, tx, ty, tr, tr * 0.85)

    image = np.where(body, 0.05, -1.0).astype(np.float32)
    image += body * 0.04 * smooth_noise(rng, n, size)[:, 0]
    for femur in femurs:
        image[femur] = 0.9
    image[bladder] = -0.2
    image[rectum] = 0.3
    image[rectum_gas] = -0.8
    image += rng.normal(0, 0.03, image.shape).astype(np.float32)

    label = np.zeros((n, size, size), np.int64)
    for k, organ in enumerate((rectum, bladder, femurs[0], femurs[1]), start=1):
        label[organ] = k
    # Dose: full prescription in the target, Gaussian fall-off outside, spared inside organs at risk.
    falloff = np.exp(-np.clip(target_d - 1, 0, None) ** 2 / (2 * 1.2 ** 2))
    dose = PRESCRIPTION_GY * falloff * (1 + 0.02 * smooth_noise(rng, n, size)[:, 0])
    dose = np.where(rectum | bladder, dose * 0.8, dose)
    dose = np.where(femurs[0] | femurs[1], dose * 0.6, dose)
    dose = np.where(body, dose, 0).astype(np.float32)
    return Split(image=image[:, None], targets={"segmentation": label, "dose": dose[:, None]},
                 case_id=np.arange(n), extras={"dose_mask": body})


def synthetic(seed: int, n_train: int, n_val: int, n_test: int, size: int) -> TaskData:
    """Deterministic synthetic stand-in (1 x size x size CT slices)."""
    return TaskData(SPEC, make_splits(_draw, seed, n_train, n_val, n_test, size), "synthetic",
                    "synthetic pelvic CT slices").validate()
