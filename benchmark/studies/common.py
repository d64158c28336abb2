"""One cell of a study: the suite's own data, model, training loop and evaluation, with one choice
varied (the tasks' specs, the model's keyword arguments) and optional per-epoch measurements."""
from __future__ import annotations

import dataclasses
import time
from typing import Callable

import numpy as np
import pandas as pd
import torch

from benchmark.experiment.cell import load_data, resolve_config
from benchmark.experiment.profiles import Profile
from benchmark.training.loop import EpochEnd, train_network
from benchmark.training.scoring import score
from data.base import TaskData
from data.spec import TaskSpec
from models.registry import build_model


def with_tasks(data: TaskData, change: Callable[[TaskSpec], TaskSpec]) -> TaskData:
    """``data`` whose spec has every task passed through ``change`` (e.g. another loss scale)."""
    spec = dataclasses.replace(data.spec, tasks=tuple(change(t) for t in data.spec.tasks))
    return dataclasses.replace(data, spec=spec)


def run_variant(dataset: str, method: str, seed: int, profile: Profile, variant: str, *,
                data_source: str = "synthetic", data_root: str | None = None,
                change_task: Callable[[TaskSpec, TaskData], TaskSpec] | None = None,
                model_kwargs: dict | None = None,
                on_epoch: Callable[[EpochEnd, TaskData], dict] | None = None) -> list[dict]:
    """Train and test one cell (one thread); rows of (variant, task, metric, value) plus, per
    epoch, whatever ``on_epoch`` returns (under ``metric`` names prefixed ``epoch``)."""
    torch.set_num_threads(1)
    cfg = resolve_config(dataset, method, seed, profile, data_source, data_root)
    data = load_data(cfg)
    if change_task is not None:
        data = with_tasks(data, lambda t: change_task(t, data))
    torch.manual_seed(seed)
    np.random.seed(seed)
    spec = data.spec
    model = build_model(method, spec.tasks, backbone=profile.backbone, pretrained=profile.pretrained,
                        in_channels=spec.in_channels, **(model_kwargs or {}))
    rows: list[dict] = []
    base = {"dataset": dataset, "method": method, "seed": seed, "variant": variant}
    start = time.perf_counter()
    for k, (tasks, net) in enumerate(model.networks()):
        def hook(end: EpochEnd) -> None:
            for name, value in (on_epoch(end, data) if on_epoch else {}).items():
                rows.append({**base, "task": name, "metric": f"epoch{end.epoch}", "value": value})
        settings = cfg.train_settings(k)
        train_network(net, tasks, data, settings, on_epoch=hook)
        test, _ = score(net, tasks, data, "test", settings)      # as the runner scores a cell
        for t in tasks:
            rows += [{**base, "task": t.name, "metric": m, "value": test[t.name][m]} for m in t.metrics]
    rows.append({**base, "task": "", "metric": "seconds", "value": time.perf_counter() - start})
    return rows


def run_all(jobs: list[dict], n_jobs: int = 2) -> pd.DataFrame:
    """Run ``run_variant(**job)`` for every job, ``n_jobs`` processes at once."""
    from joblib import Parallel, delayed

    out = Parallel(n_jobs=n_jobs)(delayed(run_variant)(**job) for job in jobs)
    return pd.DataFrame([r for rows in out for r in rows])


def summary(df: pd.DataFrame, metrics: tuple[str, ...]) -> pd.DataFrame:
    """Mean ± std over seeds of the test metrics, one row per (dataset, method, variant)."""
    test = df[df["metric"].isin(metrics)]
    g = test.groupby(["dataset", "method", "variant", "task", "metric"])["value"]
    out = g.agg(["mean", "std", "count"]).reset_index()
    out["value"] = out.apply(lambda r: f"{r['mean']:.2f} ± {r['std']:.2f}", axis=1)
    return out.pivot_table(index=["dataset", "method", "variant"], columns=["task", "metric"],
                           values="value", aggfunc="first")
