"""BUSI (Al-Dhabyani et al. 2020): 780 breast-ultrasound images with lesion masks and the class
(normal 133, benign 437, malignant 210); CC BY 4.0.

Task pair ``busi``: lesion segmentation (Dice; a normal image's mask is empty, and an empty
prediction on it scores 100 %: ``TaskSpec.empty_is_perfect``) + three-class diagnosis -- HAM10000's
kind of pair. Two layouts are read (docs/datasets.md):
- the publisher's, ``Dataset_BUSI_with_GT/<class>/<class> (n).png`` beside ``<class> (n)_mask.png``
  (and ``_mask_1.png``, ``_mask_2.png`` for further lesions);
- the GitHub copy's, ``data/<class>/images/<name>.png`` and ``data/<class>/mask/<name>_mask*.png``.
An image's masks are united. Images are stored as RGB with grey content: read as one channel. No
patient ids are published, so images are the cases. No official split: 5 folds stratified by class
(``data/folds/busi.csv``).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from data.base import DataError, Split, TaskData
from data.folds import FOLDS_DIR, check_cases, read_table
from data.real.common import read_pair
from data.real.reader import Reader
from data.spec import DatasetSpec, TaskSpec
from data.synthetic import col, ellipse_dist, grid, make_splits, smooth_noise

CLASSES = ("normal", "benign", "malignant")
FOLDS, FOLD_TABLE = 5, FOLDS_DIR / "busi.csv"
_MASK = re.compile(r"^(?P<stem>.+)_mask(_\d+)?$")

SPEC = DatasetSpec(
    "busi", "BUSI",
    (TaskSpec("segmentation", "pixel", "segmentation", 2, "dice", ("background", "lesion"), empty_is_perfect=True),
     TaskSpec("diagnosis", "image", "multiclass", len(CLASSES), "accuracy", CLASSES)),
    in_channels=1, paper_batch_size=8, native_size=256)


def _class_dirs(root: Path) -> dict[str, Path]:
    return {c: root / c for c in CLASSES if (root / c).is_dir()}


def scan(root: Path) -> dict[str, tuple[str, Path, list[Path]]]:
    """``{image name: (class, image file, mask files)}`` in either layout; a mask without its image,
    an image or mask in two places, or a file that is neither is one clear error."""
    dirs = _class_dirs(root)
    if set(dirs) != set(CLASSES):
        raise DataError(f"{root}: expected the class folders {', '.join(CLASSES)}, found "
                        f"{sorted(p.name for p in root.iterdir() if p.is_dir())}")
    out: dict[str, tuple[str, Path, list[Path]]] = {}
    masks: dict[str, list[tuple[str, Path]]] = {}
    for cls, d in dirs.items():
        split_layout = (d / "images").is_dir()
        files = sorted((d / "images").glob("*.png")) + sorted((d / "mask").glob("*.png")) if split_layout \
            else sorted(d.glob("*.png"))
        for f in files:
            m = _MASK.match(f.stem)
            if m:
                masks.setdefault(m["stem"], []).append((cls, f))
                continue
            if f.stem in out:
                raise DataError(f"{f}: image {f.stem!r} also found as {out[f.stem][1]}")
            out[f.stem] = (cls, f, [])
        unknown = [p for p in d.iterdir() if p.is_file() and p.suffix.lower() != ".png"]
        if unknown and not split_layout:
            raise DataError(f"{unknown[0]}: not a PNG image or mask of BUSI's layout")
    for stem, files in masks.items():
        if stem not in out:
            raise DataError(f"{files[0][1]}: a mask without its image ({stem}.png)")
        for cls, f in files:
            if cls != out[stem][0]:
                raise DataError(f"{f}: a mask in the {cls} folder of an image in the {out[stem][0]} folder "
                                f"({out[stem][1]})")
        out[stem][2].extend(f for _, f in files)
    return dict(sorted(out.items()))


class BUSIReader(Reader):
    """Writes every image into one pool (the ``train`` split); ``data.folds`` splits it per fold."""

    VERSION = "busi-1"
    LAYOUT = ("class folders normal/ benign/ malignant/ holding '<class> (n).png' beside '<class> (n)_mask.png' "
              "(or images/ and mask/ subfolders)")
    SUBDIRS = ("Dataset_BUSI_with_GT", "data")

    def looks_like(self, path: Path) -> bool:
        return set(_class_dirs(path)) == set(CLASSES)

    def inventory(self, root: Path) -> list[Path]:
        return [p for _, image, masks in scan(root).values() for p in (image, *masks)]

    def strata(self, root: Path) -> tuple[list[str], list[str]]:
        found = scan(root)
        return list(found), [cls for cls, _, _ in found.values()]

    def params(self, size: int) -> dict:
        return {"size": size, "aspect": "squash to square", "grey": "[0, 1]", "masks": "united",
                "split": f"{FOLDS} folds by class ({FOLD_TABLE.name})"}

    def read(self, root: Path, size: int, writer, bad) -> dict:
        found = scan(root)
        check_cases(read_table(FOLD_TABLE, FOLDS), list(found), str(root), bad)
        names = list(found)
        counts = {c: 0 for c in CLASSES}
        several = 0
        for start in range(0, len(names), 64):
            imgs, segs, labels, ids = [], [], [], []
            for name in names[start:start + 64]:
                cls, image, masks = found[name]
                try:
                    if not masks:
                        raise DataError(f"{image}: image without a mask ({name}_mask.png)")
                    img, seg = read_pair(image, masks, size, mode="L")
                except DataError as exc:
                    bad.handle(exc)
                    continue
                imgs.append(img)
                segs.append(seg)
                labels.append(CLASSES.index(cls))
                ids.append(name)
                counts[cls] += 1
                several += len(masks) > 1
            if ids:
                writer.append("train", image=np.stack(imgs),
                              targets={"segmentation": np.stack(segs).astype(np.int64),
                                       "diagnosis": np.asarray(labels, np.int64)}, case_id=ids)
        return {"unit": "images", "pool": "all images in 'train'; folds applied at load time",
                "class_counts": counts, "images_with_several_masks": several, "folds": FOLDS}

    def describe(self, manifest: dict) -> str:
        n = manifest["counts"]["train"]
        return f"BUSI breast ultrasound ({manifest['params']['size']} px; {n} images, {FOLDS}-fold CV)"


# The stand-in: a speckled grey field with a dark lesion (none for normal), round and smooth for
# benign, larger and irregular with an acoustic shadow below for malignant.
def _draw(rng: np.random.Generator, n: int, size: int) -> Split:
    label = rng.choice(3, size=n, p=np.array([133, 437, 210]) / 780)
    x, y = grid(size)
    cx, cy = rng.uniform(-0.3, 0.3, n), rng.uniform(-0.2, 0.2, n)
    r = np.where(label == 2, 0.30, 0.22) * rng.uniform(0.7, 1.3, n)
    wobble = np.where(label == 2, 0.25, 0.06)
    theta = np.arctan2(y - col(cy), x - col(cx))
    border = 1 + col(wobble * rng.uniform(0.5, 1.0, n)) * np.cos(3 * theta + col(rng.uniform(0, 6.3, n)))
    mask = (ellipse_dist(size, cx, cy, r, r * 0.7) < border) & (label > 0)[:, None, None]
    shadow = (label == 2)[:, None, None] & (np.abs(x - col(cx)) < col(r)) & (y > col(cy))
    image = 0.45 + 0.12 * smooth_noise(rng, n, size)[:, 0] + rng.normal(0, 0.08, (n, size, size))
    image = np.where(mask, 0.12 + rng.normal(0, 0.04, (n, size, size)), image) - 0.15 * shadow
    return Split(image=image[:, None].astype(np.float32),
                 targets={"segmentation": mask.astype(np.int64), "diagnosis": label.astype(np.int64)},
                 case_id=np.arange(n))


def synthetic(seed: int, n_train: int, n_val: int, n_test: int, size: int) -> TaskData:
    return TaskData(SPEC, make_splits(_draw, seed, n_train, n_val, n_test, size), "synthetic",
                    "synthetic breast-ultrasound stand-in").validate()
