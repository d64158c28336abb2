"""Real STOIC2021 (Revel et al. 2021), the public training set as published (docs/datasets.md).

``metadata/reference.csv`` (PatientID, probCOVID, probSevere; 0/1) and ``data/mha/<PatientID>.mha``
(one chest CT per patient, read with SimpleITK). Each patient becomes one 2.5D image: three axial
slices at 35, 50 and 65 % of the volume height (counted from the feet), reoriented to LPS, HU
clipped to a lung window and scaled to [-1, 1], the whole field of view resampled to size x size.
Patients are split 70/10/20 stratified by (COVID, severe), seeded; saved as split.csv.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from data.base import DataError
from data.real.common import BadInput, read_label_table, resize, stratified_split

VERSION = "stoic-1"
REFERENCE = Path("metadata") / "reference.csv"
MHA_DIR = Path("data") / "mha"
SLICE_FRACTIONS = (0.35, 0.50, 0.65)
HU_WINDOW = (-1350.0, 150.0)  # lung window: level -600, width 1500
SPLIT_SEED = 0
LAYOUT = "metadata/reference.csv (PatientID, probCOVID, probSevere) and data/mha/<PatientID>.mha"
SUBDIRS = ()


def looks_like(path: Path) -> bool:
    return (path / REFERENCE).is_file() or (path / MHA_DIR).is_dir()


def params(size: int) -> dict:
    return {"size": size, "slices": list(SLICE_FRACTIONS), "of": "volume height", "hu_window": list(HU_WINDOW),
            "split": "patients, (covid, severe)-stratified 70/10/20", "split_seed": SPLIT_SEED}


def read_reference(root: Path) -> pd.DataFrame:
    return read_label_table(root / REFERENCE, ("PatientID", "probCOVID", "probSevere"), "PatientID", "patient")


def inventory(root: Path) -> list[Path]:
    ref = read_reference(root)
    if not (root / MHA_DIR).is_dir():
        raise DataError(f"{root / MHA_DIR}: missing folder")
    files = [root / MHA_DIR / f"{p}.mha" for p in ref["PatientID"]]
    return [root / REFERENCE] + [f for f in files if f.is_file()]


def _label(value: str, column: str, patient: str, line: int, path: Path) -> int:
    try:
        v = float(value)
    except ValueError:
        v = float("nan")
    if v not in (0.0, 1.0):
        raise DataError(f"{path}: line {line} (patient {patient}): unknown label {column}={value!r}, expected 0 or 1")
    return int(v)


def _itk_reason(message: str) -> str:
    lines = [re.sub(r"^(ITK ERROR: \S+: |sitk::ERROR: )", "", ln).strip() for ln in message.splitlines()[1:]]
    return next((ln for ln in lines if ln), message.strip())[:160]


def read_volume(path: Path, size: int) -> np.ndarray:
    """The 2.5D image of one CT: [3, size, size] float32 in [-1, 1]."""
    import SimpleITK as sitk  # the format's library loads only when this format is read
    if not path.is_file():
        raise DataError(f"{path}: missing file")
    try:
        img = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        raise DataError(f"{path}: corrupt or truncated MHA ({_itk_reason(str(exc))})") from None
    if img.GetDimension() != 3 or img.GetNumberOfComponentsPerPixel() != 1:
        raise DataError(f"{path}: expected a 3D scalar CT volume, got {img.GetDimension()}D with "
                        f"{img.GetNumberOfComponentsPerPixel()} component(s) per voxel, size {img.GetSize()}")
    vol = sitk.GetArrayViewFromImage(sitk.DICOMOrient(img, "LPS"))  # [z feet->head, y ant->post, x right->left]
    if vol.shape[0] < len(SLICE_FRACTIONS) or min(vol.shape[1:]) < 16:
        raise DataError(f"{path}: volume of shape {tuple(img.GetSize())} (x, y, z) is too small for three "
                        f"axial slices of at least 16x16")
    z = [int(round(f * (vol.shape[0] - 1))) for f in SLICE_FRACTIONS]
    slices = np.asarray(vol[z], np.float32)
    if not np.isfinite(slices).all():
        raise DataError(f"{path}: {int((~np.isfinite(slices)).sum())} voxel(s) of the chosen slices are NaN or infinite")
    lo, hi = HU_WINDOW
    return resize((np.clip(slices, lo, hi) - lo) / (hi - lo) * 2 - 1, size)


def read(root: Path, size: int, writer, bad: BadInput) -> dict:
    ref = read_reference(root)
    rows = []
    for i, r in enumerate(ref.itertuples(index=False)):
        try:
            covid = _label(r.probCOVID, "probCOVID", r.PatientID, i + 2, root / REFERENCE)
            severe = _label(r.probSevere, "probSevere", r.PatientID, i + 2, root / REFERENCE)
        except DataError as exc:
            bad.handle(exc)
            continue
        rows.append((r.PatientID, covid, severe))
    assign = stratified_split([p for p, _, _ in rows], [f"covid{c}-severe{s}" for _, c, s in rows], SPLIT_SEED)
    kept = []
    for split in ("train", "val", "test"):
        for pid, covid, severe in sorted(r for r in rows if assign[r[0]] == split):
            try:
                image = read_volume(root / MHA_DIR / f"{pid}.mha", size)
            except DataError as exc:
                bad.handle(exc)
                continue
            writer.append(split, image=image[None], case_id=[pid],
                          targets={"covid": np.array([covid], np.int64), "severity": np.array([severe], np.int64)})
            kept.append((pid, covid, severe, split))
    table = pd.DataFrame(kept, columns=["PatientID", "probCOVID", "probSevere", "split"])
    writer.write_text("split.csv", table.to_csv(index=False))
    listed = set(ref["PatientID"])
    per_split = {s: table[table.split == s] for s in ("train", "val", "test")}
    return {"unit": "patients",
            "positives": {s: {"covid": int(t.probCOVID.sum()), "severe": int(t.probSevere.sum())}
                          for s, t in per_split.items()},
            "unlisted_volumes": sum(1 for f in (root / MHA_DIR).glob("*.mha") if f.stem not in listed)}


def describe(manifest: dict) -> str:
    c = manifest["counts"]
    return (f"STOIC2021 chest CT, 3 axial slices per patient ({manifest['params']['size']} px; "
            f"patients train {c['train']} / val {c['val']} / test {c['test']})")
