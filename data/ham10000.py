"""HAM10000 (Tschandl et al. 2018): skin lesion segmentation + 7-class diagnosis (dermoscopy, RGB).

Tasks (Table 2): segmentation of the lesion (dice, %) and diagnosis among akiec, bcc, bkl, df, mel,
nv, vasc (accuracy, %; balanced accuracy and macro-F1 beside it).
The synthetic stand-in draws a lesion on skin whose colour, size, border irregularity and texture
depend on the diagnosis (with overlap between classes), so the lesion's outline helps the diagnosis.
"""
from __future__ import annotations

import numpy as np

from data.base import Split, TaskData
from data.spec import DatasetSpec, TaskSpec
from data.synthetic import col, grid, make_splits, smooth_noise

CLASSES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
REAL_COUNTS = (327, 514, 1099, 115, 1113, 6705, 142)  # HAM10000's class counts

SPEC = DatasetSpec(
    name="ham10000",
    label="HAM10000",
    tasks=(
        TaskSpec("segmentation", "pixel", "segmentation", 2, "dice", ("background", "lesion")),
        TaskSpec("diagnosis", "image", "multiclass", len(CLASSES), "accuracy", CLASSES),
    ),
    in_channels=3,
    paper_batch_size=8,
    native_size=256,
)

# Per class: lesion RGB, radius, border irregularity, texture strength (dots/streaks).
_LOOK = {
    "akiec": ((0.70, 0.35, 0.30), 0.30, 0.20, 0.25),
    "bcc":   ((0.80, 0.55, 0.55), 0.28, 0.12, 0.15),
    "bkl":   ((0.55, 0.40, 0.25), 0.34, 0.15, 0.20),
    "df":    ((0.50, 0.35, 0.30), 0.18, 0.05, 0.05),
    "mel":   ((0.20, 0.12, 0.10), 0.40, 0.30, 0.35),
    "nv":    ((0.42, 0.27, 0.18), 0.30, 0.06, 0.05),
    "vasc":  ((0.60, 0.10, 0.25), 0.20, 0.08, 0.10),
}


def class_priors() -> np.ndarray:
    """Square-root-flattened real frequencies: HAM10000's imbalance, softened so every class is seen."""
    p = np.sqrt(np.asarray(REAL_COUNTS, dtype=np.float64))
    return p / p.sum()


def draw_lesions(rng: np.random.Generator, n: int, size: int, looks, priors: np.ndarray):
    """``n`` lesions on skin, class k drawn with ``priors[k]`` and looking like ``looks[k]`` (RGB,
    radius, border irregularity, texture): (image [n, 3, size, size], mask, label, irregularity).
    HAM10000's stand-in and PH2's (``data/public/ph2.py``) share it."""
    label = rng.choice(len(looks), size=n, p=priors)
    look = list(looks)
    colour = np.array([look[k][0] for k in label], np.float32) + rng.normal(0, 0.07, (n, 3)).astype(np.float32)
    radius = np.array([look[k][1] for k in label], np.float32) * rng.uniform(0.75, 1.25, n).astype(np.float32)
    irregular = np.array([look[k][2] for k in label], np.float32) * rng.uniform(0.5, 1.5, n).astype(np.float32)
    texture = np.array([look[k][3] for k in label], np.float32) * rng.uniform(0.5, 1.5, n).astype(np.float32)

    x, y = grid(size)
    cx, cy = rng.uniform(-0.2, 0.2, n), rng.uniform(-0.2, 0.2, n)
    theta = np.arctan2(y - col(cy), x - col(cx))
    r = np.sqrt((x - col(cx)) ** 2 + (y - col(cy)) ** 2)
    border = np.ones_like(theta)
    for k in range(2, 7):  # a wobbly outline: harmonics of the angle, stronger for irregular lesions
        amp = col(irregular * rng.uniform(0, 1, n) / k ** 0.5)
        border = border + amp * np.cos(k * theta + col(rng.uniform(0, 2 * np.pi, n)))
    mask = r < col(radius) * border

    skin = np.array((0.88, 0.68, 0.58), np.float32) + rng.normal(0, 0.05, (n, 3)).astype(np.float32)
    image = np.broadcast_to(skin[:, :, None, None], (n, 3, size, size)).copy()
    image += 0.04 * smooth_noise(rng, n, size, channels=3)
    dots = smooth_noise(rng, n, size, cells=max(size // 4, 4))[:, 0]
    inside = colour[:, :, None, None] + texture[:, None, None, None] * 0.5 * dots[:, None]
    image = np.where(mask[:, None], inside, image)
    vignette = 1 - 0.25 * np.clip(np.sqrt(x ** 2 + y ** 2) - 0.9, 0, None)
    image = (image * vignette + rng.normal(0, 0.02, image.shape)).astype(np.float32)
    return image, mask, label.astype(np.int64), irregular


def _draw(rng: np.random.Generator, n: int, size: int) -> Split:
    image, mask, label, _ = draw_lesions(rng, n, size, [_LOOK[c] for c in CLASSES], class_priors())
    return Split(image=image, targets={"segmentation": mask.astype(np.int64), "diagnosis": label},
                 case_id=np.arange(n))


def synthetic(seed: int, n_train: int, n_val: int, n_test: int, size: int) -> TaskData:
    """Deterministic synthetic stand-in (3 x size x size RGB images)."""
    return TaskData(SPEC, make_splits(_draw, seed, n_train, n_val, n_test, size), "synthetic",
                    "synthetic dermatoscopic images").validate()
