"""Prostate (private in the paper): a documented NIfTI export format any clinic can fill.

    <root>/structure_map.json            {"<structure file name>": "rectum|bladder|left_femur|right_femur|body", ...}
    <root>/{train,val,test}/<patient>/   (official splits) or <root>/<patient>/ (seeded 70/10/20 split)
        ct.nii.gz                        planning CT in HU
        dose.nii.gz                      planned dose in Gy, on the CT grid
        structures/<name>.nii.gz         one binary mask per structure, on the CT grid

Read with nibabel, reoriented to RAS; samples are the axial slices where any of the four organs is
present, shown radiologically (anterior up, patient's right on the image's left). See docs/datasets.md.
"""
from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np

from data import prostate
from data.base import DataError
from data.real.common import BadInput, resize, stratified_split

VERSION = "prostate-1"
ORGANS = prostate.ORGANS
MAP_FILE = "structure_map.json"
SPLIT_DIRS = ("train", "val", "test")
HU_WINDOW = (-1000.0, 1000.0)
BODY_HU = -500.0     # without a mapped body structure, the dose mask is CT > -500 HU, holes filled per slice
MAX_DOSE_GY = 150.0  # above this the dose was surely exported in cGy
SPLIT_SEED = 0
LAYOUT = f"{MAP_FILE} and [train|val|test/]<patient>/ct.nii.gz, dose.nii.gz, structures/<name>.nii.gz"
SUBDIRS = ()


def looks_like(path: Path) -> bool:
    return (path / MAP_FILE).is_file()


def params(size: int) -> dict:
    return {"size": size, "slices": "any of the 4 organs", "hu_window": list(HU_WINDOW), "body_hu": BODY_HU,
            "overlap": "later organ wins", "split_seed": SPLIT_SEED}


def read_map(root: Path) -> dict[str, str]:
    path = root / MAP_FILE
    try:
        mapping = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: missing file") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
        raise DataError(f"{path}: expected an object mapping structure file names to organ names")
    unknown = sorted(set(mapping.values()) - set(ORGANS) - {"body"})
    if unknown:
        raise DataError(f"{path}: unknown organ name(s) {unknown}; use {', '.join(ORGANS)} or body")
    unmapped = [o for o in ORGANS if o not in mapping.values()]
    if unmapped:
        raise DataError(f"{path}: no structure is mapped to {unmapped}")
    return mapping


def _is_patient(p: Path) -> bool:
    return p.is_dir() and not p.name.startswith(".") and p.name not in SPLIT_DIRS


def patients(root: Path) -> dict[str, list[Path]]:
    """Patients per split: the official split folders if present, else a seeded split (saved)."""
    if any((root / s).is_dir() for s in SPLIT_DIRS):
        out = {}
        for s in SPLIT_DIRS:
            if not (root / s).is_dir():
                raise DataError(f"{root / s}: missing folder (with split folders all of {SPLIT_DIRS} are needed)")
            out[s] = sorted(p for p in (root / s).iterdir() if _is_patient(p))
            if not out[s]:
                raise DataError(f"{root / s}: no patient folders")
        return out
    flat = sorted(p for p in root.iterdir() if _is_patient(p))
    if not flat:
        raise DataError(f"{root}: no patient folders")
    assign = stratified_split([p.name for p in flat], ["all"] * len(flat), SPLIT_SEED)
    return {s: [p for p in flat if assign[p.name] == s] for s in SPLIT_DIRS}


def _nii_files(folder: Path) -> list[Path]:
    return sorted(f for f in folder.glob("*.nii*") if f.name.endswith((".nii", ".nii.gz")))


def _stem(f: Path) -> str:
    return f.name[: -len(".nii.gz")] if f.name.endswith(".nii.gz") else f.name[: -len(".nii")]


def inventory(root: Path) -> list[Path]:
    files = [root / MAP_FILE]
    for pats in patients(root).values():
        for p in pats:
            files += _nii_files(p) + _nii_files(p / "structures")
    return files


def read_nifti(path: Path, ref=None) -> tuple[np.ndarray, object]:
    """A 3D volume in RAS orientation (and its nibabel image); checked against the CT grid ``ref``."""
    import nibabel as nib  # the format's library loads only when this format is read
    if not path.is_file():
        raise DataError(f"{path}: missing file")
    try:
        img = nib.as_closest_canonical(nib.load(path))
        data = np.asanyarray(img.dataobj)
    except (nib.filebasedimages.ImageFileError, nib.spatialimages.HeaderDataError, OSError, EOFError,
            zlib.error, ValueError) as exc:
        raise DataError(f"{path}: corrupt or truncated NIfTI ({str(exc).splitlines()[0][:120]})") from None
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise DataError(f"{path}: expected a 3D volume, got shape {data.shape}")
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        bad = ~np.isfinite(data)
        kind = "NaN" if np.isnan(data).any() else "infinite"
        raise DataError(f"{path}: {int(bad.sum())} voxel(s) are {kind} (first at voxel "
                        f"{tuple(int(i) for i in np.argwhere(bad)[0])})")
    if ref is not None:
        if data.shape != ref.shape[:3]:
            raise DataError(f"{path}: volume of shape {data.shape} but the CT is {ref.shape[:3]}")
        if not np.allclose(img.affine, ref.affine, atol=1e-3):
            raise DataError(f"{path}: not on the CT's voxel grid (affine differs from ct.nii.gz)")
    return data, img


def _axial(vol: np.ndarray, z: np.ndarray) -> np.ndarray:
    """RAS [x, y, z] -> [Z, rows anterior->posterior, cols patient right->left]."""
    return np.ascontiguousarray(np.transpose(vol[::-1, ::-1, z], (2, 1, 0)))


def read_patient(pdir: Path, mapping: dict[str, str]) -> dict:
    ct, ct_img = read_nifti(pdir / "ct.nii.gz")
    dose, _ = read_nifti(pdir / "dose.nii.gz", ct_img)
    dose = dose.astype(np.float32)
    if dose.min() < -1e-3 or dose.max() > MAX_DOSE_GY:
        raise DataError(f"{pdir / 'dose.nii.gz'}: dose range {dose.min():.4g}..{dose.max():.4g} is not "
                        f"0..{MAX_DOSE_GY:.0f} Gy (exported in cGy, or corrupt?)")
    masks: dict[str, np.ndarray] = {}
    for f in _nii_files(pdir / "structures"):
        organ = mapping.get(_stem(f))
        if organ is not None:
            m, _ = read_nifti(f, ct_img)
            masks[organ] = masks.get(organ, False) | (m > 0)
    missing = [o for o in ORGANS if o not in masks]
    if missing:
        raise DataError(f"{pdir / 'structures'}: no mask for {missing} (names mapped in {MAP_FILE}: "
                        f"{sorted(k for k, v in mapping.items() if v in missing)})")
    label = np.zeros(ct.shape, np.uint8)
    for k, organ in enumerate(ORGANS, start=1):  # a later organ overwrites an earlier one
        label[masks[organ]] = k
    ct = np.asarray(ct, np.float32)
    if "body" in masks:
        body = masks["body"]
    else:
        from scipy import ndimage
        body = np.stack([ndimage.binary_fill_holes(ct[:, :, k] > BODY_HU) for k in range(ct.shape[2])], axis=2)
    return {"ct": ct, "dose": dose, "label": label, "dose_mask": body}


def read(root: Path, size: int, writer, bad: BadInput) -> dict:
    mapping = read_map(root)
    info = {"unit": "slices", "patients": {}, "no_organ_slices": []}
    for split, pats in patients(root).items():
        info["patients"][split] = []
        for pdir in pats:
            try:
                vol = read_patient(pdir, mapping)
            except DataError as exc:
                bad.handle(exc)
                continue
            z = np.nonzero(vol["label"].any(axis=(0, 1)))[0]
            if len(z) == 0:
                info["no_organ_slices"].append(pdir.name)
                continue
            lo, hi = HU_WINDOW
            ct = (np.clip(_axial(vol["ct"], z), lo, hi) - lo) / (hi - lo) * 2 - 1
            writer.append(split, image=resize(ct.astype(np.float32), size)[:, None], case_id=pdir.name,
                          targets={"segmentation": resize(_axial(vol["label"], z), size, nearest=True).astype(np.int64),
                                   "dose": resize(_axial(vol["dose"], z), size)[:, None]},
                          extras={"dose_mask": resize(_axial(vol["dose_mask"], z), size, nearest=True)})
            info["patients"][split].append(pdir.name)
    split_csv = "patient,split\n" + "".join(f"{p},{s}\n" for s, ps in info["patients"].items() for p in ps)
    writer.write_text("split.csv", split_csv)
    return info


def describe(manifest: dict) -> str:
    c = manifest["cases"]
    return (f"prostate planning CT axial slices with an organ ({manifest['params']['size']} px; patients "
            f"train {c['train']} / val {c['val']} / test {c['test']})")
