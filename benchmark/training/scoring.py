"""Scoring a trained network on a split: the one path the runner, ``benchmark.evaluate`` and the
studies (``benchmark.studies.common``) share, so that a stored number, a re-scored one and a study's
are the same computation.

Every task's loss and metrics (``evaluation.evaluate``) and, on the test split of a dataset with
whole test volumes, OpenKBP's own dose and DVH scores on whole patients in place of the slice-level
dose score (``volumes.evaluate_volumes``); plus the per-case rows of every metric
(``cases.csv``, docs/results-schema.md).
"""
from __future__ import annotations

from torch import nn

from benchmark.training.evaluation import evaluate
from benchmark.training.settings import TrainSettings
from benchmark.training.volumes import evaluate_volumes
from data.base import TaskData
from data.spec import TaskSpec


def score(net: nn.Module, tasks: tuple[TaskSpec, ...], data: TaskData, split: str,
          settings: TrainSettings) -> tuple[dict, list[dict]]:
    """``({task: {metric: value}}, case rows)`` of ``net`` on ``split`` (batch size, device and memory
    layout: ``settings``)."""
    batch_size, device, channels_last = settings.batch_size, settings.device, settings.channels_last
    cases: list[dict] = []
    results = evaluate(net, tasks, data.splits[split], batch_size, device, channels_last=channels_last, cases=cases)
    for task in tasks:
        if split == "test" and task.dvh and data.volumes is not None:
            # whole patients (dose_score, dvh_score) replace the slice-level dose score, in the table and the cases
            cases = [c for c in cases if not (c["task"] == task.name and c["metric"] == "slice_dose_score")]
            results[task.name].pop("slice_dose_score", None)
            results[task.name].update(evaluate_volumes(net, task, data.volumes, batch_size, device, channels_last,
                                                       cases=cases))
    return results, cases
