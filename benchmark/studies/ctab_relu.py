"""CTAB's embedding with and without ReLU (issue 11, docs/architecture.md "CTAB"): CTAN's test
metrics on every dataset, and the spatial spread of Ā_t that tells whether CTAB attends or averages.

    python -m benchmark.studies.ctab_relu --out DIR [--profile quick] [--seeds 0 1 2] [--jobs 2]
        [--dataset openkbp --data real --data-root ../shared/data/openkbp-sample]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from benchmark.experiment.profiles import PROFILES, get_profile
from benchmark.studies.common import run_all, summary
from benchmark.training.batches import batches
from benchmark.training.loop import EpochEnd
from data import DATASETS
from data.base import TaskData

VARIANTS = {"relu": {"ctab_relu": True}, "linear": {"ctab_relu": False}}


def ctab_spread(end: EpochEnd, data: TaskData) -> dict[str, float]:
    """Mean over channels and validation images of Ā_t's spatial std divided by its spatial mean
    magnitude: near 0 when CTAB returns the same vector at every position (a global average)."""
    net = end.net
    seen: list[torch.Tensor] = []
    hook = net.ctab.register_forward_hook(lambda m, i, out: seen.extend(o.detach() for o in out))
    was_training = net.training
    net.eval()
    with torch.no_grad():
        for b, batch in enumerate(batches(data.splits["val"], 16)):
            if b >= 2:
                break
            net(batch["image"])
    hook.remove()
    net.train(was_training)
    a = torch.cat(seen)                          # [B, d, H, W]
    if a.shape[-1] * a.shape[-2] == 1:
        return {"ctab_spread": 0.0}
    spread = a.flatten(2).std(2) / a.flatten(2).abs().mean(2).clamp_min(1e-12)
    return {"ctab_spread": float(spread.mean())}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m benchmark.studies.ctab_relu", description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--profile", default="quick", choices=list(PROFILES))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--dataset", action="append", choices=list(DATASETS))
    ap.add_argument("--data", default="synthetic", choices=("synthetic", "real"))
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    profile = get_profile(args.profile)
    jobs = [dict(dataset=d, method="ctan", seed=s, profile=profile, variant=v, model_kwargs=kw,
                 data_source=args.data, data_root=args.data_root, on_epoch=ctab_spread)
            for d in args.dataset or list(DATASETS) for v, kw in VARIANTS.items() for s in args.seeds]
    df = run_all(jobs, args.jobs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "ctab_relu.csv", index=False)
    spread = df[df.task == "ctab_spread"]
    epoch = spread.metric.str.removeprefix("epoch").astype(int)
    last = spread[epoch == epoch.max()]
    metrics = tuple(sorted({t.metric for e in DATASETS.values() for t in e.spec.tasks} | {"dose_score", "slice_dose_score"}))
    text = ("CTAB output spatial spread (std / mean |Ā| over positions) after the last epoch, mean over seeds:\n\n"
            + last.groupby(["dataset", "variant"])["value"].mean().round(3).to_frame("spread").to_markdown()
            + "\n\nTest metrics (mean ± std over seeds):\n\n" + summary(df, metrics).to_markdown() + "\n")
    (out / "ctab_relu.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
