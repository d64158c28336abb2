"""What the scale of the dose loss does (issue 11, docs/reproduction.md "dose scale"): each task's
share of the shared encoder's gradient, epoch by epoch, and the final test metrics of HPS, MTAN and
CTAN on the datasets with a dose task.

    python -m benchmark.studies.dose_scale --out DIR [--profile quick] [--seeds 0 1 2] [--jobs 2]

Scales: ``gy`` (the network predicts Gy and the L1 loss is in Gy), ``prescription`` (dose divided by
the prescription, 78 Gy Prostate, 70 Gy OpenKBP), ``train_mean`` (dose divided by its mean absolute
value over the training pixels, so that predicting zero costs 1).
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch

from benchmark.experiment.profiles import PROFILES, get_profile
from benchmark.studies.common import run_all, summary
from benchmark.training.batches import batches
from benchmark.training.loop import EpochEnd
from benchmark.training.losses import make_loss
from data import DATASETS
from data.base import TaskData
from data.spec import TaskSpec

SCALES = ("gy", "prescription", "train_mean")
METHODS = ("hps", "mtan", "ctan")
SHARE_BATCHES = 4


def scaled(name: str):
    """The task change of scale ``name`` (regression tasks only)."""
    def change(task: TaskSpec, data: TaskData) -> TaskSpec:
        if task.target != "regression" or name == "prescription":
            return task
        s = 1.0 if name == "gy" else float(np.abs(data.splits["train"].targets[task.name]).mean())
        return dataclasses.replace(task, scale=s)
    return change


def gradient_shares(end: EpochEnd, data: TaskData) -> dict[str, float]:
    """Each task's share of the weighted gradient norm on the encoder's parameters (shared by every
    task in HPS, MTAN and CTAN), over the first training batches; BatchNorm statistics restored."""
    net, tasks = end.net, end.tasks
    shared = [p for n, p in net.named_parameters() if n.startswith("encoder.")]
    losses = {t.name: make_loss(t) for t in tasks}
    saved = {k: v.clone() for k, v in net.state_dict().items()}
    was_training = net.training
    net.train()
    norms = np.zeros(len(tasks))
    for b, batch in enumerate(batches(data.splits["train"], 16)):
        if b >= SHARE_BATCHES:
            break
        out = net(batch["image"])
        for k, t in enumerate(tasks):
            g = torch.autograd.grad(end.weights[k] * losses[t.name](out[t.name], batch[t.name]), shared,
                                    retain_graph=k < len(tasks) - 1, allow_unused=True)
            norms[k] += float(torch.sqrt(sum((x * x).sum() for x in g if x is not None)))
    net.load_state_dict(saved)
    net.train(was_training)
    return {f"share_{t.name}": float(n / norms.sum()) for t, n in zip(tasks, norms)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmark.studies.dose_scale", description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--profile", default="quick", choices=list(PROFILES))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    profile = get_profile(args.profile)
    datasets = [n for n, e in DATASETS.items() if any(t.target == "regression" for t in e.spec.tasks)]
    jobs = [dict(dataset=d, method=m, seed=s, profile=profile, variant=v, change_task=scaled(v),
                 on_epoch=gradient_shares)
            for d in datasets for m in METHODS for v in SCALES for s in args.seeds]
    df = run_all(jobs, args.jobs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "dose_scale.csv", index=False)
    shares = df[df.metric.str.startswith("epoch") & (df.task == "share_dose")]
    share = shares.groupby(["dataset", "method", "variant"])["value"].agg(["mean", "min", "max"])
    table = summary(df, ("dice", "mae", "dose_score", "slice_dose_score"))
    text = ("Dose share of the encoder gradient (mean, min, max over epochs and seeds):\n\n"
            + share.round(3).to_markdown() + "\n\nTest metrics (mean ± std over seeds):\n\n"
            + table.to_markdown() + "\n")
    (out / "dose_scale.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
