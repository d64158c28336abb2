"""Where a trained OpenKBP cell's dose error lies (issue 12): on the slices it was trained on (those
holding one of the four OARs: the paper's samples) or on the other slices of the possible-dose mask,
which OpenKBP's dose score also counts.

    python -m benchmark.studies.dose_slices CELL_DIR [CELL_DIR ...] [--data-root PATH]

Per cell: the dose score as the challenge computes it, the share of its error (Σ|ref − pred| over the
mask) on OAR slices and on the others, the mean error per mask voxel on each kind of slice, and the
dose score of predicting zero (a floor any model must beat).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from benchmark.evaluate import CellError, load_cell
from benchmark.training.volumes import as_submitted, predictor
from data.base import DataError
from data.openkbp import RAW_STRUCTURES       # the four segmented OARs

def error_by_slice_kind(volumes, task, predict) -> dict[str, float]:
    """The dose score of ``predict`` (rows of one patient -> dose in Gy on the native grid), split by
    slice kind: slices holding one of the four segmented OARs against the other mask slices."""
    oar_bits = sum(1 << bit for bit, (name, _) in enumerate(task.dvh) if name in RAW_STRUCTURES)
    err = {"oar": 0.0, "other": 0.0}
    voxels = {"oar": 0, "other": 0}
    scores, zero = [], []
    for _, rows in volumes.patients():
        mask, ref = np.asarray(volumes.dose_mask[rows]), np.asarray(volumes.dose[rows], np.float64)
        abs_err = np.abs(ref - as_submitted(predict(rows), mask)) * mask
        oar = (np.asarray(volumes.structures[rows]) & oar_bits).reshape(len(ref), -1).any(1)
        for kind, sel in (("oar", oar), ("other", ~oar)):
            err[kind] += float(abs_err[sel].sum())
            voxels[kind] += int(mask[sel].sum())
        scores.append(abs_err.sum() / mask.sum())
        zero.append((ref * mask).sum() / mask.sum())
    total = err["oar"] + err["other"]
    return {"dose_score": float(np.mean(scores)), "zero_prediction_dose_score": float(np.mean(zero)),
            "error_share_oar_slices": err["oar"] / total, "error_share_other_slices": err["other"] / total,
            "voxel_share_oar_slices": voxels["oar"] / (voxels["oar"] + voxels["other"]),
            "gy_per_voxel_oar_slices": err["oar"] / max(voxels["oar"], 1),
            "gy_per_voxel_other_slices": err["other"] / max(voxels["other"], 1)}


def dose_error_by_slice_kind(cell: Path, data_root: str | None = None) -> dict[str, float]:
    """:func:`error_by_slice_kind` of a trained cell's selected dose network on its test patients."""
    cfg, networks, data = load_cell(cell, data_root)
    net, task = next((net, t) for tasks, net in networks for t in tasks if t.dvh)
    return error_by_slice_kind(data.volumes, task, predictor(net, task, data.volumes, cfg.batch_size,
                                                             channels_last=cfg.profile.channels_last))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmark.studies.dose_slices", description=__doc__.split("\n\n")[0])
    ap.add_argument("cells", nargs="+", type=Path)
    ap.add_argument("--data-root", default=None)
    args = ap.parse_args(argv)
    for cell in args.cells:
        try:
            result = dose_error_by_slice_kind(cell, args.data_root)
        except (CellError, DataError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(cell)
        for k, value in result.items():
            print(f"  {k:28s} {value:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
