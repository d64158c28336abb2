"""Speed of the suite's training step against a bare PyTorch loop (issue 7).

    python -m benchmark.speed --profile quick --out DIR [--methods hps ctan] [--paper-memory]

Per method, at the profile's backbone, image size and batch size on one dataset's synthetic
stand-in: images/s of the suite's own training epoch (``benchmark.training.loop.train_epoch``: shuffled
``batches``, DWA-weighted losses, fused Adam) and of a bare loop (same network, losses and optimiser
on pre-made tensors, no DWA), alternated and the best of ``--repeats`` kept;
FLOPs of one step (``torch.utils.flop_counter``: convolutions and matmuls, forward and backward)
and the achieved FLOP/s against a dense float32 matmul; peak tensor memory of one step
(``MemTracker``: parameters, gradients, Adam moments, activations and temporaries); evaluation time
per sample; the share of a step spent waiting for the batch iterator. For STL a step is one batch
through each of the two single-task networks. How each number is taken: docs/performance.md.
"""
from __future__ import annotations

import argparse
import os
import platform
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import benchmark.training.loop as training
from benchmark.experiment.profiles import (PROFILES, Profile, ProfileError, get_profile, parse_settings,
                                          with_overrides)
from benchmark.training.batches import batches
from benchmark.training.evaluation import evaluate
from benchmark.training.losses import make_loss
from benchmark.training.weighting.catalog import DEFAULT, NONE, WEIGHTINGS
from benchmark.training.weighting.base import Weighting
from benchmark.training.weighting.bilevel import LookAhead
from benchmark.training.weighting.registry import CLASSES, build_weighting
from data import DATASETS, get_dataset
from data.base import Split, TaskData
from models.registry import MODELS, build_model
GPU_MEMORY_MB = 40 * 1024  # the paper's single 40 GB GPU
LIBMTL = ("for comparison, not measured in this run: LibMTL's MTAN step was 2.4-3.2x its HPS step, 3.0-3.6x the "
          "FLOPs, on the AMD EPYC of docs/performance.md (2026-11)")
Batch = dict[str, torch.Tensor]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_peak_gflops(device: torch.device, n: int = 2048, reps: int = 5) -> float:
    """Best dense float32 matmul rate (GFLOP/s) at the current thread count: the physical limit."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    best = float("inf")
    for _ in range(reps):
        _sync(device)
        start = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e9


def _step_fn(net: nn.Module, tasks, profile: Profile,
             weighting: str | None = None) -> tuple[Callable[[Batch], None], torch.optim.Optimizer]:
    """The bare training step (forward, unweighted loss sum, backward, the suite's optimiser) and its
    optimiser; with ``weighting``, that weighting's step instead of the plain sum (for its memory)."""
    losses = {t.name: make_loss(t) for t in tasks}
    weighter = build_weighting(weighting, len(tasks)) if weighting else None
    opt = training.make_optimizer(net, profile, weighter.learnable() if weighter else [])
    device_type = next(net.parameters()).device.type
    gradient = weighter is not None and weighter.kind == "gradient" and len(tasks) > 1
    shared = net.shared_parameters() if gradient else []
    others = [q for q in net.parameters() if all(q is not r for r in shared)] if gradient else []

    samples = weighter.samples if weighter is not None and len(tasks) > 1 else 1
    bilevel = weighter is not None and weighter.bilevel and len(tasks) > 1

    def forward(b: Batch, model: nn.Module = net) -> torch.Tensor:
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=profile.amp):
            out = model(b["image"])
            return torch.stack([losses[t.name](out[t.name].float(), b[t.name]) for t in tasks])

    def step(b: Batch) -> None:
        # a sampled weighting (MoDo, SDMGrad) takes 3 batches a step: here the same one 3 times, the same cost
        task_losses = forward(b) if samples == 1 else [forward(b) for _ in range(samples)]
        opt.zero_grad(set_to_none=True)
        if bilevel:  # the same batch as its meta batch: the same cost
            group = opt.param_groups[0]
            weighter.meta_step(LookAhead(net, task_losses, lambda model, x: forward(x, model), b, b,
                                         float(group["lr"]), float(group["weight_decay"])))
        if weighter is None:
            task_losses.sum().backward()
        else:
            weighter.step(task_losses, shared, others)
        opt.step()
    return step, opt


def suite_epoch(net: nn.Module, tasks, split: Split, profile: Profile, bs: int, seed: int,
                device: torch.device, weighting: str = DEFAULT) -> Callable[[], tuple[float, float]]:
    """A function running one epoch of the suite's ``train_epoch`` (the loss ``weighting``, shuffled
    batches from ``benchmark.training.batches``, fused Adam) and returning (seconds, seconds waiting
    for data). Per-epoch model selection (validation, keeping the best state) is not part of a step."""
    losses = {t.name: make_loss(t) for t in tasks}
    weighter = build_weighting(weighting, len(tasks)).to(device)
    opt = training.make_optimizer(net, profile, weighter.learnable())
    rng = np.random.default_rng(seed)
    epoch = iter(range(10 ** 9))

    def run() -> tuple[float, float]:
        _sync(device)
        start = time.perf_counter()
        weighter.start_epoch(next(epoch))
        mean_losses, _, waiting = training.train_epoch(net, tasks, split, losses, opt, weighter, bs, rng, device,
                                                       profile.amp, profile.channels_last)
        weighter.end_epoch(mean_losses)
        return time.perf_counter() - start, waiting
    return run


def bare_epoch(net: nn.Module, tasks, split: Split, profile: Profile, bs: int,
               device: torch.device) -> Callable[[], float]:
    """A function running the bare step over the same number of pre-made in-memory batches (seconds)."""
    pre = list(batches(split, bs, device=device, drop_last=True, channels_last=profile.channels_last))
    step, _ = _step_fn(net, tasks, profile)

    def run() -> float:
        net.train()
        _sync(device)
        start = time.perf_counter()
        for b in pre:
            step(b)
        _sync(device)
        return time.perf_counter() - start
    return run


def step_flops(net: nn.Module, tasks, batch: Batch) -> int:
    """FLOPs of forward + backward on one batch (conv and matmul ops counted by FlopCounterMode)."""
    losses = {t.name: make_loss(t) for t in tasks}
    with FlopCounterMode(display=False) as counter:
        out = net(batch["image"])
        sum(losses[t.name](out[t.name], batch[t.name]) for t in tasks).backward()
    net.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def batch_layout(batch: Batch) -> str:
    """The memory format convolutions pick for a batch's images. A [N, 1, H, W] image batch is both
    contiguous and channels-last; PyTorch decides from the stride of the size-1 channel dimension,
    which numpy sets differently for slices (NCHW) and fancy-indexed shuffled batches (NHWC)."""
    x = batch["image"]
    out = F.conv2d(x, torch.zeros(2, x.shape[1], 1, 1, device=x.device))
    return "channels_last" if not out.is_contiguous() else "contiguous"


def _bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def step_peak_bytes(net: nn.Module, tasks, batch: Batch, profile: Profile, device: torch.device,
                    weighting: str | None = None) -> tuple[int, str]:
    """Peak tensor memory of one steady-state training step of ``net`` and how it was obtained.

    CUDA: ``max_memory_allocated``. CPU: torch's ``MemTracker`` (a dispatch mode that follows every
    tensor storage: parameters, gradients, Adam moments, activations, temporaries); without it an
    estimate: 4x parameter bytes (weights, gradients, two moments) + bytes saved for backward."""
    step, opt = _step_fn(net, tasks, profile, weighting)
    net.train()
    step(batch)  # allocates the Adam moments
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        step(batch)
        return torch.cuda.max_memory_allocated(device) - base + _bytes(net.parameters()) * 4, "cuda"
    try:
        from torch.distributed._tools.mem_tracker import MemTracker
    except ImportError:
        saved: dict[int, int] = {}
        params = {p.untyped_storage().data_ptr() for p in net.parameters()}

        def pack(t: torch.Tensor) -> torch.Tensor:
            s = t.untyped_storage()
            if s.data_ptr() not in params:
                saved[s.data_ptr()] = s.nbytes()
            return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            step(batch)
        return 4 * _bytes(net.parameters()) + _bytes(net.buffers()) + sum(saved.values()), "saved-tensor estimate"
    tracker = MemTracker()
    tracker.track_external(net, opt, *batch.values())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with tracker:
                step(batch)
    except NotImplementedError:  # an operation MemTracker cannot follow (e.g. a vmapped backward)
        return float("nan"), "not measurable (MemTracker)"
    return max(s["Total"] for s in tracker.get_tracker_snapshot("peak").values()), "MemTracker"


def model_peak_mb(model: nn.Module, batch: Batch, profile: Profile, device: torch.device,
                  weighting: str | None = None) -> tuple[float, str]:
    """Peak of a cell: the largest network's step plus the weights of networks not training (STL)."""
    nets = model.networks()
    peaks = []
    for tasks, net in nets:
        peak, how = step_peak_bytes(net, tasks, batch, profile, device, weighting)
        idle = sum(_bytes(n.parameters()) + _bytes(n.buffers()) for _, n in nets if n is not net)
        peaks.append(peak + idle)
    return max(peaks) / 2 ** 20, how


TOKENS = ("fp32", "bf16", "channels_last", "compile")


def variant_settings(variant: str) -> tuple[dict[str, str], bool]:
    """A variant name (tokens of ``TOKENS`` joined by '+', e.g. ``bf16+channels_last``) as profile
    settings and whether to ``torch.compile`` the networks."""
    tokens = variant.split("+")
    if bad := [t for t in tokens if t not in TOKENS]:
        raise ValueError(f"unknown variant part(s) {bad} in {variant!r}; parts: {', '.join(TOKENS)}")
    settings = {"amp": str("bf16" in tokens), "channels_last": str("channels_last" in tokens)}
    return settings, "compile" in tokens


def measure_method(method: str, data: TaskData, profile: Profile, steps: int, warmup: int, repeats: int,
                   device: torch.device, variant: str = "fp32", memory: bool = True, weighting: str = DEFAULT) -> dict:
    """One row of speed.csv (``peak_gflops`` is filled in by ``main``: the best matmul rate seen)."""
    matmul_now = matmul_peak_gflops(device)  # the same right before: a low value flags a busy machine
    settings, compile_ = variant_settings(variant)
    profile = with_overrides(profile, settings)
    spec, train = data.spec, data.splits["train"]
    size, bs = train.image.shape[-1], profile.batch_size or spec.paper_batch_size
    torch.manual_seed(0)
    model = build_model(method, spec.tasks, profile.backbone, profile.pretrained, spec.in_channels).to(device)
    nets = model.networks()
    batch = next(batches(train, bs, device=device))
    flops = sum(step_flops(net, tasks, batch) for tasks, net in nets)  # float32 FLOPs: the same for every variant
    peak_mb, how = (model_peak_mb(model, batch, profile, device, weighting) if memory and not compile_
                    else (float("nan"), "not measured"))
    layout = batch_layout(next(batches(train, bs, shuffle=True, rng=np.random.default_rng(0), device=device,
                                       channels_last=profile.channels_last)))
    if profile.channels_last:
        model.to(memory_format=torch.channels_last)
    if compile_:
        for _, net in nets:
            net.compile()
    loops = [(suite_epoch(net, tasks, train, profile, bs, k, device, weighting),
              bare_epoch(net, tasks, train, profile, bs, device)) for k, (tasks, net) in enumerate(nets)]
    start = time.perf_counter()
    for _ in range(warmup):  # allocator, MONAI import, Adam moments, compilation
        for suite_run, bare_run in loops:
            suite_run(), bare_run()
    warmup_s = time.perf_counter() - start
    suite, bare = [], []
    for _ in range(repeats):  # alternate suite and bare so that load changes hit both alike
        s = [suite_run() for suite_run, _ in loops]
        suite.append((sum(x[0] for x in s) / steps, sum(x[1] for x in s) / steps))
        bare.append(sum(bare_run() for _, bare_run in loops) / steps)
    (suite_s, wait_s), bare_s = min(suite), min(bare)  # other processes only add time: best of repeats
    start = time.perf_counter()
    for tasks, net in nets:
        evaluate(net, tasks, data.splits["val"], bs, device, channels_last=profile.channels_last)
    eval_s = (time.perf_counter() - start) / len(data.splits["val"])
    shared = sum(p.numel() for p in model.shared_parameters()) if method != "stl" else 0
    jacobian_mb = (len(spec.tasks) * shared * 4 / 2 ** 20 if method != "stl" and
                   build_weighting(weighting, len(spec.tasks)).kind == "gradient" else 0.0)
    return {"method": method, "variant": variant, "weighting": weighting if method != "stl" else "none",
            "jacobian_mb": jacobian_mb,
            "dataset": spec.name, "data_source": data.source,
            "profile": profile.name, "backbone": profile.backbone,
            "image_size": size, "batch_size": bs, "networks": len(nets), "threads": torch.get_num_threads(),
            "suite_step_ms": 1e3 * suite_s, "bare_step_ms": 1e3 * bare_s,
            "suite_images_per_s": bs / suite_s, "bare_images_per_s": bs / bare_s,
            "overhead_ratio": suite_s / bare_s, "gflop_per_step": flops / 1e9,
            "achieved_gflops": flops / suite_s / 1e9, "matmul_gflops_now": matmul_now,
            "data_wait_share": wait_s / suite_s, "warmup_s": warmup_s,
            "eval_ms_per_sample": 1e3 * eval_s, "peak_memory_mb": peak_mb, "memory_method": how,
            "suite_layout": layout,
            "load_1min": os.getloadavg()[0]}


def speed_data(dataset: str, profile: Profile, steps: int, data_source: str = "synthetic",
               data_root: str | None = None, skip_bad: bool = False) -> TaskData:
    """Training batches for ``steps`` steps and two validation batches: the synthetic stand-in, or
    the first samples of the real dataset's splits (prepared at the profile's image size)."""
    entry = get_dataset(dataset)
    size = profile.image_size or entry.spec.native_size
    bs = profile.batch_size or entry.spec.paper_batch_size
    if data_source == "synthetic":
        return entry.synthetic(profile.data_seed, steps * bs, 2 * bs, bs, size)
    from data.prepare import load
    real = load(dataset, data_root, size, skip_bad=skip_bad)
    n = {"train": steps * bs, "val": 2 * bs, "test": bs}
    splits = {k: Split(v.image[:n[k]], {t: y[:n[k]] for t, y in v.targets.items()}, v.case_id[:n[k]],
                       {e: x[:n[k]] for e, x in v.extras.items()}) for k, v in real.splits.items()}
    if len(splits["train"]) < steps * bs:
        raise ValueError(f"real {dataset} has {len(splits['train'])} training samples, {steps * bs} needed")
    return TaskData(real.spec, splits, "real", real.description)


def paper_memory(methods, device: torch.device) -> pd.DataFrame:
    """Paper-profile peak per method and dataset (ResNet-50, native size, paper batch): measured at
    batch 1 and 2, extrapolated linearly (weights, gradients and moments are fixed, activations
    grow with the batch). Random weights: memory does not depend on their values."""
    paper, rows = get_profile("paper"), []
    for name, entry in DATASETS.items():
        spec = entry.spec
        data = entry.synthetic(0, 2, 1, 1, spec.native_size)
        for method in methods:
            model = build_model(method, spec.tasks, paper.backbone, False, spec.in_channels).to(device)
            p1, p2 = (model_peak_mb(model, next(batches(data.splits["train"], b, device=device)), paper, device)[0]
                      for b in (1, 2))
            peak = p1 + (spec.paper_batch_size - 1) * (p2 - p1)
            rows.append({"dataset": name, "method": method, "image_size": spec.native_size,
                         "batch_size": spec.paper_batch_size, "mb_batch1": p1, "mb_per_sample": p2 - p1,
                         "peak_memory_mb": peak, "fits_40gb": peak < GPU_MEMORY_MB})
    return pd.DataFrame(rows)


def ratios(df: pd.DataFrame) -> dict[str, float]:
    """MTAN/HPS and CTAN/HPS step time and FLOPs, CTAN/MTAN step (where the methods were measured)."""
    by = df.set_index("method")
    out = {}
    for a, b in (("mtan", "hps"), ("ctan", "hps"), ("ctan", "mtan")):
        if a in by.index and b in by.index:
            out[f"{a.upper()}/{b.upper()} step"] = by.at[a, "suite_step_ms"] / by.at[b, "suite_step_ms"]
            out[f"{a.upper()}/{b.upper()} FLOPs"] = by.at[a, "gflop_per_step"] / by.at[b, "gflop_per_step"]
    return out


def plain_step(weighting: str) -> bool:
    """Whether a weighting's step is the bare step's one backward of a weighted loss sum (a loss
    weighting without an extra pass after the step, as FAMO's): the suite-vs-bare target measures the
    loop's overhead for those; any other weighting's extra work is its own cost (reported vs DWA)."""
    name = weighting.split("+")[0]
    return name == NONE or (name in CLASSES and CLASSES[name].kind == "loss"
                            and CLASSES[name].after_step is Weighting.after_step)


def targets(df: pd.DataFrame, r: dict[str, float]) -> list[str]:
    """The issue's targets, each with its measured value and ok / MISSED."""
    by = df.set_index("method")
    mark = lambda ok: "ok" if ok else "MISSED"  # noqa: E731
    plain = all(plain_step(w) for w in set(df["weighting"]))
    lines = [f"{m}: suite step {v:.2f}x the bare step (target <= 1.11, i.e. >= 0.9x its speed): {mark(v <= 1 / 0.9)}"
             if plain else f"{m}: suite step {v:.2f}x the bare step (the weighting's own cost; no target)"
             for m, v in by["overhead_ratio"].items()]
    for m in ("mtan", "ctan"):
        if m in by.index and "hps" in by.index:
            a, h = by.at[m, "achieved_gflops"], by.at["hps", "achieved_gflops"]
            lines.append(f"{m} achieved {a:.1f} GFLOP/s vs HPS {h:.1f} (target >=): {mark(a >= h)}")
    if "CTAN/MTAN step" in r:
        lines.append(f"CTAN/MTAN step {r['CTAN/MTAN step']:.2f} (target <= 1.25): {mark(r['CTAN/MTAN step'] <= 1.25)}")
    worst = df["data_wait_share"].max()
    lines.append(f"largest data wait {100 * worst:.1f} % of a step (target <= 5 %): {mark(worst <= 0.05)}")
    return lines


def markdown(df: pd.DataFrame, header: str, paper: pd.DataFrame | None) -> str:
    lines = [header]
    for (variant, weighting), g in df.groupby(["variant", "weighting"], sort=False):
        r = ratios(g)
        lines += ["", f"### {variant}, {weighting}", "", "| method | suite img/s | bare img/s | suite/bare time | GFLOP/step | "
                  "achieved GFLOP/s | % of matmul peak | data wait % | eval ms/sample | peak MB | suite batch layout |",
                  "|---" * 11 + "|"]
        for row in g.itertuples():
            lines.append(f"| {row.method} | {row.suite_images_per_s:.0f} | {row.bare_images_per_s:.0f} | "
                         f"{row.overhead_ratio:.2f} | {row.gflop_per_step:.1f} | {row.achieved_gflops:.1f} | "
                         f"{100 * row.peak_share:.0f} | {100 * row.data_wait_share:.1f} | "
                         f"{row.eval_ms_per_sample:.2f} | {row.peak_memory_mb:.0f} | {row.suite_layout} |")
        lines += ["", "Ratios: " + ", ".join(f"{k} {v:.2f}" for k, v in r.items()) + f" ({LIBMTL}).", ""]
        lines += [f"- {t}" for t in targets(g, r)]
    mtl = df[df["weighting"] != "none"]
    if mtl["weighting"].nunique() > 1 and DEFAULT in set(mtl["weighting"]):
        base = mtl[mtl["weighting"] == DEFAULT].groupby(["variant", "method"])["suite_step_ms"].first()
        rel = mtl.assign(ratio=[r.suite_step_ms / base[(r.variant, r.method)] for r in mtl.itertuples()])
        table = rel.pivot_table(index=["variant", "method"], columns="weighting", values="ratio", sort=False)
        lines += ["", "Suite step time relative to DWA (the paper's weighting):", "", table.round(2).to_markdown()]
        if not mtl["peak_memory_mb"].isna().all():
            mem = mtl.pivot_table(index=["variant", "method"], columns="weighting", values="peak_memory_mb",
                                  sort=False, dropna=False)
            jac = mtl.pivot_table(index=["variant", "method"], columns="weighting", values="jacobian_mb", sort=False)
            lines += ["", "Peak memory of a step (MB; MemTracker: parameters, gradients, Adam moments, "
                      "activations, temporaries and a gradient weighting's task Jacobian; n/a where it "
                      "could not follow the step):", "", mem.round(0).to_markdown(),
                      "", "Size of the task Jacobian a gradient weighting holds (MB: tasks x shared parameters "
                      "x 4 bytes), on top of a loss weighting's step:", "", jac.round(0).to_markdown()]
    if df["variant"].nunique() > 1 and "fp32" in set(df["variant"]):
        df = df[df["weighting"].isin([DEFAULT, "none"])]
        base = df[df["variant"] == "fp32"].set_index("method")["suite_step_ms"]
        rel = df.assign(ratio=df["suite_step_ms"] / df["method"].map(base))
        table = rel.pivot_table(index="method", columns="variant", values="ratio", sort=False)
        lines += ["", "Suite step time relative to fp32 (below 1: faster):", "", table.round(2).to_markdown()]
    if paper is not None:
        lines += ["", "Paper profile (ResNet-50, paper batch, native size), peak MB, measured at batch 1 and 2 "
                  "and extrapolated:", "", "| dataset | image | batch | " + " | ".join(paper.method.unique()) + " |",
                  "|---" * (3 + paper.method.nunique()) + "|"]
        for (name, size, bs), g in paper.groupby(["dataset", "image_size", "batch_size"], sort=False):
            lines.append(f"| {name} | {size} | {bs} | " + " | ".join(f"{v:.0f}" for v in g.peak_memory_mb) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> pd.DataFrame:
    ap = argparse.ArgumentParser(prog="python -m benchmark.speed", description=__doc__.split("\n")[0])
    ap.add_argument("--profile", default="quick", choices=list(PROFILES))
    ap.add_argument("--out", required=True, help="folder for speed.csv and speed.md")
    ap.add_argument("--methods", nargs="+", default=list(MODELS), help="methods (space or comma separated)")
    ap.add_argument("--variants", nargs="+", default=["fp32"],
                    help=f"numerics and layout, parts joined by '+' from {', '.join(TOKENS)} "
                         "(e.g. fp32 bf16 channels_last bf16+channels_last compile)")
    ap.add_argument("--weightings", nargs="+", default=[DEFAULT],
                    help=f"loss weightings ({', '.join(WEIGHTINGS)}); each row's step is compared with DWA's")
    ap.add_argument("--dataset", default="prostate", choices=list(DATASETS))
    ap.add_argument("--image-size", type=int, default=None, help="image side (default: the profile's)")
    ap.add_argument("--set", dest="settings", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                    help="change profile settings as reproduce.py --set does (e.g. backbone=resnet50 batch_size=8)")
    ap.add_argument("--data", default="synthetic", choices=("synthetic", "real"))
    ap.add_argument("--data-root", default=None, help="real data: the dataset folder (prepared on first use)")
    ap.add_argument("--skip-bad", action="store_true", help="real data: skip unreadable samples (as reproduce.py)")
    ap.add_argument("--steps", type=int, default=10, help="training steps per timed epoch")
    ap.add_argument("--warmup", type=int, default=1, help="untimed epochs (of --steps steps) of each loop first")
    ap.add_argument("--repeats", type=int, default=3, help="alternating suite/bare measurements (best kept)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--paper-memory", action="store_true", help="also the paper profile's peak per method and dataset")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement (slow at large sizes)")
    args = ap.parse_args(argv)
    methods = [m for item in args.methods for m in item.split(",") if m]
    if bad := sorted(set(methods) - set(MODELS)):
        ap.error(f"unknown method(s) {bad}; choose from {list(MODELS)}")
    for variant in args.variants:
        try:
            variant_settings(variant)
        except ValueError as exc:
            ap.error(str(exc))
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    try:
        settings = parse_settings(args.settings)
        if args.image_size:
            settings["image_size"] = str(args.image_size)
        profile = with_overrides(get_profile(args.profile), settings)
    except ProfileError as exc:
        ap.error(str(exc))
    data = speed_data(args.dataset, profile, args.steps, args.data, args.data_root, args.skip_bad)
    load_before = os.getloadavg()
    peak = matmul_peak_gflops(device)
    rows = []
    for variant in args.variants:
        for weighting in args.weightings:
            for method in methods:
                if method == "stl" and weighting != args.weightings[0]:
                    continue  # STL weighs nothing: measured once
                rows.append(measure_method(method, data, profile, args.steps, args.warmup, args.repeats, device,
                                           variant, not args.no_memory, weighting))
                print(f"{variant} {weighting} {method}: {rows[-1]['suite_images_per_s']:.0f} img/s suite, "
                      f"{rows[-1]['bare_images_per_s']:.0f} bare", flush=True)
    df = pd.DataFrame(rows)
    peak = max(peak, matmul_peak_gflops(device), df.matmul_gflops_now.max())
    df["peak_gflops"], df["peak_share"] = peak, df.achieved_gflops / peak
    paper = paper_memory(methods, device) if args.paper_memory else None
    load_after = os.getloadavg()
    header = (f"`python -m benchmark.speed --profile {args.profile}"
              f"{''.join(' --set ' + o for o in profile.overrides)} --dataset {args.dataset} --data {args.data}` on "
              f"{device} ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.threads} torch "
              f"threads, torch {torch.__version__}); {profile.backbone}, {df.image_size[0]} px, batch "
              f"{df.batch_size[0]}, best of {args.repeats} alternating epochs of {args.steps} steps; dense matmul "
              f"peak {peak:.0f} GFLOP/s (best seen); load average (1/5/15 min) "
              f"{'/'.join(f'{x:.2f}' for x in load_before)} before, {'/'.join(f'{x:.2f}' for x in load_after)} after")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "speed.csv", index=False)
    if paper is not None:
        paper.to_csv(out / "paper_memory.csv", index=False)
    text = markdown(df, header, paper)
    (out / "speed.md").write_text(text)
    print(text)
    return df


if __name__ == "__main__":
    main()
