"""What aggregating the task Jacobian in float64 costs (docs/methods.md, "Cost"): one training step of
a gradient weighting -- forward, task losses, the per-task backward passes, the aggregation, Adam --
with the Jacobian aggregated in float32 and in float64 (``weighting.base.AGGREGATION_DTYPE``),
interleaved, one thread, on a dataset's stand-in.

    python -m benchmark.studies.aggregation_precision --weightings upgrad alignedmtl mgda [--size 48 --repeats 3]

Prints, per weighting and precision, the best step time and the float64/float32 ratio, and the size of
the float64 Jacobian matrix (K x shared parameters x 8 bytes).
"""
from __future__ import annotations

import argparse
import time

import torch

import benchmark.training.weighting.base as base
from benchmark.experiment.precision import describe_cpu
from benchmark.training.losses import make_loss
from benchmark.training.weighting.registry import CLASSES, build_weighting
from data import DATASETS
from models.registry import build_model


def step_seconds(dataset: str, weighting: str, size: int, dtype: torch.dtype, batch: int = 32) -> float:
    spec = DATASETS[dataset].spec
    torch.manual_seed(0)
    net = build_model("hps", spec.tasks, "resnet18", in_channels=spec.in_channels)
    split = DATASETS[dataset].synthetic(0, batch, 4, 4, size).splits["train"]
    x = torch.from_numpy(split.image[:batch])
    ys = {k: torch.from_numpy(v[:batch]) for k, v in split.targets.items()}
    losses = {t.name: make_loss(t) for t in spec.tasks}
    w = build_weighting(weighting, len(spec.tasks))
    shared = list(net.shared_parameters())
    ids = {id(p) for p in shared}
    others = [p for p in net.parameters() if id(p) not in ids]
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    base.AGGREGATION_DTYPE = dtype
    try:
        start = time.perf_counter()
        pred = net(x)
        task_losses = torch.stack([losses[t.name](pred[t.name], ys[t.name]) for t in spec.tasks])
        opt.zero_grad()
        w.step(task_losses, shared, others)
        opt.step()
        return time.perf_counter() - start
    finally:
        base.AGGREGATION_DTYPE = torch.float64


def main(argv: list[str] | None = None) -> int:
    gradient = [n for n, c in CLASSES.items() if c.kind == "gradient" and n != "gradnorm"]
    ap = argparse.ArgumentParser(prog="python -m benchmark.studies.aggregation_precision",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="prostate", choices=list(DATASETS))
    ap.add_argument("--weightings", nargs="+", default=["upgrad", "alignedmtl", "mgda"], choices=gradient)
    ap.add_argument("--size", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    spec = DATASETS[args.dataset].spec
    n_shared = sum(p.numel() for p in build_model("hps", spec.tasks, "resnet18",
                                                   in_channels=spec.in_channels).shared_parameters())
    print(f"CPU: {describe_cpu()}; {args.dataset} HPS ResNet-18 {args.size} px, batch 32, one thread; "
          f"float64 Jacobian {len(spec.tasks)} x {n_shared:,} = {len(spec.tasks) * n_shared * 8 / 2**20:.0f} MiB")
    for name in args.weightings:
        best = {torch.float32: float("inf"), torch.float64: float("inf")}
        step_seconds(args.dataset, name, args.size, torch.float32)        # warm-up
        for _ in range(args.repeats):
            for dtype in best:                                            # interleaved: drift hits both
                best[dtype] = min(best[dtype], step_seconds(args.dataset, name, args.size, dtype))
        print(f"{name}: step float32 {best[torch.float32]:.3f} s, float64 {best[torch.float64]:.3f} s, "
              f"ratio {best[torch.float64] / best[torch.float32]:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
