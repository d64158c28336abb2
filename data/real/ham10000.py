"""Real HAM10000 (Tschandl et al. 2018) as distributed on Harvard Dataverse (docs/datasets.md).

``HAM10000_metadata.csv`` (lesion_id, image_id, dx, ...), ``ISIC_<id>.jpg`` images and
``ISIC_<id>_segmentation.png`` lesion masks anywhere below the root (the zips unpack into
``HAM10000_images_part_1/``, ``..._part_2/`` and ``HAM10000_segmentations_lesion_tschandl/``).
Split by lesion (no lesion in two splits), stratified by diagnosis, seeded; saved as split.csv.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from data import ham10000
from data.base import DataError
from data.real.common import BadInput, read_label_table, read_pair, stratified_split

VERSION = "ham10000-1"
CLASSES = ham10000.CLASSES
METADATA = "HAM10000_metadata.csv"
SPLIT_SEED = 0
LAYOUT = f"{METADATA}, ISIC_*.jpg images and ISIC_*_segmentation.png lesion masks (in any subfolders)"
SUBDIRS = ()
_MASK_SUFFIX = "_segmentation"
_CHUNK = 64


def looks_like(path: Path) -> bool:
    return (path / METADATA).is_file()


def params(size: int) -> dict:
    return {"size": size, "aspect": "squash to square", "rgb": "[0, 1]", "split": "lesion, dx-stratified 70/10/20",
            "split_seed": SPLIT_SEED}


def read_metadata(root: Path) -> pd.DataFrame:
    return read_label_table(root / METADATA, ("lesion_id", "image_id", "dx"), "image_id", "image")


def scan(root: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    """``{image_id: jpg}`` and ``{image_id: mask png}`` found anywhere below ``root``."""
    images, masks = {}, {}
    for f in sorted(root.rglob("ISIC_*")):
        stem = f.name.rsplit(".", 1)[0]
        if f.suffix.lower() == ".png" and stem.endswith(_MASK_SUFFIX):
            table, key = masks, stem[: -len(_MASK_SUFFIX)]
        elif f.suffix.lower() in (".jpg", ".jpeg"):
            table, key = images, stem
        else:
            continue
        if key in table:
            raise DataError(f"{key}: found twice, {table[key]} and {f}")
        table[key] = f
    return images, masks


def inventory(root: Path) -> list[Path]:
    md = read_metadata(root)
    images, masks = scan(root)
    ids = md["image_id"]
    return [root / METADATA] + [images[i] for i in ids if i in images] + [masks[i] for i in ids if i in masks]


def read(root: Path, size: int, writer, bad: BadInput) -> dict:
    md = read_metadata(root)
    listed = set(md["image_id"])
    images, masks = scan(root)
    keep = []
    for i, r in enumerate(md.itertuples(index=False)):
        try:
            if r.dx not in CLASSES:
                raise DataError(f"{root / METADATA}: line {i + 2} ({r.image_id}): unknown diagnosis {r.dx!r}; "
                                f"expected one of {', '.join(CLASSES)}")
            if r.image_id not in images:
                raise DataError(f"{r.image_id}: listed in {METADATA} but no {r.image_id}.jpg under {root}")
            if r.image_id not in masks:
                raise DataError(f"{images[r.image_id]}: image without a mask ({r.image_id}{_MASK_SUFFIX}.png)")
        except DataError as exc:
            bad.handle(exc)
            continue
        keep.append(i)
    md = md.iloc[keep]
    conflict = md.groupby("lesion_id")["dx"].nunique()
    for lesion in conflict[conflict > 1].index:
        bad.handle(DataError(f"{root / METADATA}: lesion {lesion} has conflicting diagnoses "
                             f"{sorted(set(md['dx'][md['lesion_id'] == lesion]))}"))
        md = md[md["lesion_id"] != lesion]
    lesions = md.drop_duplicates("lesion_id")
    assign = stratified_split(list(lesions["lesion_id"]), list(lesions["dx"]), SPLIT_SEED)
    md = md.assign(split=md["lesion_id"].map(assign)).sort_values("image_id")
    done = []
    for split in ("train", "val", "test"):
        rows = md[md["split"] == split]
        for start in range(0, len(rows), _CHUNK):
            imgs, segs, ids, labels = [], [], [], []
            for r in rows.iloc[start:start + _CHUNK].itertuples(index=False):
                try:
                    img, seg = read_pair(images[r.image_id], masks[r.image_id], size)
                except DataError as exc:
                    bad.handle(exc)
                    continue
                imgs.append(img)
                segs.append(seg)
                ids.append(r.image_id)
                labels.append(CLASSES.index(r.dx))
            if ids:
                writer.append(split, image=np.stack(imgs),
                              targets={"segmentation": np.stack(segs).astype(np.int64),
                                       "diagnosis": np.asarray(labels, np.int64)}, case_id=ids)
                done += ids
    kept = md[md["image_id"].isin(set(done))]
    writer.write_text("split.csv", kept[["image_id", "lesion_id", "dx", "split"]].to_csv(index=False))
    return {"unit": "images", "lesions": {s: int(kept[kept["split"] == s]["lesion_id"].nunique())
                                          for s in ("train", "val", "test")},
            "class_counts": {s: {c: int(((kept["split"] == s) & (kept["dx"] == c)).sum()) for c in CLASSES}
                             for s in ("train", "val", "test")},
            "unlisted_images": len(set(images) - listed)}


def describe(manifest: dict) -> str:
    c = manifest["counts"]
    return (f"HAM10000 dermatoscopic images ({manifest['params']['size']} px; lesion-level split "
            f"train {c['train']} / val {c['val']} / test {c['test']} images)")
