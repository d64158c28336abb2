"""PH2 (Mendonca et al. 2013): 200 dermoscopic images with expert lesion masks and the clinical
diagnosis (common nevus 80, atypical nevus 80, melanoma 40) and dermoscopic criteria.

Two task pairs from the same images (docs/datasets.md):
- ``ph2``: lesion segmentation (Dice) + three-class clinical diagnosis -- HAM10000's kind of pair;
- ``ph2_criteria``: the diagnosis + asymmetry (0 symmetric, 1 symmetric in one axis, 2 asymmetric),
  a criterion of the ABCD rule -- two related image-level labels, STOIC's kind.

Read as published (``PH2Dataset/``): ``PH2_dataset.xlsx`` (the whole table; a legend block above it,
the header row starting with ``Image Name``), ``PH2 Dataset images/IMDxxx/IMDxxx_Dermoscopic_Image/
IMDxxx.bmp`` and ``.../IMDxxx_lesion/IMDxxx_lesion.bmp``. The table names no patient: each image is
one lesion, so images are the cases. No official split: 5 folds stratified by diagnosis
(``data/folds/ph2.csv``, shared by both pairs).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from data.base import DataError, Split, TaskData
from data.folds import FOLDS_DIR, check_cases, read_table
from data.real.common import read_pair
from data.real.reader import Reader
from data.spec import DatasetSpec, TaskSpec
from data.synthetic import make_splits

CLASSES = ("common nevus", "atypical nevus", "melanoma")
DIAGNOSIS_COLUMNS = ("Common Nevus", "Atypical Nevus", "Melanoma")   # one "X" per row
ASYMMETRY = ("symmetric", "symmetric in one axis", "asymmetric")
TABLE = "PH2_dataset.xlsx"
IMAGES = "PH2 Dataset images"
HEADER = "Image Name"
FOLDS, FOLD_TABLE = 5, FOLDS_DIR / "ph2.csv"

_SEG = TaskSpec("segmentation", "pixel", "segmentation", 2, "dice", ("background", "lesion"))
_DX = TaskSpec("diagnosis", "image", "multiclass", len(CLASSES), "accuracy", CLASSES)
_ASYM = TaskSpec("asymmetry", "image", "multiclass", len(ASYMMETRY), "accuracy", ASYMMETRY)
SPEC = DatasetSpec("ph2", "PH2", (_SEG, _DX), in_channels=3, paper_batch_size=8, native_size=256)
CRITERIA_SPEC = DatasetSpec("ph2_criteria", "PH2 criteria", (_DX, _ASYM), in_channels=3, paper_batch_size=8,
                            native_size=256)


def read_metadata(path: Path) -> list[dict]:
    """The publisher's table as ``[{image, diagnosis, asymmetry}]`` (class indices), one clear error
    for a missing or corrupt file, a missing header or column, or a row that is not one diagnosis."""
    try:
        import openpyxl
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except FileNotFoundError:
        raise DataError(f"{path}: missing file") from None
    except Exception as exc:                       # zipfile.BadZipFile, KeyError, InvalidFileException
        raise DataError(f"{path}: not a readable .xlsx ({type(exc).__name__}: {exc})") from None
    rows = list(book.worksheets[0].iter_rows(values_only=True))
    book.close()
    header_at = next((i for i, r in enumerate(rows) if r and str(r[0] or "").strip() == HEADER), None)
    if header_at is None:
        raise DataError(f"{path}: no header row starting with {HEADER!r} (is this PH2's table?)")
    names = [str(c or "").split("\n")[0].strip() for c in rows[header_at]]
    want = (HEADER, *DIAGNOSIS_COLUMNS, "Asymmetry")
    missing = [c for c in want if c not in names]
    if missing:
        raise DataError(f"{path}: header row {header_at + 1} lacks column(s) {missing} (has {names})")
    col = {c: names.index(c) for c in want}
    out, seen = [], set()
    for i, r in enumerate(rows[header_at + 1:], start=header_at + 2):
        image = str(r[col[HEADER]] or "").strip()
        if not image:
            continue
        where = f"{path}: row {i} ({image})"
        marks = [k for k, c in enumerate(DIAGNOSIS_COLUMNS) if str(r[col[c]] or "").strip().upper() == "X"]
        if len(marks) != 1:
            raise DataError(f"{where}: {len(marks)} clinical diagnoses marked; expected exactly one 'X' in "
                            f"{', '.join(DIAGNOSIS_COLUMNS)}")
        asym = r[col["Asymmetry"]]
        if asym not in (0, 1, 2):
            raise DataError(f"{where}: asymmetry {asym!r} is not 0, 1 or 2")
        if image in seen:
            raise DataError(f"{where}: image listed twice")
        seen.add(image)
        out.append({"image": image, "diagnosis": marks[0], "asymmetry": int(asym)})
    if not out:
        raise DataError(f"{path}: no image rows below the header")
    return out


class PH2Reader(Reader):
    """Writes every image into one pool (the ``train`` split); ``data.folds`` splits it per fold."""

    VERSION = "ph2-1"
    LAYOUT = f"{TABLE} and '{IMAGES}/IMDxxx/IMDxxx_Dermoscopic_Image/IMDxxx.bmp' with IMDxxx_lesion masks"
    SUBDIRS = ("PH2Dataset",)

    def __init__(self, spec: DatasetSpec):
        self.spec = spec

    def looks_like(self, path: Path) -> bool:
        return (path / TABLE).is_file() and (path / IMAGES).is_dir()

    @staticmethod
    def files(root: Path, image: str) -> tuple[Path, Path]:
        folder = root / IMAGES / image
        return folder / f"{image}_Dermoscopic_Image" / f"{image}.bmp", folder / f"{image}_lesion" / f"{image}_lesion.bmp"

    def inventory(self, root: Path) -> list[Path]:
        rows = read_metadata(root / TABLE)
        return [root / TABLE] + [p for r in rows for p in self.files(root, r["image"]) if p.is_file()]

    def strata(self, root: Path) -> tuple[list[str], list[str]]:
        rows = read_metadata(root / TABLE)
        return [r["image"] for r in rows], [CLASSES[r["diagnosis"]] for r in rows]

    def params(self, size: int) -> dict:
        return {"size": size, "aspect": "squash to square", "rgb": "[0, 1]", "tasks": [t.name for t in self.spec.tasks],
                "split": f"{FOLDS} folds by diagnosis ({FOLD_TABLE.name})"}

    def read(self, root: Path, size: int, writer, bad) -> dict:
        rows = read_metadata(root / TABLE)
        table = read_table(FOLD_TABLE, FOLDS)
        check_cases(table, [r["image"] for r in rows], str(root / TABLE), bad)
        counts = {c: 0 for c in CLASSES}
        for start in range(0, len(rows), 32):
            imgs, targets, ids = [], {t.name: [] for t in self.spec.tasks}, []
            for r in rows[start:start + 32]:
                image_path, mask_path = self.files(root, r["image"])
                try:
                    if not image_path.is_file():
                        raise DataError(f"{image_path}: missing file (listed in {TABLE})")
                    if not mask_path.is_file():
                        raise DataError(f"{mask_path}: missing lesion mask of {r['image']}")
                    img, seg = read_pair(image_path, mask_path, size)
                except DataError as exc:
                    bad.handle(exc)
                    continue
                imgs.append(img)
                ids.append(r["image"])
                counts[CLASSES[r["diagnosis"]]] += 1
                values = {"segmentation": seg.astype(np.int64), "diagnosis": r["diagnosis"], "asymmetry": r["asymmetry"]}
                for t in self.spec.tasks:
                    targets[t.name].append(values[t.name])
            if ids:
                writer.append("train", image=np.stack(imgs),
                              targets={k: np.asarray(v, np.int64) for k, v in targets.items()}, case_id=ids)
        return {"unit": "images", "pool": "all images in 'train'; folds applied at load time",
                "class_counts": counts, "folds": FOLDS}

    def describe(self, manifest: dict) -> str:
        n = manifest["counts"]["train"]
        return f"{self.spec.label} dermoscopic images ({manifest['params']['size']} px; {n} images, {FOLDS}-fold CV)"


# The stand-in: HAM10000's generator drawn with PH2's three diagnoses (its nevus and melanoma looks,
# and an atypical nevus between them); asymmetry follows the outline's irregularity.
def _draw(rng: np.random.Generator, n: int, size: int, spec: DatasetSpec) -> Split:
    from data.ham10000 import draw_lesions
    looks = (((0.42, 0.27, 0.18), 0.28, 0.06, 0.05), ((0.32, 0.20, 0.14), 0.34, 0.18, 0.20),
             ((0.20, 0.12, 0.10), 0.40, 0.30, 0.35))
    image, mask, label, irregular = draw_lesions(rng, n, size, looks, np.array([0.4, 0.4, 0.2]))
    asym = np.digitize(irregular + rng.normal(0, 0.05, n), (0.12, 0.24)).astype(np.int64)
    values = {"segmentation": mask.astype(np.int64), "diagnosis": label, "asymmetry": asym}
    return Split(image=image, targets={t.name: values[t.name] for t in spec.tasks}, case_id=np.arange(n))


def synthetic(seed: int, n_train: int, n_val: int, n_test: int, size: int, spec: DatasetSpec = SPEC) -> TaskData:
    draw = lambda rng, n, s: _draw(rng, n, s, spec)
    return TaskData(spec, make_splits(draw, seed, n_train, n_val, n_test, size), "synthetic",
                    f"synthetic {spec.label} stand-in").validate()


def synthetic_criteria(seed: int, n_train: int, n_val: int, n_test: int, size: int) -> TaskData:
    return synthetic(seed, n_train, n_val, n_test, size, CRITERIA_SPEC)
