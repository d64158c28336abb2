"""OpenKBP (Babier et al. 2021): head-and-neck OAR segmentation + dose prediction.

Tasks (Table 2): segmentation of brainstem, spinal cord, left and right parotid (dice, %) and dose
(MAE, Gy; on the real data OpenKBP's own dose and DVH scores over whole test patients beside it).
The synthetic stand-in draws axial head-and-neck CT slices at random heights: the brainstem above,
the cord inside a vertebra below, parotids in between; a faintly visible target gets the
prescription and the dose is capped inside cord/brainstem and reduced in the parotids.
"""
from __future__ import annotations

import numpy as np

from data.base import Split, TaskData
from data.spec import DatasetSpec, TaskSpec
from data.synthetic import ellipse, ellipse_dist, make_splits, smooth_noise

ORGANS = ("brainstem", "spinal_cord", "left_parotid", "right_parotid")
RAW_STRUCTURES = ("Brainstem", "SpinalCord", "LeftParotid", "RightParotid")  # file names in OpenKBP
PRESCRIPTION_GY = 70.0
# The structures of OpenKBP's DVH score (open-kbp provided_code/data_loader.py), in bit order of the
# test volumes' structure masks: OARs are scored by D_0.1cc and mean dose, targets by D99, D95, D1.
DVH_STRUCTURES = (("Brainstem", "oar"), ("SpinalCord", "oar"), ("RightParotid", "oar"), ("LeftParotid", "oar"),
                  ("Esophagus", "oar"), ("Larynx", "oar"), ("Mandible", "oar"),
                  ("PTV56", "target"), ("PTV63", "target"), ("PTV70", "target"))

SPEC = DatasetSpec(
    name="openkbp",
    label="OpenKBP",
    tasks=(
        TaskSpec("segmentation", "pixel", "segmentation", len(ORGANS) + 1, "dice", ("background",) + ORGANS),
        TaskSpec("dose", "pixel", "regression", 1, "mae", scale=PRESCRIPTION_GY, mask="dose_mask",
                 dvh=DVH_STRUCTURES),
    ),
    in_channels=1,
    paper_batch_size=8,
    native_size=128,
    extras=("dose_mask",),
)


def _draw(rng: np.random.Generator, n: int, size: int) -> Split:
    u = lambda lo, hi: rng.uniform(lo, hi, n).astype(np.float32)  # noqa: E731
    level = u(0, 1)  # slice height: brainstem above 0.6, cord below; parotids from 0.3 to 0.85
    sx, sy = u(-0.05, 0.05), u(-0.05, 0.05)
    body = ellipse(size, sx, sy, u(0.62, 0.75), u(0.7, 0.85))
    upper = (level > 0.6)[:, None, None]
    parotid_on = ((level > 0.3) & (level < 0.85))[:, None, None]
    stem = ellipse(size, sx + u(-0.03, 0.03), sy + u(0.2, 0.3), u(0.18, 0.22), u(0.16, 0.2)) & upper
    cord_r = u(0.11, 0.13)
    cord_c = (sx + u(-0.03, 0.03), sy + u(0.4, 0.48))
    cord = ellipse(size, *cord_c, cord_r, cord_r) & ~upper
    vertebra = ellipse(size, *cord_c, cord_r * 1.9, cord_r * 1.9) & ~upper & ~cord
    parotids = [ellipse(size, sx + side * u(0.4, 0.5), sy + u(-0.05, 0.1), u(0.15, 0.19), u(0.2, 0.26)) & parotid_on
                for side in (1, -1)]  # left parotid on the image's right (radiological view)
    side = np.where(rng.random(n) < 0.5, -1.0, 1.0).astype(np.float32)
    tx, ty, tr = sx + side * u(0.0, 0.35), sy + u(-0.45, 0.05), u(0.12, 0.22)
    target_d = ellipse_dist(size, tx, ty, tr, tr)

    image = np.where(body, 0.05, -1.0).astype(np.float32)
    image += body * 0.04 * smooth_noise(rng, n, size)[:, 0]
    image[vertebra] = 0.8
    image[stem] = 0.12
    image[cord] = 0.12
    for p in parotids:
        image[p] = -0.12
    image += (target_d < 1) * body * 0.08  # the target is faintly visible
    image += rng.normal(0, 0.03, image.shape).astype(np.float32)

    label = np.zeros((n, size, size), np.int64)
    for k, organ in enumerate((stem, cord, parotids[0], parotids[1]), start=1):
        label[organ] = k
    dose = PRESCRIPTION_GY * np.exp(-np.clip(target_d - 1, 0, None) ** 2 / (2 * 1.0 ** 2))
    dose *= 1 + 0.02 * smooth_noise(rng, n, size)[:, 0]
    dose = np.where(stem | cord, np.minimum(dose, 0.55 * PRESCRIPTION_GY), dose)
    dose = np.where(parotids[0] | parotids[1], dose * 0.7, dose)
    dose = np.where(body, dose, 0).astype(np.float32)
    return Split(image=image[:, None], targets={"segmentation": label, "dose": dose[:, None]},
                 case_id=np.arange(n), extras={"dose_mask": body})


def synthetic(seed: int, n_train: int, n_val: int, n_test: int, size: int) -> TaskData:
    """Deterministic synthetic stand-in (1 x size x size CT slices)."""
    return TaskData(SPEC, make_splits(_draw, seed, n_train, n_val, n_test, size), "synthetic",
                    "synthetic head-and-neck CT slices").validate()
