"""Cross-validation folds for datasets without an official split, committed as data (issue 25).

A fold table is a CSV with one row per case: ``case`` (the image's name in the publisher's files),
``stratum`` (what the folds are stratified by, e.g. the diagnosis), ``fold`` (0..k-1: the fold that
tests it) and ``val`` (1: the case validates when the *previous* fold is tested). For test fold f:

- test = the cases of fold f (every case is tested exactly once per seed over the k folds);
- validation = the cases of fold (f + 1) mod k with ``val`` = 1 (about half a fold: 10 % at k = 5);
- training = everything else (70 % at k = 5), the same 70/10/20 as the seeded splits of the paper's
  datasets (``data.real.common.stratified_split``).

Folds are drawn once (``python -m data.folds DATASET --source PATH``: systematic stratified allocation
with a fixed seed) and committed under ``data/folds/``, so that every user trains on the same images
and anyone can audit them; the reader checks that the table and the files agree.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from data.base import SPLITS, DataError, Split

FOLDS_DIR = Path(__file__).resolve().parent / "folds"
COLUMNS = ("case", "stratum", "fold", "val")
SEED = 0


def make_folds(cases: list[str], strata: list[str], k: int, seed: int = SEED) -> pd.DataFrame:
    """Stratified k-fold assignment: within each stratum (sorted, then shuffled with ``seed``) the
    i-th case goes to fold i mod k, the counter running on across strata so fold sizes differ by at
    most one; within each fold and stratum every second case is a validation case."""
    if len(set(cases)) != len(cases):
        raise DataError("fold table: a case is listed twice")
    rng = np.random.default_rng(seed)
    rows, position = [], 0
    by_stratum: dict[str, list[str]] = {}
    for c, s in zip(cases, strata):
        by_stratum.setdefault(str(s), []).append(str(c))
    for s in sorted(by_stratum):
        members = sorted(by_stratum[s])
        seen_in_fold = [0] * k
        for i in rng.permutation(len(members)):
            fold = position % k
            rows.append({"case": members[i], "stratum": s, "fold": fold, "val": seen_in_fold[fold] % 2})
            seen_in_fold[fold] += 1
            position += 1
    return pd.DataFrame(rows, columns=list(COLUMNS)).sort_values("case", kind="stable").reset_index(drop=True)


def read_table(path: Path, k: int) -> pd.DataFrame:
    """A committed fold table, checked: its columns, one row per case, folds 0..k-1, val 0/1."""
    try:
        table = pd.read_csv(path, dtype={"case": str, "stratum": str})
    except FileNotFoundError:
        raise DataError(f"{path}: missing fold table (python -m data.folds writes it)") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: corrupt fold table ({str(exc).splitlines()[0][:120]})") from None
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing} (has {list(table.columns)})")
    if table["case"].duplicated().any():
        raise DataError(f"{path}: case {table['case'][table['case'].duplicated()].iloc[0]} is listed twice")
    if not table["fold"].isin(range(k)).all() or not table["val"].isin((0, 1)).all():
        raise DataError(f"{path}: folds must be 0..{k - 1} and val 0 or 1")
    return table


def assignment(table: pd.DataFrame, fold: int, k: int) -> dict[str, str]:
    """``{case: split}`` for test fold ``fold`` (module docstring)."""
    if not 0 <= fold < k:
        raise DataError(f"fold {fold} does not exist: the dataset has folds 0..{k - 1}")
    val_fold = (fold + 1) % k
    split = np.where(table["fold"] == fold, "test",
                     np.where((table["fold"] == val_fold) & (table["val"] == 1), "val", "train"))
    return dict(zip(table["case"], split))


def check_cases(table: pd.DataFrame, cases: list[str], where: str, bad) -> None:
    """Every case read is in the table (an image the table does not know is an error: the folds
    would silently differ between users); a table case with no image is a bad sample."""
    listed = set(table["case"])
    unknown = sorted(set(cases) - listed)
    if unknown:
        raise DataError(f"{where}: {len(unknown)} image(s) not in the committed fold table, first {unknown[0]!r}")
    for case in sorted(listed - set(cases)):
        bad.handle(DataError(f"{where}: {case} is in the fold table but was not read"))


def apply(splits: dict[str, Split], table: pd.DataFrame, fold: int, k: int) -> dict[str, Split]:
    """Re-partition the samples of ``splits`` (all of them: a prepared pool) into fold ``fold``'s
    train/val/test by case."""
    pool = [s for s in splits.values() if len(s)]
    case_id = np.concatenate([s.case_id for s in pool]).astype(str)
    where = assignment(table, fold, k)
    unknown = sorted(set(case_id) - set(where))
    if unknown:
        raise DataError(f"fold table: case {unknown[0]!r} of the prepared data is not in it")
    merged = Split(np.concatenate([s.image for s in pool]),
                   {t: np.concatenate([s.targets[t] for s in pool]) for t in pool[0].targets},
                   case_id, {e: np.concatenate([s.extras[e] for s in pool]) for e in pool[0].extras})
    labels = np.array([where[c] for c in case_id])
    return {name: merged.take(np.flatnonzero(labels == name)) for name in SPLITS}


def main(argv: list[str] | None = None) -> int:
    from data import DATASETS
    from data.prepare import find_root
    cv = [n for n, e in DATASETS.items() if e.folds]
    p = argparse.ArgumentParser(prog="python -m data.folds", description=__doc__.split("\n\n")[0])
    p.add_argument("dataset", choices=cv)
    p.add_argument("--source", required=True, help="the downloaded dataset folder (read only)")
    p.add_argument("--out", default=None, help="where to write the table (default: the dataset's committed one)")
    args = p.parse_args(argv)
    entry = DATASETS[args.dataset]
    try:
        root = find_root(args.dataset, args.source)
        if root is None:
            raise DataError(f"{args.source}: not a {args.dataset} folder ({entry.reader.LAYOUT})")
        cases, strata = entry.reader.strata(root)
        table = make_folds(cases, strata, entry.folds)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out or entry.fold_table)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False, lineterminator="\n")
    counts = table.groupby(["fold", "stratum"]).size().unstack(fill_value=0)
    print(f"{out}: {len(table)} cases, {entry.folds} folds stratified by {', '.join(counts.columns)}\n{counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
