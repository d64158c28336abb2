"""Real data's front door: which data a run uses, and preparing a real dataset once (validate the
raw files, cache preprocessed arrays, report counts).

    python -m data.prepare DATASET --source PATH [--cache DIR] [--size N ...] [--skip-bad]

Runs on first use too (``reproduce.py --data real --data-root PATH``); training then reads
memory-mapped .npy files and never decodes CSV, JPEG, PNG, MHA or NIfTI again. The readers are the
``reader`` of each ``data.DATASETS`` entry (their protocol: ``data/real/__init__.py``).
See docs/datasets.md.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

from data import DATASETS, folds, get_dataset
from data.base import SPLITS, DataError, TaskData
from data.real import cache as C
from data.real.common import BadInput

SOURCES = ("auto", "real", "synthetic")


def reader(name: str):
    """The reader module of dataset ``name`` (``data/real/<name>.py``)."""
    return get_dataset(name).reader


def _warn_skipped(name: str, skipped: list[str], where: Path) -> None:
    if skipped:
        warnings.warn(f"{name}: skipped {len(skipped)} bad sample(s) (--skip-bad); first: {skipped[0]} "
                      f"(all listed in {where / C.MANIFEST})", stacklevel=3)


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


def resolve_source(name: str, mode: str, data_root: str | None) -> str:
    """Which data a dataset runs on: ``synthetic`` or ``real``.

    ``auto`` picks real data where ``data_root`` holds the dataset (the folder itself or its
    subfolder ``name``, recognised by layout) or where it has been prepared in the cache
    (``python -m data.prepare``), and the synthetic stand-in otherwise; ``real`` insists.
    """
    get_dataset(name)
    if mode == "synthetic":
        return "synthetic"
    if mode not in SOURCES:
        raise DataError(f"--data must be one of {', '.join(SOURCES)}, got {mode!r}")
    if find_real(name, data_root) is not None:
        return "real"
    if mode == "real":
        where = f"in {data_root} (nor in its subfolder {name}/)" if data_root else "(no --data-root given)"
        raise DataError(f"no real {name} data {where} and none prepared in the cache: pass --data-root "
                        f"pointing at the downloaded dataset ({reader(name).LAYOUT}; see docs/datasets.md)")
    return "synthetic"


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
                        "volumes": {"slices": len(writer.case_ids[C.VOLUMES]),
                                    "patients": len(set(writer.case_ids[C.VOLUMES]))},
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


def load(name: str, data_root: str | None, size: int, skip_bad: bool = False, cache=None,
         fold: int | None = None) -> TaskData:
    """Real ``name`` at ``size``: from ``data_root`` (prepared on first use) or the cache; a
    cross-validated dataset (``DatasetEntry.folds``) split for test fold ``fold`` (``data.folds``)."""
    entry_info = get_dataset(name)
    if (fold is None) != (entry_info.folds == 0):
        raise DataError(f"{name}: folds 0..{entry_info.folds - 1}, a cell must name one" if entry_info.folds
                        else f"{name} has its own train/val/test split: fold {fold} does not apply")
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
    splits, description = C.load_entry(entry), mod.describe(manifest)
    if fold is not None:
        table = folds.read_table(entry_info.fold_table, entry_info.folds)
        splits = folds.apply(splits, table, fold, entry_info.folds)
        description += f", fold {fold}: train {len(splits['train'])} / val {len(splits['val'])} / test {len(splits['test'])}"
    return TaskData(entry_info.spec, splits, "real", description, C.load_volumes(entry)).validate()


# ---------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m data.prepare", description=__doc__.split("\n\n")[0])
    p.add_argument("dataset", choices=list(DATASETS))
    p.add_argument("--source", required=True, help="the downloaded dataset folder (read only)")
    p.add_argument("--cache", default=None, help=f"cache folder (default ${C.ENV_VAR} or data/cache/)")
    p.add_argument("--size", type=int, nargs="+", default=None,
                   help="image side(s) to prepare (default: the dataset's paper size)")
    p.add_argument("--skip-bad", action="store_true", help="skip bad samples with a warning and a count")
    args = p.parse_args(argv)
    try:
        for size in args.size or [get_dataset(args.dataset).spec.native_size]:
            prepare(args.dataset, args.source, size, args.cache, args.skip_bad)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
