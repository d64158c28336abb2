"""Prepare a real dataset once: validate the raw files, cache preprocessed arrays, report counts.

    python -m data.prepare DATASET --source PATH [--cache DIR] [--size N ...] [--skip-bad]

Runs on first use too (``reproduce.py --data real --data-root PATH``); training then reads
memory-mapped .npy files and never decodes CSV, JPEG, PNG, MHA or NIfTI again. See docs/datasets.md.

A reader module (``data.real_<dataset>``) provides ``SPEC``, ``VERSION``, ``LAYOUT`` (one line for
error messages), ``SUBDIRS`` (extra places to look under a root), ``looks_like(path)``,
``inventory(root)`` (the raw files it uses; structural errors raise), ``params(size)`` and
``read(root, size, writer, bad)`` (appends samples to the :class:`~data.cache.EntryWriter`;
returns facts for the manifest).
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from data import cache as C
from data.base import SPLITS, DataError, TaskData

READERS = {"prostate": "data.real_prostate", "openkbp": "data.real_openkbp",
           "ham10000": "data.real_ham10000", "stoic": "data.real_stoic"}
SPLIT_FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}  # where a dataset has no official split
# Systematic stratified allocation: within each stratum (shuffled with the seed) position i gets
# _PATTERN[i % 10], the position counter running on across strata, so every split gets its share
# of every stratum (to within one) and the overall split is 70/10/20.
_PATTERN = ("train", "test", "train", "val", "train", "train", "test", "train", "train", "train")


def reader(name: str):
    if name not in READERS:
        raise DataError(f"unknown dataset {name!r}; choose one of {sorted(READERS)}")
    return importlib.import_module(READERS[name])


class BadInput:
    """What to do with a bad sample: raise its DataError, or (``skip``) record it and go on."""

    def __init__(self, skip: bool):
        self.skip, self.skipped = skip, []

    def handle(self, exc: DataError) -> None:
        if not self.skip:
            raise exc
        self.skipped.append(str(exc))


def _warn_skipped(name: str, skipped: list[str], where: Path) -> None:
    if skipped:
        warnings.warn(f"{name}: skipped {len(skipped)} bad sample(s) (--skip-bad); first: {skipped[0]} "
                      f"(all listed in {where / C.MANIFEST})", stacklevel=3)


# ---------------------------------------------------------------------------------------------
# helpers shared by the readers

def resize(stack: np.ndarray, size: int, nearest: bool = False) -> np.ndarray:
    """Resize ``[N, H, W]`` or ``[N, C, H, W]`` to ``size`` x ``size``: bilinear with antialiasing
    for intensities, nearest for labels and masks (dtype kept)."""
    if stack.shape[-2:] == (size, size):
        return stack
    t = torch.from_numpy(np.ascontiguousarray(stack, dtype=np.float32))
    t4 = t if t.ndim == 4 else t[:, None]
    if nearest:
        out = F.interpolate(t4, size=(size, size), mode="nearest-exact")
    else:
        out = F.interpolate(t4, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    out = out if t.ndim == 4 else out[:, 0]
    return out.numpy().astype(stack.dtype, copy=False)


def read_label_table(path: Path, required: tuple[str, ...], key: str, what: str) -> pd.DataFrame:
    """A publisher's label CSV as strings: one clear error for a missing or corrupt file, missing
    columns, or an id (``key``) listed twice."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise DataError(f"{path}: missing file") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{path}: corrupt CSV ({str(exc).splitlines()[0][:120]})") from None
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing} (has {list(table.columns)})")
    table = table.apply(lambda c: c.str.strip())
    dup = table[key].duplicated()
    if dup.any():
        raise DataError(f"{path}: {what} {table[key][dup].iloc[0]} is listed twice")
    return table


def stratified_split(keys: list, strata: list, seed: int) -> dict:
    """Seeded stratified assignment of ``keys`` to train/val/test (70/10/20), as ``{key: split}``."""
    rng = np.random.default_rng(seed)
    by_stratum: dict = {}
    for k, s in zip(keys, strata):
        by_stratum.setdefault(s, []).append(k)
    out, position = {}, 0
    for s in sorted(by_stratum, key=str):
        members = sorted(by_stratum[s], key=str)
        for i in rng.permutation(len(members)):
            out[members[i]] = _PATTERN[position % len(_PATTERN)]
            position += 1
    return out


# ---------------------------------------------------------------------------------------------
# finding the raw data and the cache

def find_root(name: str, data_root: str | os.PathLike) -> Path | None:
    """The folder holding ``name``: ``data_root`` itself or its subfolder ``name`` (by layout)."""
    mod = reader(name)
    base = Path(data_root).expanduser()
    if not base.is_dir():
        raise DataError(f"--data-root {base}: no such folder")
    for parent in (base, base / name):
        for c in (parent, *(parent / s for s in mod.SUBDIRS)):
            if c.is_dir() and mod.looks_like(c):
                return c.resolve()
    return None


def _usable_entry(name: str, size: int, cache) -> tuple[Path | None, Path | None, dict | None]:
    """Without a data root: (raw source recorded by the newest prepare, cached entry at ``size``)."""
    mod = reader(name)
    found = [(d, m) for d, m in C.entries(name, cache) if m.get("version") == mod.VERSION]
    for _, m in found:
        src = Path(m.get("source", ""))
        if src.is_dir() and mod.looks_like(src):
            return src, None, None
    for d, m in found:
        if m.get("params") == mod.params(size):
            return None, d, m
    return None, None, None


def find_real(name: str, data_root: str | None, cache=None) -> str | None:
    """Where real ``name`` data would come from (a raw folder or a prepared cache), or None."""
    if data_root:
        root = find_root(name, data_root)
        if root is not None:
            return str(root)
    entries = [d for d, m in C.entries(name, cache) if m.get("version") == reader(name).VERSION]
    return f"prepared cache {entries[0]}" if entries else None


def prepare(name: str, source: str | os.PathLike, size: int, cache=None, skip_bad: bool = False,
            log=print) -> tuple[Path, dict]:
    """The cache entry of raw ``source`` at ``size``: reused if present, else prepared now."""
    mod = reader(name)
    source = Path(source).expanduser().resolve()
    if not source.is_dir():
        raise DataError(f"{source}: no such folder ({name} expects {mod.LAYOUT})")
    root = find_root(name, source)
    if root is None:
        raise DataError(f"{source}: not a {name} folder (expected {mod.LAYOUT}, here or in {name}/)")
    start = time.perf_counter()
    files = mod.inventory(root)
    params = mod.params(size)
    fp = C.fingerprint(root, files)
    final = C.cache_root(cache) / name / C.entry_key(name, mod.VERSION, params, fp)
    if (final / C.MANIFEST).is_file():
        manifest = C.read_manifest(final)
        log(f"[data] {name}: prepared cache {final} ({_counts_text(manifest)})")
    else:
        log(f"[data] {name}: preparing {len(files)} raw files from {root} at {size}x{size} ...")
        writer, bad = C.EntryWriter(final), BadInput(skip_bad)
        try:
            info = mod.read(root, size, writer, bad)
            manifest = {"dataset": name, "version": mod.VERSION, "params": params, "source": str(root),
                        "fingerprint": fp, "raw_files": len(files),
                        "counts": {s: len(writer.case_ids[s]) for s in SPLITS},
                        "cases": {s: len(set(writer.case_ids[s])) for s in SPLITS},
                        "skipped": bad.skipped, "info": info,
                        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                        "seconds": round(time.perf_counter() - start, 2)}
            writer.commit(manifest)
        except BaseException:
            writer.abort()
            raise
        log(f"[data] {name}: prepared in {manifest['seconds']:.1f} s -> {final} ({_counts_text(manifest)})")
    _check_skipped(name, manifest, final, skip_bad)
    return final, manifest


def _check_skipped(name: str, manifest: dict, entry: Path, skip_bad: bool) -> None:
    skipped = manifest.get("skipped", [])
    if skipped and not skip_bad:
        raise DataError(f"{name}: {skipped[0]} ({len(skipped)} bad sample(s) in {manifest['source']}; "
                        f"pass --skip-bad to skip them)")
    _warn_skipped(name, skipped, entry)


def _counts_text(manifest: dict) -> str:
    unit = manifest.get("info", {}).get("unit", "samples")
    return ", ".join(f"{s} {manifest['counts'][s]} {unit} / {manifest['cases'][s]} cases" for s in SPLITS)


def load(name: str, data_root: str | None, size: int, skip_bad: bool = False, cache=None) -> TaskData:
    """Real ``name`` at ``size``: from ``data_root`` (prepared on first use) or the cache."""
    mod = reader(name)
    root = find_root(name, data_root) if data_root else None
    if root is not None:
        entry, manifest = prepare(name, root, size, cache, skip_bad)
    else:
        src, entry, manifest = _usable_entry(name, size, cache)
        if src is not None:
            entry, manifest = prepare(name, src, size, cache, skip_bad)
        elif entry is not None:
            print(f"[data] {name}: raw data {manifest['source']} not found; using the cache prepared from "
                  f"it on {manifest['created']} ({entry})")
            _check_skipped(name, manifest, entry, skip_bad)
        elif C.entries(name, cache):
            made = C.entries(name, cache)
            sizes = sorted({m.get("params", {}).get("size") for _, m in made if m.get("version") == mod.VERSION})
            raise DataError(f"real {name} is prepared only at size(s) {sizes} (from {made[0][1].get('source')}, "
                            f"which is gone) and {size} is needed: pass --data-root or run "
                            f"python -m data.prepare {name} --source PATH --size {size}")
        else:
            where = f"in {data_root} (nor in {Path(data_root) / name})" if data_root else "(no --data-root given)"
            raise DataError(f"no real {name} data {where} and none prepared in {C.cache_root(cache) / name}: "
                            f"download it (docs/datasets.md) and pass --data-root; {name} expects {mod.LAYOUT}")
    return TaskData(mod.SPEC, C.load_entry(entry), "real", mod.describe(manifest))


# ---------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m data.prepare", description=__doc__.split("\n\n")[0])
    p.add_argument("dataset", choices=sorted(READERS))
    p.add_argument("--source", required=True, help="the downloaded dataset folder (read only)")
    p.add_argument("--cache", default=None, help=f"cache folder (default ${C.ENV_VAR} or data/cache/)")
    p.add_argument("--size", type=int, nargs="+", default=None,
                   help="image side(s) to prepare (default: the dataset's paper size)")
    p.add_argument("--skip-bad", action="store_true", help="skip bad samples with a warning and a count")
    args = p.parse_args(argv)
    mod = reader(args.dataset)
    try:
        for size in args.size or [mod.SPEC.native_size]:
            prepare(args.dataset, args.source, size, args.cache, args.skip_bad)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    from data.prepare import main as _main  # the importable module, the one the readers use
    sys.exit(_main())
