"""Real OpenKBP (Babier et al. 2021) as published in open-kbp's ``provided-data/`` (docs/datasets.md).

``train-pats/``, ``validation-pats/``, ``test-pats/`` (the official splits), each ``pt_N/`` holding
sparse CSVs of 128x128x128 C-order volumes: ``ct.csv``, ``dose.csv`` (header ``,data``, rows
``flat_index,value``), ``possible_dose_mask.csv`` and one file per structure (rows ``flat_index,``),
plus ``voxel_dimensions.csv``. Volume axes (as open-kbp's loader reshapes them): 0 = anterior to
posterior (image rows), 1 = patient's right to left (image columns, radiological view),
2 = axial slice index. Samples are the axial slices where any of the four OARs is present.
"""
from __future__ import annotations

import sys

from pathlib import Path

import numpy as np
import pandas as pd

from data import openkbp
from data.base import DataError
from data.real.common import BadInput, resize

VERSION = "openkbp-2"  # 2: test volumes with the DVH structures
SHAPE = (128, 128, 128)
VOXELS = int(np.prod(SHAPE))
SPLIT_DIRS = {"train": "train-pats", "val": "validation-pats", "test": "test-pats"}
ORGAN_FILES = openkbp.RAW_STRUCTURES        # Brainstem, SpinalCord, LeftParotid, RightParotid -> labels 1..4
DVH_STRUCTURES = openkbp.DVH_STRUCTURES     # the test volumes' structure bits
REQUIRED = ("ct", "dose", "possible_dose_mask", "voxel_dimensions")
PARALLEL_FROM = 8  # patients: fewer are read in this process
CT_OFFSET = 1000.0                          # stored CT = HU + ~1000 (air ~ 0, water ~ 1000)
HU_WINDOW = (-1000.0, 1000.0)               # clipped, then scaled to [-1, 1]
LAYOUT = "train-pats/, validation-pats/, test-pats/ holding pt_N/ folders of sparse CSVs (open-kbp provided-data)"
SUBDIRS = ("provided-data",)


def looks_like(path: Path) -> bool:
    return any((path / d).is_dir() for d in SPLIT_DIRS.values())


def params(size: int) -> dict:
    return {"size": size, "slices": "any of the 4 OARs", "hu_window": list(HU_WINDOW),
            "test_needs_all_oars": True, "overlap": "later organ wins"}


def _patient_key(p: Path):
    tail = p.name[3:]
    return (0, int(tail), "") if tail.isdigit() else (1, 0, p.name)


def patients(root: Path) -> dict[str, list[Path]]:
    out = {}
    for split, d in SPLIT_DIRS.items():
        folder = root / d
        if not folder.is_dir():
            raise DataError(f"{folder}: missing folder (OpenKBP needs {', '.join(SPLIT_DIRS.values())})")
        pats = sorted((p for p in folder.iterdir() if p.is_dir() and p.name.startswith("pt_")), key=_patient_key)
        if not pats:
            raise DataError(f"{folder}: no pt_N patient folders")
        out[split] = pats
    return out


def inventory(root: Path) -> list[Path]:
    names = REQUIRED + tuple(name for name, _ in DVH_STRUCTURES)  # the four OARs are DVH structures too
    return [f for pats in patients(root).values() for p in pats for f in (p / f"{n}.csv" for n in names)
            if f.is_file()]


def read_sparse(path: Path, mask: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Flat voxel indices (and values unless ``mask``) of one sparse OpenKBP CSV, validated."""
    try:
        with open(path, "rb") as f:
            header = f.readline()
    except FileNotFoundError:
        raise DataError(f"{path}: missing file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    if header.rstrip(b"\r\n") != b",data":
        raise DataError(f"{path}: empty file" if not header else
                        f"{path}: not an OpenKBP sparse CSV (first line {header[:30]!r}, expected ',data')")
    try:
        df = pd.read_csv(path, skiprows=1, header=None, names=["index", "value"])
    except pd.errors.EmptyDataError:
        df = pd.DataFrame({"index": np.zeros(0, np.int64), "value": np.zeros(0)})
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path}: corrupt CSV ({str(exc).splitlines()[0][:120]})") from None
    index, value = df["index"], df["value"]
    if not pd.api.types.is_integer_dtype(index):
        num = pd.to_numeric(index, errors="coerce")
        bad = num.isna() | (num != np.round(num))
        row = int(np.argmax(bad.values)) if bad.any() else 0
        raise DataError(f"{path}: line {row + 2}: voxel index {str(index.iloc[row])[:20]!r} is not an integer "
                        f"(corrupt or truncated file?)")
    idx = index.to_numpy(np.int64)
    out_of_range = (idx < 0) | (idx >= VOXELS)
    if out_of_range.any():
        row = int(np.argmax(out_of_range))
        raise DataError(f"{path}: line {row + 2}: voxel index {idx[row]} is outside the 128x128x128 volume")
    if len(np.unique(idx)) != len(idx):
        raise DataError(f"{path}: a voxel index is listed twice")
    if mask:
        if value.notna().any():
            row = int(np.argmax(value.notna().values))
            raise DataError(f"{path}: line {row + 2}: a mask lists voxels with an empty value, got {value.iloc[row]!r}")
        return idx, None
    num = pd.to_numeric(value, errors="coerce")
    if num.isna().any():
        row = int(np.argmax(num.isna().values))
        what = "missing value" if pd.isna(value.iloc[row]) else f"value {str(value.iloc[row])[:20]!r} is not a number"
        raise DataError(f"{path}: line {row + 2}: {what} (corrupt or truncated file?)")
    vals = num.to_numpy(np.float64)
    if not np.isfinite(vals).all():
        raise DataError(f"{path}: contains infinite values")
    return idx, vals


def read_voxel_dimensions(path: Path) -> list[float]:
    try:
        dims = np.loadtxt(path, dtype=np.float64, ndmin=1)
    except FileNotFoundError:
        raise DataError(f"{path}: missing file") from None
    except (ValueError, OSError) as exc:
        raise DataError(f"{path}: not three numbers ({str(exc).splitlines()[0][:80]})") from None
    if dims.shape != (3,) or not (np.isfinite(dims) & (dims > 0)).all():
        raise DataError(f"{path}: expected three positive voxel sizes in mm, got {dims.tolist()}")
    return dims.tolist()


def read_patient(pdir: Path, dvh: bool = False) -> dict:
    """Dense volumes of one patient: ct, dose (Gy), possible-dose mask, OAR labels (0..4) and, with
    ``dvh``, the bit masks of OpenKBP's ten DVH structures (bit k = ``DVH_STRUCTURES[k]``)."""
    vol = {}
    for name in ("ct", "dose"):
        idx, vals = read_sparse(pdir / f"{name}.csv", mask=False)
        if len(idx) == 0:
            raise DataError(f"{pdir / (name + '.csv')}: no voxels listed")
        if name == "dose" and (vals < 0).any():
            raise DataError(f"{pdir / 'dose.csv'}: negative dose {vals.min():.3g} Gy")
        dense = np.zeros(VOXELS, np.float32)
        dense[idx] = vals
        vol[name] = dense.reshape(SHAPE)
    idx, _ = read_sparse(pdir / "possible_dose_mask.csv", mask=True)
    if len(idx) == 0:
        raise DataError(f"{pdir / 'possible_dose_mask.csv'}: no voxels listed")
    pdm = np.zeros(VOXELS, bool)
    pdm[idx] = True
    vol["dose_mask"] = pdm.reshape(SHAPE)
    vol["voxel_mm"] = read_voxel_dimensions(pdir / "voxel_dimensions.csv")
    label = np.zeros(VOXELS, np.uint8)
    painted = np.zeros(VOXELS, bool)
    bits = np.zeros(VOXELS, np.int32)
    vol["present"], vol["overlap"] = [], 0
    for k, organ in enumerate(ORGAN_FILES, start=1):  # a later organ overwrites an earlier one
        path = pdir / f"{organ}.csv"
        if not path.is_file():
            continue  # OpenKBP: a missing structure file means the organ is absent
        idx, _ = read_sparse(path, mask=True)
        vol["overlap"] += int(painted[idx].sum())
        painted[idx] = True
        label[idx] = k
        vol["present"].append(organ)
    vol["label"] = label.reshape(SHAPE)
    if dvh:
        for bit, (structure, _) in enumerate(DVH_STRUCTURES):
            path = pdir / f"{structure}.csv"
            if path.is_file():
                bits[read_sparse(path, mask=True)[0]] |= 1 << bit
        vol["structures"] = bits.reshape(SHAPE)
    return vol


def normalise_ct(ct: np.ndarray) -> np.ndarray:
    lo, hi = HU_WINDOW
    return ((np.clip(ct - CT_OFFSET, lo, hi) - lo) / (hi - lo) * 2 - 1).astype(np.float32)


def _axial(a: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Volume axes (rows, cols, axial) -> [Z, rows, cols] at the axial indices ``z``."""
    return np.ascontiguousarray(np.moveaxis(a[:, :, z], 2, 0))


def prepare_patient(split: str, pdir: Path, size: int, worker: bool = False) -> dict:
    """Everything one patient contributes to the cache entry (run in a worker process): its Table 2
    slices (those with an OAR; none for a test patient lacking one of the four, as the paper) and,
    for a test patient, its volume slices (every slice the possible-dose mask or a DVH structure
    touches). A DataError is returned, not raised, so the parent applies --skip-bad in order."""
    if worker:
        import torch
        torch.set_num_threads(1)  # the worker processes share the cores
    out = {"split": split, "name": pdir.name}
    try:
        vol = read_patient(pdir, dvh=split == "test")
    except DataError as exc:
        return {**out, "error": exc}
    out.update(present=vol["present"], overlap=vol["overlap"], voxel_mm=vol["voxel_mm"])
    image = normalise_ct(vol["ct"])
    z = np.nonzero(vol["label"].any(axis=(0, 1)))[0]
    if len(z) and not (split == "test" and len(vol["present"]) < len(ORGAN_FILES)):
        out["slices"] = {"image": resize(_axial(image, z), size)[:, None],
                         "targets": {"segmentation": resize(_axial(vol["label"], z), size, nearest=True).astype(np.int64),
                                     "dose": resize(_axial(vol["dose"], z), size)[:, None]},
                         "extras": {"dose_mask": resize(_axial(vol["dose_mask"], z), size, nearest=True)}}
    if split == "test":
        zv = np.nonzero((vol["dose_mask"] | (vol["structures"] != 0)).any(axis=(0, 1)))[0]
        out["volume"] = {"image": resize(_axial(image, zv), size)[:, None], "dose": _axial(vol["dose"], zv),
                         "dose_mask": _axial(vol["dose_mask"], zv), "structures": _axial(vol["structures"], zv),
                         "voxel_mm": vol["voxel_mm"], "z": zv}
    return out


def read(root: Path, size: int, writer, bad: BadInput, jobs: int | None = None) -> dict:
    """Read every patient (``jobs`` processes, default one per core) in the official splits' order,
    with a progress bar; append the Table 2 slices and the test volumes to ``writer``."""
    import os

    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    info = {"unit": "slices", "patients": {}, "excluded_incomplete_test": [], "no_oar_slices": [],
            "overlap_voxels": 0, "voxel_mm": {}, "volume_patients": []}
    work = [(split, pdir) for split, pats in patients(root).items() for pdir in pats]
    jobs = 1 if len(work) < PARALLEL_FROM else jobs or os.cpu_count() or 1  # processes cost ~1 s to start
    results = Parallel(n_jobs=jobs, return_as="generator")(
        delayed(prepare_patient)(s, p, size, jobs > 1) for s, p in work)
    for res in tqdm(results, total=len(work), desc="openkbp patients", unit="patient",
                    disable=not sys.stderr.isatty()):
        split, name = res["split"], res["name"]
        info["patients"].setdefault(split, [])
        if "error" in res:
            bad.handle(res["error"])
            continue
        if "slices" in res:
            writer.append(split, case_id=name, **res["slices"])
            info["patients"][split].append(name)
            info["overlap_voxels"] += res["overlap"]
        elif split == "test" and len(res["present"]) < len(ORGAN_FILES):
            info["excluded_incomplete_test"].append(name)  # as the paper did
        else:
            info["no_oar_slices"].append(name)
        if "volume" in res:
            writer.append_volume(case_id=name, **res["volume"])
            info["volume_patients"].append(name)
        info["voxel_mm"][name] = res["voxel_mm"]
    return info


def volume_from_slices(z: np.ndarray, slices: np.ndarray) -> np.ndarray:
    """A 128x128x128 volume (OpenKBP's axes) holding ``slices`` ([n, rows, cols]) at axial indices
    ``z``; zero elsewhere."""
    vol = np.zeros(SHAPE, np.float32)
    vol[:, :, np.asarray(z)] = np.moveaxis(np.asarray(slices, np.float32), 0, 2)
    return vol


def write_dose_csv(path: Path, volume: np.ndarray) -> None:
    """A dose volume in the challenge's sparse format (that of ``dose.csv``: header ``,data``, rows
    ``flat C-order index,Gy`` of the voxels above 0), written atomically. The official loader cannot
    read a file without rows, so an all-zero volume is written as one zero voxel."""
    from benchmark.atomic import write_text

    flat = np.asarray(volume, np.float64).reshape(-1)
    idx = np.flatnonzero(flat > 0)
    if len(idx) == 0:
        idx = np.zeros(1, np.int64)
    write_text(path, ",data\n" + "".join(f"{i},{float(flat[i])!r}\n" for i in idx))


def describe(manifest: dict) -> str:
    c = manifest["cases"]
    v = len(manifest.get("info", {}).get("volume_patients", []))
    return (f"OpenKBP axial slices with an OAR ({manifest['params']['size']} px; patients train {c['train']} / "
            f"val {c['val']} / test {c['test']}; {v} whole test patients for the dose and DVH scores)")
