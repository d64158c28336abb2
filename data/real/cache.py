"""The prepared-data cache: preprocessed splits as .npy files, keyed by what produced them.

Layout: ``<cache>/<dataset>/<key>/`` holding ``manifest.json``, optional side files (``split.csv``)
and one folder per split with ``image.npy``, ``target_<task>.npy``, ``extra_<name>.npy`` and
``case_id.npy``. The key hashes the dataset, the reader's version, the preprocessing parameters and
a fingerprint of the raw files (relative path, size and mtime of each), so changed or different raw
data gets a new entry and is never served stale. An entry is written to a temporary folder and
renamed into place: an interrupted prepare never leaves a half entry. Arrays are appended row
chunks at a time straight to disk, so a dataset larger than memory can be prepared.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import tempfile
from pathlib import Path

import numpy as np

from data.base import SPLITS, DataError, Split, Volumes

ENV_VAR = "CTAN_DATA_CACHE"
DEFAULT_CACHE = Path(__file__).resolve().parents[1] / "cache"  # data/cache/ (git-ignored)
MANIFEST = "manifest.json"
VOLUMES = "volumes"  # the folder of an entry's test volumes
_HEADER_BYTES = 256  # fixed .npy header size, so the row count can be written after the data


def cache_root(cache: str | os.PathLike | None = None) -> Path:
    """``cache`` if given, else ``$CTAN_DATA_CACHE``, else ``data/cache/`` in the repository."""
    return Path(cache or os.environ.get(ENV_VAR) or DEFAULT_CACHE).expanduser().resolve()


def fingerprint(root: Path, files: list[Path]) -> str:
    """Hash of (relative path, size, mtime) of every raw file a reader uses."""
    h = hashlib.sha256()
    for f in sorted(files):
        try:
            st = f.stat()
        except OSError as exc:
            raise DataError(f"{f}: cannot read ({exc.strerror})") from None
        h.update(f"{f.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def entry_key(dataset: str, version: str, params: dict, raw_fingerprint: str) -> str:
    blob = json.dumps({"dataset": dataset, "version": version, "params": params, "raw": raw_fingerprint},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class _NpyAppender:
    """A .npy file whose rows are appended in chunks; the header (row count) is written on close."""

    def __init__(self, path: Path, dtype, row_shape: tuple[int, ...]):
        self.path, self.dtype, self.row_shape, self.rows = path, np.dtype(dtype), tuple(row_shape), 0
        self.file = open(path, "wb")
        self.file.write(b"\0" * _HEADER_BYTES)

    def append(self, chunk: np.ndarray) -> None:
        chunk = np.asarray(chunk)
        if chunk.shape[1:] != self.row_shape:
            raise ValueError(f"{self.path.name}: rows of shape {chunk.shape[1:]}, expected {self.row_shape}")
        self.file.write(np.ascontiguousarray(chunk, dtype=self.dtype).tobytes())
        self.rows += len(chunk)

    def close(self) -> None:
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                  "shape": (self.rows,) + self.row_shape}
        text = repr(header).encode("latin1")
        body_len = _HEADER_BYTES - 10  # magic (6) + version (2) + header length (2)
        self.file.seek(0)
        self.file.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", body_len) + text.ljust(body_len - 1) + b"\n")
        self.file.close()


class EntryWriter:
    """Receives row chunks per split from a reader; ``commit`` renames the finished entry into place."""

    def __init__(self, final: Path):
        self.final = final
        final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{final.name}-", dir=final.parent))
        self.arrays: dict[tuple[str, str], _NpyAppender] = {}
        self.case_ids: dict[str, list] = {s: [] for s in (*SPLITS, VOLUMES)}

    def _append(self, split: str, name: str, chunk: np.ndarray, dtype) -> None:
        key = (split, name)
        if key not in self.arrays:
            (self.tmp / split).mkdir(exist_ok=True)
            self.arrays[key] = _NpyAppender(self.tmp / split / f"{name}.npy", dtype, np.shape(chunk)[1:])
        self.arrays[key].append(chunk)

    def append(self, split: str, image: np.ndarray, targets: dict[str, np.ndarray], case_id,
               extras: dict[str, np.ndarray] | None = None) -> None:
        """Append ``len(image)`` samples to ``split`` (targets and extras row-aligned with ``image``)."""
        n = len(image)
        self._append(split, "image", image, np.float32)
        for name, y in targets.items():
            self._append(split, f"target_{name}", y, np.float32 if np.asarray(y).dtype.kind == "f" else np.int64)
        for name, x in (extras or {}).items():
            self._append(split, f"extra_{name}", x, bool if np.asarray(x).dtype == bool else np.float32)
        ids = list(case_id) if np.ndim(case_id) else [case_id] * n
        if len(ids) != n:
            raise ValueError(f"{len(ids)} case ids for {n} samples")
        self.case_ids[split].extend(ids)

    def append_volume(self, image: np.ndarray, dose: np.ndarray, dose_mask: np.ndarray, structures: np.ndarray,
                      voxel_mm, z: np.ndarray, case_id) -> None:
        """Append one patient's slices to the test volumes (``data.base.Volumes``)."""
        n = len(image)
        for name, chunk, dtype in (("image", image, np.float32), ("dose", dose, np.float32),
                                   ("dose_mask", dose_mask, bool), ("structures", structures, np.int32),
                                   ("voxel_mm", np.tile(np.asarray(voxel_mm, np.float32), (n, 1)), np.float32),
                                   ("z", z, np.int64)):
            self._append(VOLUMES, name, chunk, dtype)
        self.case_ids[VOLUMES].extend([case_id] * n)

    def write_text(self, name: str, text: str) -> None:
        (self.tmp / name).write_text(text)

    def commit(self, manifest: dict) -> Path:
        for a in self.arrays.values():
            a.close()
        for split, ids in self.case_ids.items():
            if ids:
                np.save(self.tmp / split / "case_id.npy", np.asarray(ids))
        (self.tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        self.tmp.chmod(0o755)  # mkdtemp made it private; the entry is for every user of the cache
        try:
            os.rename(self.tmp, self.final)
        except OSError:  # another process committed the same key first: its entry is identical
            if not (self.final / MANIFEST).is_file():
                raise
            shutil.rmtree(self.tmp, ignore_errors=True)
        return self.final

    def abort(self) -> None:
        for a in self.arrays.values():
            if not a.file.closed:
                a.file.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def read_manifest(entry: Path) -> dict:
    return json.loads((entry / MANIFEST).read_text())


def load_entry(entry: Path) -> dict[str, Split]:
    """The splits of a committed entry, memory-mapped (copy-on-write: the files are never modified)."""
    splits = {}
    for split in SPLITS:
        d = entry / split
        if not (d / "image.npy").is_file():
            continue
        arrays = {p.stem: np.load(p, mmap_mode="c") for p in sorted(d.glob("*.npy")) if p.stem != "case_id"}
        splits[split] = Split(
            image=arrays.pop("image"),
            targets={k[len("target_"):]: v for k, v in arrays.items() if k.startswith("target_")},
            case_id=np.load(d / "case_id.npy"),
            extras={k[len("extra_"):]: v for k, v in arrays.items() if k.startswith("extra_")})
    return splits


def load_volumes(entry: Path) -> Volumes | None:
    """The test volumes of a committed entry (memory-mapped), or None when it has none."""
    d = entry / VOLUMES
    if not (d / "image.npy").is_file():
        return None
    arrays = {p.stem: np.load(p, mmap_mode="c") for p in sorted(d.glob("*.npy"))}
    return Volumes(**arrays)


def entries(dataset: str, cache: str | os.PathLike | None = None) -> list[tuple[Path, dict]]:
    """Committed entries of ``dataset``, newest first, with their manifests."""
    folder = cache_root(cache) / dataset
    found = []
    for d in folder.glob("*/" + MANIFEST) if folder.is_dir() else ():
        if d.parent.name.startswith("."):
            continue
        try:
            found.append((d.parent, read_manifest(d.parent)))
        except (OSError, ValueError):
            continue  # unreadable manifest: not an entry
    return sorted(found, key=lambda e: e[1].get("created", ""), reverse=True)
