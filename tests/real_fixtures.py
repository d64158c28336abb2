"""Tiny datasets in each publisher's real format, written with the real libraries (pandas CSV, Pillow,
SimpleITK, nibabel), for tests/test_real_data.py. Each writer returns what the files contain."""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import SimpleITK as sitk
from PIL import Image

OPENKBP_SHAPE = (128, 128, 128)
OKBP_ORGANS = ("Brainstem", "SpinalCord", "LeftParotid", "RightParotid")


# ---------------------------------------------------------------- OpenKBP: sparse CSVs of 128^3 volumes

def _sparse_csv(path: Path, dense: np.ndarray, mask: bool) -> None:
    flat = dense.reshape(-1)
    idx = np.flatnonzero(flat)
    data = np.full(len(idx), np.nan) if mask else flat[idx]
    pd.DataFrame({"data": data}, index=idx).to_csv(path)  # header ",data"; masks: rows "index,"


def openkbp_patient(rng: np.random.Generator, organs=OKBP_ORGANS) -> dict[str, np.ndarray]:
    """Dense volumes of one small synthetic patient in OpenKBP's axes (rows, cols, axial slice)."""
    ct = np.zeros(OPENKBP_SHAPE, np.float32)
    ct[50:70, 50:70, 56:68] = rng.integers(900, 1200, (20, 20, 12))  # stored CT ~ HU + 1000
    dose = np.zeros(OPENKBP_SHAPE, np.float32)
    dose[52:68, 52:68, 57:67] = np.round(rng.uniform(1, 70, (16, 16, 10)), 2)
    pdm = dose > 0
    vol = {"ct": ct, "dose": dose, "possible_dose_mask": pdm}
    boxes = {"Brainstem": (slice(58, 62), slice(58, 62), slice(58, 60)),
             "SpinalCord": (slice(60, 63), slice(59, 62), slice(59, 63)),   # overlaps the brainstem
             "LeftParotid": (slice(55, 59), slice(64, 68), slice(59, 62)),
             "RightParotid": (slice(55, 59), slice(52, 56), slice(59, 62))}
    for organ in organs:
        m = np.zeros(OPENKBP_SHAPE, bool)
        m[boxes[organ]] = True
        vol[organ] = m
    return vol


def write_openkbp(root: Path, patients=None, seed: int = 0) -> dict[str, dict]:
    """``root/{train,validation,test}-pats/pt_N/*.csv``; returns {patient: dense volumes}."""
    patients = patients or {"train-pats": ["pt_1", "pt_2"], "validation-pats": ["pt_201"], "test-pats": ["pt_241"]}
    rng = np.random.default_rng(seed)
    out = {}
    for split, names in patients.items():
        for name in names:
            d = root / split / name
            d.mkdir(parents=True)
            vol = openkbp_patient(rng)
            for key, arr in vol.items():
                _sparse_csv(d / f"{key}.csv", arr, mask=arr.dtype == bool)
            np.savetxt(d / "voxel_dimensions.csv", [3.906, 3.906, 2.5])
            out[name] = vol
    return out


# ---------------------------------------------------------------- HAM10000: JPEG, PNG masks, metadata CSV

HAM_CLASSES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")


def write_ham(root: Path, lesions_per_class: int = 2, seed: int = 0, size=(40, 30)) -> pd.DataFrame:
    """Two lesions per class, the first of each with two images; returns the metadata."""
    rng = np.random.default_rng(seed)
    img_dir, mask_dir = root / "HAM10000_images_part_1", root / "HAM10000_segmentations_lesion_tschandl"
    img_dir.mkdir(parents=True)
    mask_dir.mkdir(parents=True)
    rows, n = [], 0
    for k, dx in enumerate(HAM_CLASSES):
        for j in range(lesions_per_class):
            lesion = f"HAM_{k:03d}{j:04d}"
            for _ in range(2 if j == 0 else 1):
                image_id = f"ISIC_{n:07d}"
                n += 1
                w, h = size
                yy, xx = np.mgrid[:h, :w]
                mask = (xx - w / 2) ** 2 + (yy - h / 2) ** 2 < (min(w, h) / 3) ** 2
                rgb = rng.integers(150, 230, (h, w, 3)).astype(np.uint8)
                rgb[mask] = (40 + 20 * k, 30, 20)
                Image.fromarray(rgb).save(img_dir / f"{image_id}.jpg", quality=95)
                Image.fromarray((mask * 255).astype(np.uint8)).save(mask_dir / f"{image_id}_segmentation.png")
                rows.append({"lesion_id": lesion, "image_id": image_id, "dx": dx, "dx_type": "histo",
                             "age": 50.0, "sex": "male", "localization": "back"})
    md = pd.DataFrame(rows)
    md.to_csv(root / "HAM10000_metadata.csv", index=False)
    return md


# ---------------------------------------------------------------- STOIC2021: MHA volumes and reference.csv

def stoic_volume(depth: int = 10, side: int = 20, flip_z: bool = False) -> sitk.Image:
    """Slice z (feet to head) holds HU -1000 + 100 z, so a slice's value tells its height."""
    arr = np.stack([np.full((side, side), -1000 + 100 * z, np.int16) for z in range(depth)])
    if flip_z:
        arr = arr[::-1].copy()
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.8, 0.8, 2.0))
    if flip_z:  # stored head to feet: the direction says so
        img.SetDirection((1, 0, 0, 0, 1, 0, 0, 0, -1))
    return img


def write_stoic(root: Path, per_stratum: int = 4, flip_first: bool = False) -> pd.DataFrame:
    (root / "data" / "mha").mkdir(parents=True)
    (root / "metadata").mkdir(parents=True)
    rows, pid = [], 100
    for covid, severe in ((0, 0), (1, 0), (1, 1)):
        for _ in range(per_stratum):
            img = stoic_volume(flip_z=flip_first and pid == 100)
            sitk.WriteImage(img, str(root / "data" / "mha" / f"{pid}.mha"), True)
            rows.append({"PatientID": pid, "probCOVID": covid, "probSevere": severe})
            pid += 1
    ref = pd.DataFrame(rows)
    ref.to_csv(root / "metadata" / "reference.csv", index=False)
    return ref


# ---------------------------------------------------------------- Prostate: NIfTI CT, dose, structures

PROSTATE_MAP = {"Rectum": "rectum", "Bladder": "bladder", "Femur_L": "left_femur", "Femur_R": "right_femur",
                "External": "body"}
PROSTATE_SHAPE = (24, 20, 12)  # x (towards the patient's right), y (anterior), z (superior): RAS


def prostate_patient(rng: np.random.Generator) -> dict[str, np.ndarray]:
    x, y, z = np.mgrid[:24, :20, :12]
    body = ((x - 12) / 11) ** 2 + ((y - 10) / 9) ** 2 < 1
    ct = np.where(body, 40, -1000).astype(np.int16) + rng.integers(-5, 5, PROSTATE_SHAPE).astype(np.int16)
    organ_z = (z >= 3) & (z <= 8)
    vol = {"ct": ct,
           "dose": np.where(body, rng.uniform(0, 78, PROSTATE_SHAPE), 0).astype(np.float32),
           "Rectum": (abs(x - 12) <= 1) & (abs(y - 6) <= 1) & organ_z,      # posterior (low y)
           "Bladder": (abs(x - 12) <= 2) & (abs(y - 14) <= 2) & organ_z,    # anterior (high y)
           "Femur_L": (abs(x - 4) <= 1) & (abs(y - 10) <= 1) & organ_z,     # patient's left: low x in RAS
           "Femur_R": (abs(x - 20) <= 1) & (abs(y - 10) <= 1) & organ_z,
           "External": body, "PTV": (abs(x - 12) <= 1) & (abs(y - 10) <= 1) & organ_z}
    return vol


def write_prostate(root: Path, n: int = 10, split_folders: bool = False, seed: int = 0) -> dict[str, dict]:
    rng = np.random.default_rng(seed)
    affine = np.diag([2.0, 2.0, 3.0, 1.0])
    root.mkdir(parents=True, exist_ok=True)
    (root / "structure_map.json").write_text(json.dumps(PROSTATE_MAP))
    out = {}
    for i in range(n):
        name = f"patient{i:02d}"
        folder = root / (("train", "train", "val", "test")[i % 4] if split_folders else "") / name
        (folder / "structures").mkdir(parents=True)
        vol = prostate_patient(rng)
        for key, arr in vol.items():
            path = folder / f"{key}.nii.gz" if key in ("ct", "dose") else folder / "structures" / f"{key}.nii.gz"
            nib.save(nib.Nifti1Image(arr.astype(np.uint8) if arr.dtype == bool else arr, affine), path)
        out[name] = vol
    return out
