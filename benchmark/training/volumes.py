"""OpenKBP's own scores on whole test patients (open-kbp ``dose_evaluation_class.py``).

For each patient of ``data.base.Volumes``: the network predicts dose on every slice the
possible-dose mask or a DVH structure touches, at the training size; the prediction is resized
bilinearly to the reference's native size (128 px), multiplied by the possible-dose mask and
negative doses set to 0 (:func:`as_submitted`: what the challenge's sparse format keeps); then the
dose error (Σ|ref − pred| / mask voxels) and the DVH metrics
of the reference structures. ``dose_score`` is the mean of the patients' dose errors; ``dvh_score``
the mean absolute difference of all DVH metrics of all patients, pooled (not per patient first).
Slices outside the volume set carry no dose in the reference nor in the masked prediction.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.training.batches import as_tensor
from benchmark.training.metrics import dvh_metrics, patient_dose_error
from data.base import Volumes
from data.spec import TaskSpec


def as_submitted(prediction: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A dose prediction as the challenge scores it: zero outside the possible-dose mask, and no
    negative dose — open-kbp's writer (``utils.sparse_vector_function``) keeps only voxels above 0,
    so a negative prediction is read back as 0 by the official evaluator. Without the clip our dose
    score of a trained CTAN was 17.03 Gy where the official code gave 16.80 on its export."""
    return np.maximum(prediction, 0) * mask


def challenge_scores(volumes: Volumes, task: TaskSpec,
                     predict: Callable[[slice], np.ndarray], cases: list | None = None) -> dict[str, float]:
    """``dose_score`` and ``dvh_score`` (Gy) of the predictions ``predict(rows)`` ([n, H, W] in Gy at
    the native size, for a patient's rows). With a ``cases`` list, per patient its dose error
    (weight 1) and its mean DVH difference (weight: how many DVH metrics it has, as the DVH score
    pools them) are appended as ``cases.csv`` rows."""
    errors, diffs = [], []
    for patient, rows in volumes.patients():
        mask = np.asarray(volumes.dose_mask[rows])
        reference = np.asarray(volumes.dose[rows])
        prediction = as_submitted(predict(rows), mask)
        errors.append(patient_dose_error(reference, prediction, mask))
        structures, voxel_mm = np.asarray(volumes.structures[rows]), volumes.voxel_mm[rows.start]
        ref = dvh_metrics(reference, structures, task.dvh, voxel_mm)
        pred = dvh_metrics(prediction, structures, task.dvh, voxel_mm)
        mine = [abs(ref[k] - pred[k]) for k in ref]
        diffs += mine
        if cases is not None:
            cases.append({"task": task.name, "case": patient, "metric": "dose_score", "part": "",
                          "value": errors[-1], "weight": 1.0})
            if mine:
                cases.append({"task": task.name, "case": patient, "metric": "dvh_score", "part": "",
                              "value": float(np.mean(mine)), "weight": float(len(mine))})
    return {"dose_score": float(np.mean(errors)), "dvh_score": float(np.mean(diffs)) if diffs else float("nan")}


def predictor(net: nn.Module, task: TaskSpec, volumes: Volumes, batch_size: int, device: torch.device | str = "cpu",
              channels_last: bool = False) -> Callable[[slice], np.ndarray]:
    """``predict(rows)``: ``net``'s dose for those volume slices in Gy, resized to the native size."""
    device = torch.device(device)
    native = volumes.dose.shape[1:]

    def predict(rows: slice) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for start in range(rows.start, rows.stop, batch_size):
                image = as_tensor(volumes.image[start:min(start + batch_size, rows.stop)], device)
                if channels_last:
                    image = image.contiguous(memory_format=torch.channels_last)
                dose = net(image)[task.name].float() * task.scale
                if tuple(dose.shape[-2:]) != tuple(native):
                    dose = F.interpolate(dose, size=native, mode="bilinear", align_corners=False)
                out.append(dose[:, 0].cpu().numpy())
        return np.concatenate(out)
    return predict


def evaluate_volumes(net: nn.Module, task: TaskSpec, volumes: Volumes, batch_size: int,
                     device: torch.device | str = "cpu", channels_last: bool = False,
                     cases: list | None = None) -> dict[str, float]:
    """OpenKBP's dose and DVH scores of ``net`` on whole test patients (eval mode); per-patient
    rows into ``cases`` (:func:`challenge_scores`)."""
    was_training = net.training
    net.eval()
    try:
        return challenge_scores(volumes, task, predictor(net, task, volumes, batch_size, device, channels_last),
                                cases)
    finally:
        net.train(was_training)
