"""One training step in fp32 and in bf16 autocast on this CPU (docs/performance.md, "CPUs without
native bf16"): forward, task losses, backward and an Adam step of a freshly built model on synthetic
batches, one thread, each repeated.

    python -m benchmark.studies.precision_step --dataset prostate --methods hps ctan --size 48 [--steps 2]

Prints one line per (method, precision, step) with the seconds and, per method, the bf16/fp32 ratio
of the best steps; says which CPU it ran on.
"""
from __future__ import annotations

import argparse
import time

import torch

from benchmark.experiment.precision import describe_cpu
from benchmark.training.losses import make_loss
from data import DATASETS
from models.catalog import METHODS
from models.registry import build_model


def step_seconds(dataset: str, method: str, size: int, amp: bool, steps: int, batch: int = 32) -> list[float]:
    spec = DATASETS[dataset].spec
    torch.manual_seed(0)
    net = build_model(method, spec.tasks, "resnet18", in_channels=spec.in_channels)
    split = DATASETS[dataset].synthetic(0, batch, 4, 4, size).splits["train"]
    x = torch.from_numpy(split.image[:batch])
    ys = {k: torch.from_numpy(v[:batch]) for k, v in split.targets.items()}
    losses = {t.name: make_loss(t) for t in spec.tasks}
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    out = []
    for _ in range(steps):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            pred = net(x)
            loss = sum(losses[t.name](pred[t.name].float(), ys[t.name]) for t in spec.tasks)
        opt.zero_grad()
        loss.backward()
        opt.step()
        out.append(time.perf_counter() - start)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmark.studies.precision_step", description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="prostate", choices=list(DATASETS))
    ap.add_argument("--methods", nargs="+", default=["hps", "ctan"], choices=list(METHODS))
    ap.add_argument("--size", type=int, default=48)
    ap.add_argument("--steps", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    print(f"CPU: {describe_cpu()}; torch CPU capability {torch.backends.cpu.get_cpu_capability()}")
    for method in args.methods:
        best = {}
        for amp in (False, True):
            secs = step_seconds(args.dataset, method, args.size, amp, args.steps)
            best[amp] = min(secs)
            for k, s in enumerate(secs):
                print(f"{args.dataset} {method} {args.size} px {'bf16' if amp else 'fp32'} step {k}: {s:.2f} s", flush=True)
        print(f"{method}: bf16 / fp32 = {best[True] / best[False]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
