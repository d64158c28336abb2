"""Task metrics of Sec. 2.3 (and the extra ones the suite records), from per-sample statistics.

Evaluation accumulates small per-sample arrays (overlaps, error sums, logits), never whole
prediction maps; these functions, one per name of ``data.spec.METRICS`` (which holds each metric's
label, unit and direction), turn them into the reported numbers.
"""
from __future__ import annotations

import warnings

import numpy as np
from sklearn import metrics as skm

def _group_sum(values: np.ndarray, case_id: np.ndarray) -> np.ndarray:
    """Sum rows of ``values`` that belong to the same case (first-seen order)."""
    _, inverse = np.unique(case_id, return_inverse=True)
    out = np.zeros((inverse.max() + 1,) + values.shape[1:], dtype=np.float64)
    np.add.at(out, inverse, values)
    return out


def dice(intersection: np.ndarray, pred_sum: np.ndarray, target_sum: np.ndarray, case_id: np.ndarray,
         empty_is_perfect: bool = False) -> float:
    """Dice similarity (%) over foreground classes: per case and class 2|P∩G| / (|P| + |G|),
    pooled over a case's samples (a patient's slices form one volume); a class absent from both
    prediction and ground truth of a case is skipped for that case (or, ``empty_is_perfect``, scores
    1: ``TaskSpec.empty_is_perfect``); mean over cases, then classes.
    Inputs are [N, C] per-sample foreground counts (background excluded)."""
    inter = _group_sum(intersection, case_id)
    denom = _group_sum(pred_sum, case_id) + _group_sum(target_sum, case_id)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_case = np.where(denom > 0, 2 * inter / denom, 1.0 if empty_is_perfect else np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        per_class = np.nanmean(per_case, axis=0)
    return float(100 * np.nanmean(per_class)) if np.isfinite(per_class).any() else float("nan")


def mae(abs_error_sum: np.ndarray, pixels: np.ndarray) -> float:
    """Mean absolute error (Gy) over every pixel of the evaluated images (the paper's Table 2)."""
    return float(abs_error_sum.sum() / pixels.sum())


def slice_dose_score(masked_abs_error_sum: np.ndarray, mask_pixels: np.ndarray, case_id: np.ndarray) -> float:
    """OpenKBP's dose score (Gy; Babier et al. 2021) in its slice-level form: per case the mean absolute
    error inside the possible-dose mask over the case's evaluated slices, averaged over cases. The
    challenge's own ``dose_score``, on whole patients, is ``training.volumes``."""
    err = _group_sum(masked_abs_error_sum, case_id)
    count = _group_sum(mask_pixels, case_id)
    keep = count > 0
    return float(np.mean(err[keep] / count[keep])) if keep.any() else float("nan")


def accuracy(labels: np.ndarray, logits: np.ndarray) -> float:
    return float(100 * skm.accuracy_score(labels, logits.argmax(1)))


def balanced_accuracy(labels: np.ndarray, logits: np.ndarray) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # classes absent from a small split
        return float(100 * skm.balanced_accuracy_score(labels, logits.argmax(1)))


def macro_f1(labels: np.ndarray, logits: np.ndarray) -> float:
    return float(100 * skm.f1_score(labels, logits.argmax(1), average="macro",
                                    labels=np.arange(logits.shape[1]), zero_division=0))


def auc(labels: np.ndarray, logits: np.ndarray) -> float:
    """ROC AUC (%) of a binary task from its logits; NaN when the split holds a single class."""
    scores = logits.reshape(len(labels), -1)[:, 0]
    if len(np.unique(labels)) < 2:
        return float("nan")
    return float(100 * skm.roc_auc_score(labels, scores))


def dvh_metrics(dose: np.ndarray, structures: np.ndarray, names: tuple[tuple[str, str], ...],
                voxel_mm) -> dict[tuple[str, str], float]:
    """OpenKBP's DVH metrics of one patient (Gy), as open-kbp's ``dose_evaluation_class.py`` computes
    them: for each structure present (bit k of ``structures`` is ``names[k]``), an OAR's D_0.1cc (the
    dose percentile leaving max(1, round(100 mm³ / voxel volume)) voxels above it) and mean dose, a
    target's D99, D95 and D1 (the 1st, 5th and 99th percentiles, linear interpolation)."""
    dose = np.asarray(dose, dtype=np.float64)
    tenth_cc = max(1.0, float(np.round(100.0 / float(np.prod(np.asarray(voxel_mm, dtype=np.float64))))))
    out: dict[tuple[str, str], float] = {}
    for bit, (name, kind) in enumerate(names):
        roi = dose[(structures >> bit) & 1 == 1]
        if roi.size == 0:
            continue  # absent structure: no entry (NaN in the official code, skipped by its nanmean)
        if kind == "oar":
            out[(name, "D_0.1_cc")] = float(np.percentile(roi, 100 - tenth_cc / roi.size * 100))
            out[(name, "mean")] = float(roi.mean())
        else:
            for label, q in (("D_99", 1), ("D_95", 5), ("D_1", 99)):
                out[(name, label)] = float(np.percentile(roi, q))
    return out


def patient_dose_error(reference: np.ndarray, prediction: np.ndarray, possible_dose_mask: np.ndarray) -> float:
    """OpenKBP's dose error of one patient (Gy): Σ|reference − prediction| over the volume divided by
    the possible-dose mask's voxel count (the prediction is expected to be masked already)."""
    diff = np.abs(np.asarray(reference, np.float64) - np.asarray(prediction, np.float64)).sum()
    return float(diff / possible_dose_mask.sum())
