"""Evaluate a stored cell again from its checkpoints: its metrics on a split (for instance after a
metric was added) next to the stored ones, and, with ``--export``, its predictions.

    python -m benchmark.evaluate CELL_DIR [--split test|val] [--export DIR] [--data-root PATH]

CELL_DIR is a cell's folder (``results/runs/<profile>-<source>/<dataset>/<method>/<weighting>/seed<k>``). The
model is rebuilt from the cell's ``cell.json`` and given each network's selected weights
(``checkpoints/<network>/selected.pt``); the data are loaded as the cell loaded them (``--data-root``
when the real data moved). Writes ``evaluation_<split>.csv`` (the schema of metrics.csv) into the
cell's folder and prints each metric beside its stored value.

Exports: for OpenKBP's real data, each whole test patient's dose as the challenge's sparse CSV
(``pt_N.csv``, the format of ``dose.csv``, masked by the possible-dose mask as the challenge's own
writer does), ready for open-kbp's evaluation code; otherwise ``predictions_<split>.npz`` with, per
task, the predictions (class maps, dose in Gy, class probabilities) and the case ids.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from benchmark.plugins import PluginError, load_all as load_plugins
from benchmark.experiment import store
from benchmark.experiment.cell import CellConfig, load_data
from benchmark.experiment.runner import case_rows, metric_rows
from benchmark.training.batches import batches
from benchmark.training.checkpoint import SELECTED
from benchmark.training.kinds import kind_of
from benchmark.training.scoring import score
from benchmark.training.volumes import as_submitted, predictor
from data.base import DataError, TaskData
from models.registry import build_model


class CellError(ValueError):
    """A folder that is not a stored cell, or a cell without its selected weights."""


def load_cell(cell_dir: Path, data_root: str | None = None) -> tuple[CellConfig, list, TaskData]:
    """The cell's configuration, its networks with their selected weights, and its data."""
    try:
        meta = json.loads((cell_dir / "cell.json").read_text())
        cfg = CellConfig.from_dict(meta["config"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CellError(f"{cell_dir}: not a stored cell (cell.json unreadable: {exc})") from None
    if data_root:
        cfg = dataclasses.replace(cfg, data_root=data_root)
    data = load_data(cfg)
    model = build_model(cfg.method, data.spec.tasks, cfg.profile.backbone, False, data.spec.in_channels)
    networks = model.networks()
    for tasks, net in networks:
        name = "joint" if len(networks) == 1 else tasks[0].name
        path = cell_dir / "checkpoints" / name / SELECTED
        if not path.is_file():
            raise CellError(f"{path}: no selected weights (the cell ran with --no-weights or before "
                            f"checkpoints were kept, or was stored elsewhere)")
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True)["model"])
        net.eval()
    return cfg, networks, data


def reevaluate(cfg: CellConfig, networks: list, data: TaskData, split: str,
               cases: list | None = None) -> list[dict]:
    """The cell's metric rows on ``split``, computed as the runner computes them
    (``scoring.score``); its per-case rows appended to ``cases`` when given."""
    rows = []
    for tasks, net in networks:
        res, net_cases = score(net, tasks, data, split, cfg.train_settings())
        rows += metric_rows(cfg, data.spec, tasks, res, split, all_metrics=True)
        if cases is not None:
            cases += case_rows(cfg, net_cases, split)
    return rows


def export(cfg: CellConfig, networks: list, data: TaskData, split: str, out: Path) -> list[Path]:
    """Write the cell's predictions (module doc) into ``out``; returns the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for tasks, net in networks:
        for task in tasks:
            if task.dvh and data.volumes is not None and split == "test":
                from data.real.openkbp import volume_from_slices, write_dose_csv
                predict = predictor(net, task, data.volumes, cfg.batch_size, channels_last=cfg.profile.channels_last)
                for case, rows in data.volumes.patients():
                    dose = as_submitted(predict(rows), np.asarray(data.volumes.dose_mask[rows]))
                    path = out / f"{case}.csv"
                    write_dose_csv(path, volume_from_slices(data.volumes.z[rows], dose))
                    written.append(path)
    arrays: dict[str, np.ndarray] = {"case_id": np.asarray(data.splits[split].case_id)}
    for tasks, net in networks:
        outs: dict[str, list[np.ndarray]] = {t.name: [] for t in tasks}
        with torch.inference_mode():
            for batch in batches(data.splits[split], cfg.batch_size, channels_last=cfg.profile.channels_last):
                pred = net(batch["image"])
                for t in tasks:
                    outs[t.name].append(kind_of(t).export(t, pred[t.name].float()).numpy())
        arrays.update({name: np.concatenate(v) for name, v in outs.items()})
    path = out / f"predictions_{split}.npz"
    np.savez_compressed(path, **arrays)
    return written + [path]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmark.evaluate", description=__doc__.split("\n\n")[0])
    ap.add_argument("cell", help="a cell's folder: results/runs/<profile>-<source>/<dataset>/<method>/<weighting>/seed<k>")
    ap.add_argument("--split", default="test", choices=("test", "val", "train"))
    ap.add_argument("--export", default=None, metavar="DIR", help="write the predictions into DIR")
    ap.add_argument("--data-root", default=None, help="where the real data are now, if they moved")
    ap.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                    help="the plug-in that registered the cell's method or weighting (docs/extending.md)")
    args = ap.parse_args(argv)
    try:
        load_plugins(args.plugin)
    except PluginError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cell = Path(args.cell)
    try:
        cfg, networks, data = load_cell(cell, args.data_root)
    except (CellError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cases: list[dict] = []
    rows = reevaluate(cfg, networks, data, args.split, cases)
    table = pd.DataFrame(rows)
    store.atomic_write(cell / f"evaluation_{args.split}.csv", table.to_csv(index=False))
    store.atomic_write(cell / f"cases_{args.split}.csv", pd.DataFrame(cases, columns=store.CASE_COLUMNS).to_csv(index=False))
    stored = pd.read_csv(cell / "metrics.csv") if store.is_finished(cell) else pd.DataFrame(columns=table.columns)
    key = ["task", "metric", "split"]
    both = table.merge(stored[key + ["value"]], on=key, how="left", suffixes=("", "_stored"))
    for r in both.itertuples():
        was = "" if pd.isna(r.value_stored) else f"   stored {r.value_stored:.6g}"
        print(f"{r.task:14s} {r.metric:18s} {r.value:12.6g}{was}")
    print(f"wrote {cell / f'evaluation_{args.split}.csv'} and {cell / f'cases_{args.split}.csv'}")
    if args.export:
        files = export(cfg, networks, data, args.split, Path(args.export))
        print(f"exported {len(files)} file(s) to {args.export}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
