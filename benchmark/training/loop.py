"""Training of one network (Sec. 2.2): Adam, task losses of Table 1, DWA, model selection on val."""
from __future__ import annotations

import dataclasses
import sys
import time
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterator

import numpy as np
import torch
from torch import nn

from benchmark.training.batches import batch_count, batches
from benchmark.training.checkpoint import Checkpoints
from benchmark.training.evaluation import evaluate
from benchmark.training.losses import make_loss
from benchmark.training.settings import TrainSettings
from benchmark.training.weighting.base import Weighting
from benchmark.training.weighting.bilevel import LookAhead
from benchmark.training.weighting.registry import build_weighting
from data.base import Split, TaskData
from data.spec import METRICS, TaskSpec

if TYPE_CHECKING:  # the loop reads a profile's fields; profiles belong to the experiment layer above it
    from benchmark.experiment.profiles import Profile


class NonFiniteLoss(RuntimeError):
    """A task loss became NaN or infinite: training stops with the task and epoch named."""


class NonFiniteGradient(RuntimeError):
    """A gradient of the first steps is NaN or infinite: stopped with the parameter, the precision
    and the device named, before the optimiser writes it into the weights."""


GRADIENT_CHECK_STEPS = 3  # steps of a network's first epoch (in this process) whose gradients are checked


def check_gradients(net: nn.Module, where: str, epoch: int, step: int, amp: bool,
                    device: torch.device) -> None:
    """Raise :class:`NonFiniteGradient` naming the first parameter with a non-finite gradient. One
    fused norm over every gradient and one device sync: cheap enough for a few steps, and an
    all-finite check where it matters (a non-finite gradient also has a non-finite norm)."""
    named = [(n, p.grad) for n, p in net.named_parameters() if p.grad is not None]
    if not named:
        return
    norms = torch.stack(torch._foreach_norm([g.float() for _, g in named]))
    finite = torch.isfinite(norms).cpu().numpy()
    if finite.all():
        return
    name = named[int(np.argmin(finite))][0]
    fix = "retry with --set amp=false (fp32)" if amp else "check the data and lower the learning rate"
    raise NonFiniteGradient(f"{where}: the gradient of {name} is not finite at step {step} of epoch {epoch} "
                            f"({precision_label(amp)} on {device}); {fix}")


def precision_label(amp: bool) -> str:
    return "bf16 autocast" if amp else "fp32"


class Diverged(RuntimeError):
    """A run whose losses exploded or whose metrics left their possible range: stopped, task and
    epoch named, so that absurd numbers are never stored as a finished cell."""


DIVERGENCE_FACTOR = 100.0  # a task loss this many times its first epoch's: the run diverged
LOSS_CEILING = 1e4         # every task loss is O(1) by construction (scaled dose, CE, combo); far above: broken


def check_metrics(results: dict[str, dict[str, float]], tasks: tuple[TaskSpec, ...], where: str) -> None:
    """Raise :class:`Diverged` when a metric is outside its possible range (``data.spec.METRICS``)."""
    for t in tasks:
        for name, value in results[t.name].items():
            if name in METRICS and not METRICS[name].possible(value):
                m = METRICS[name]
                raise Diverged(f"{where}: {t.name} {name} is {value:.4g} {m.unit}, outside its possible range "
                               f"{m.low:g}..{m.high:g}; the run is broken (diverged?), not stored")


def _check_losses(where: str, epoch: int, tasks, kind: str, now: np.ndarray, first: np.ndarray,
                  profile, batch_size: int) -> None:
    """Stop a run whose ``kind`` (training or validation) losses are NaN or absurd in themselves, or
    whose training losses are far above their first epoch's.

    A validation loss far above its first epoch's while training is healthy only warns: that epoch
    is then not selected (model selection exists for exactly this), and stopping would throw away a
    valid run (seen on real OpenKBP: CTAN's dose validation loss jumped 217× in its last epoch after
    three healthy ones; the selected epoch was an earlier one)."""
    hint = f"(lr {profile.lr}, batch {batch_size}); check the data for NaN or lower the learning rate"
    for t, value, ref in zip(tasks, now, first):
        if not np.isfinite(value):
            raise NonFiniteLoss(f"{where}: {kind} loss of task {t.name!r} is {value} in epoch {epoch} {hint}")
        if value > LOSS_CEILING:
            why = f"{value:.4g}, far beyond the O(1) of a task loss"
        elif value > DIVERGENCE_FACTOR * ref:
            why = f"{value:.4g}, {value / ref:.0f} times its {ref:.4g} in epoch 0"
            if kind == "validation":
                warnings.warn(f"{where}: validation loss of task {t.name!r} in epoch {epoch} is {why}; "
                              "training is healthy, so this epoch is simply not selected", stacklevel=2)
                continue
        else:
            continue
        raise Diverged(f"{where}: {kind} loss of task {t.name!r} in epoch {epoch} is {why}: the run diverged {hint}")


SELECTION_RULE = "mean_val_loss_over_trivial"  # recorded in epochs.csv beside each epoch's score
# Eval-mode validation loss this many times the epoch's training loss: evaluation is suspect (stale
# or biased BatchNorm statistics, a numerically fragile head). Measured on the committed real
# OpenKBP row: healthy STL/HPS epochs have val/train ratios 0.64-1.75; the epochs that the biased
# recalibration broke had 7.3-411. 5 leaves room for overfitting on small data and flags those.
EVAL_GAP_FACTOR = 5.0


def selection_score(val_losses: np.ndarray, reference_losses: np.ndarray) -> float:
    """Model-selection criterion of one epoch (lower is better): the mean over tasks of each task's
    validation loss divided by its reference, the validation loss of a trivial prediction
    (:func:`trivial_losses`).

    Every task counts equally whatever the scale of its loss (a dose L1 on a 1/70 Gy scale is
    ~0.03 beside a combo loss of ~0.2: in a raw sum it would not count), and the same rule serves
    STL (one task: the lowest validation loss) and every MTL method. The reference is a constant of
    the data, so a spiked epoch cannot distort it (the epoch-0 validation loss, used before, made a
    task whose first epoch spiked count 3-5x less). docs/reproduction.md, "Model selection".
    """
    ref = np.maximum(np.asarray(reference_losses, dtype=np.float64), np.finfo(np.float64).tiny)
    return float(np.mean(np.asarray(val_losses, dtype=np.float64) / ref))


def trivial_losses(tasks: tuple[TaskSpec, ...], train: Split, val: Split, losses: dict,
                   batch_size: int) -> np.ndarray:
    """Each task's validation loss (batch-weighted, as :func:`evaluate` averages it) of the
    trivial prediction (``KindInfo.constant_prediction``: the class prior, the prevalence, the mean
    target, learnt from the training targets alone): the selection score's per-task reference."""
    out = np.zeros(len(tasks))
    for k, t in enumerate(tasks):
        constant = torch.as_tensor(t.info.constant_prediction(t, train.targets[t.name]), dtype=torch.float32)
        total, count = 0.0, 0
        for start in range(0, len(val), batch_size):
            y = torch.from_numpy(np.ascontiguousarray(val.targets[t.name][start:start + batch_size]))
            n = len(y)
            # what the network outputs for these targets: a map per pixel or a vector per image
            shape = (n, t.num_outputs, *y.shape[-2:]) if t.kind == "pixel" else (n, t.num_outputs)
            pred = constant.view(1, -1, *([1] * (len(shape) - 2))).expand(shape).contiguous()
            total += float(losses[t.name](pred, y)) * n
            count += n
        out[k] = total / max(count, 1)
    return out


def eval_gap_warning(tasks: tuple[TaskSpec, ...], train_losses: np.ndarray, val_losses: np.ndarray) -> str:
    """One line naming every task whose eval-mode validation loss is more than
    :data:`EVAL_GAP_FACTOR` times its training loss, with the two numbers; "" when none is."""
    parts = [f"{t.name}: validation loss {v:.4g} is {v / tr:.1f}x its training loss {tr:.4g}"
             for t, tr, v in zip(tasks, train_losses, val_losses)
             if np.isfinite(v) and tr > 0 and v > EVAL_GAP_FACTOR * tr]
    return "; ".join(parts)


@dataclass
class EpochEnd:
    """What a per-epoch hook of :func:`train_network` sees, after validation and model selection."""

    epoch: int
    net: nn.Module
    tasks: tuple[TaskSpec, ...]
    weights: np.ndarray              # the loss weights used in this epoch
    train_losses: np.ndarray         # each task's mean training loss (unweighted)
    val: dict[str, dict[str, float]]
    score: float                     # the selection score of this epoch


@dataclass(frozen=True)
class Selection:
    """Model selection so far: the lowest selection score, its epoch (-1: none yet), the weights and
    the validation results of that epoch."""

    score: float = np.inf
    epoch: int = -1
    state: dict | None = None
    val: dict | None = None


@dataclass
class TrainResult:
    best_epoch: int
    val: dict[str, dict[str, float]]            # validation metrics at the selected epoch
    epochs: list[dict] = field(default_factory=list)  # rows of epochs.csv


def make_optimizer(net: nn.Module, profile: Profile, extra: list[nn.Parameter] = ()) -> torch.optim.Optimizer:
    """Adam with the paper's lr and weight decay (Sec. 2.2) over the network's parameters and a loss
    weighting's own (``extra``: UW's log-variances, GradNorm's scales). The fused kernel gives the
    same update and is ~10x faster than the default on CPU (65 -> 6.6 ms per step for a ResNet-18
    HPS, measured)."""
    return torch.optim.Adam([*net.parameters(), *extra], lr=profile.lr, weight_decay=profile.weight_decay,
                            fused=True)


def train_epoch(net: nn.Module, tasks: tuple[TaskSpec, ...], split: Split, losses: dict, opt: torch.optim.Optimizer,
                weighting: Weighting, batch_size: int, rng: np.random.Generator,
                device: torch.device | str = "cpu", amp: bool = False,
                channels_last: bool = False, check_steps: int = 0, where: str = "",
                epoch: int = 0) -> tuple[np.ndarray, np.ndarray, float]:
    """One epoch of multi-task steps, the task losses turned into gradients by ``weighting`` (DWA's
    weighted sum Σ_k λ_k L_k by default; gradient methods take each task's gradient of the shared
    parameters through the model's boundary features).

    Returns each task's mean training loss (unweighted), the mean weight the weighting gave each
    task, and the seconds spent waiting for batches. Losses are summed on the device and read once
    per epoch: no per-step synchronisation. ``amp`` runs forward and loss under bfloat16 autocast
    (CPUs with AVX-512 BF16, GPUs; weights, optimiser and losses stay float32, no loss scaling is
    needed for bf16); ``channels_last`` feeds NHWC images. The gradients of the first
    ``check_steps`` steps are checked (:func:`check_gradients`).
    """
    device = torch.device(device)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)
    gradient = weighting.kind == "gradient" and len(tasks) > 1
    shared = net.shared_parameters() if gradient else []
    others = [p for p in net.parameters() if p.requires_grad and all(p is not s for s in shared)] if gradient else []
    sums = torch.zeros(len(tasks), device=device)
    weight_sums = torch.zeros(len(tasks))
    steps, waiting = 0, 0.0
    net.train()
    samples = weighting.samples if len(tasks) > 1 else 1
    bilevel = weighting.bilevel and len(tasks) > 1
    it = _draws(split, batch_size, samples, meta=bilevel, rng=rng, device=device, channels_last=channels_last)
    while True:
        t0 = time.perf_counter()
        group = next(it, None)
        waiting += time.perf_counter() - t0
        if group is None:
            break
        def one(batch, model: nn.Module = net) -> torch.Tensor:
            with autocast:
                out = model(batch["image"])
                return torch.stack([losses[t.name](out[t.name].float(), batch[t.name]) for t in tasks])

        def task_losses(group=group) -> torch.Tensor | list[torch.Tensor]:
            # [K]; for a sampled weighting a list of each batch's [K], unstacked: each its own graph, so that
            # a batch's Jacobian is one pass through that batch alone (SampledGradientWeighting.step)
            return one(group[0]) if samples == 1 else [one(b) for b in group]

        step_losses = task_losses()
        opt.zero_grad(set_to_none=True)
        if bilevel:  # the weights learnt from a look-ahead first (weighting/bilevel.py), then the update
            group_lr = opt.param_groups[0]
            weighting.meta_step(LookAhead(net, step_losses, lambda model, batch: one(batch, model), group[0],
                                          group[1], float(group_lr["lr"]), float(group_lr["weight_decay"])))
        weight_sums += weighting.step(step_losses, shared, others).cpu()
        values = step_losses.detach() if samples == 1 else torch.stack([row.detach() for row in step_losses])
        if steps < check_steps:
            finite = torch.isfinite(values).reshape(-1, len(tasks)).all(0).cpu().numpy()
            if not finite.all():  # a non-finite loss explains its gradients: name it first
                k = int(np.argmin(finite))
                raise NonFiniteLoss(f"{where}: training loss of task {tasks[k].name!r} is "
                                    f"{float(values.reshape(-1, len(tasks))[:, k].sum())} in epoch "
                                    f"{epoch} (step {steps}, "
                                    f"{precision_label(amp)} on {device})")
            check_gradients(net, where, epoch, steps, amp, device)
        opt.step()
        weighting.after_step(task_losses)  # FAMO re-evaluates the batch; the others ignore it
        sums += values if samples == 1 else values.mean(0)
        steps += 1
    return (sums / max(steps, 1)).cpu().numpy(), (weight_sums / max(steps, 1)).numpy(), waiting


def _draws(split: Split, batch_size: int, samples: int, meta: bool = False,
           **kw) -> Iterator[list[dict[str, torch.Tensor]]]:
    """The epoch's steps, each a list of ``samples`` shuffled batches. One sample: one pass over the split.
    More (MoDo, SDMGrad): as many steps as one pass has batches, each drawing ``samples`` batches from
    passes that follow one another (each reshuffled) -- LibMTL's trainer draws its 3 batches per step from
    its cycling loader alike: the same number of optimiser steps as every other method, 3x the batches.
    ``meta`` (a bilevel weighting): one pass, each step's batch with the batch at the same place of a second,
    independently shuffled pass (the authors' second loader over the training set)."""
    if meta:
        yield from (list(pair) for pair in zip(batches(split, batch_size, shuffle=True, drop_last=True, **kw),
                                              batches(split, batch_size, shuffle=True, drop_last=True, **kw)))
        return
    if samples == 1:
        for batch in batches(split, batch_size, shuffle=True, drop_last=True, **kw):
            yield [batch]
        return
    steps = batch_count(len(split), batch_size, drop_last=True)

    def cycle():
        while True:
            yield from batches(split, batch_size, shuffle=True, drop_last=True, **kw)
    stream = cycle()
    for _ in range(steps):
        yield [next(stream) for _ in range(samples)]


RECALIBRATION_STREAM = 0xB2  # the recalibration generator's own stream: never the training generator


def recalibration_rng(seed: int, epoch: int) -> np.random.Generator:
    """The generator of an epoch's recalibration batches: a function of (seed, epoch) alone, so the
    training batch order is untouched and a resumed cell draws the same batches."""
    return np.random.default_rng([seed, epoch, RECALIBRATION_STREAM])


def recalibrate_batchnorm(net: nn.Module, split: Split, batch_size: int, max_batches: int,
                          device: torch.device | str = "cpu", channels_last: bool = False,
                          rng: np.random.Generator | None = None) -> None:
    """Re-estimate every BatchNorm's running statistics for the current weights ("precise BN"):
    a cumulative average over ``max_batches`` batches drawn *shuffled from the whole training split*
    (``rng``: :func:`recalibration_rng`), no gradients.

    After a few hundred steps at a high learning rate the running averages (momentum 0.1) lag the
    weights; evaluation then sees statistics of older weights. Measured on the quick profile
    (Prostate CTAN, seed 0): test dice 40.2 % and dose MAE 29.6 Gy with the running averages,
    69.1 % and 3.7 Gy after recalibration, for the same weights.

    The batches must be shuffled: real splits are sorted (OpenKBP by patient and slice), and the
    first batches in file order are a few patients' neighbouring slices, whose variance is a
    within-patient variance; in eval mode that error multiplies through the encoder (CTAN's
    validation dose MAE on the OpenKBP sample: 485 Gy from the first 8 batches, 1.44 Gy from 8
    shuffled ones; docs/reproduction.md, "precise BN").
    """
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms or max_batches <= 0:
        return
    rng = rng if rng is not None else np.random.default_rng(RECALIBRATION_STREAM)
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    was_training = net.training
    net.train()
    with torch.no_grad():
        for k, batch in enumerate(batches(split, batch_size, shuffle=True, rng=rng, device=device,
                                          channels_last=channels_last)):
            if k >= max_batches:
                break
            net(batch["image"])
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    net.train(was_training)


def train_network(net: nn.Module, tasks: tuple[TaskSpec, ...], data: TaskData, settings: TrainSettings,
                  on_epoch: Callable[[EpochEnd], None] | None = None,
                  checkpoints: Checkpoints | None = None) -> TrainResult:
    """Train ``net`` on ``tasks`` as ``settings`` say (``profile.epochs`` epochs) and restore its best
    validation state.

    Model selection: the epoch with the lowest :func:`selection_score` (the paper selects on the
    validation split without saying how; see docs/reproduction.md). With ``checkpoints`` the
    training state is saved as it goes and a saved state is resumed: the result equals an
    uninterrupted run's (``benchmark/training/checkpoint.py``).
    """
    profile, batch_size, seed = settings.profile, settings.batch_size, settings.seed
    device = torch.device(settings.device)
    net.to(device, memory_format=torch.channels_last) if profile.channels_last else net.to(device)
    losses = {t.name: make_loss(t) for t in tasks}
    weighter = build_weighting(settings.weighting, len(tasks)).to(device)
    opt = make_optimizer(net, profile, weighter.learnable())
    rng = np.random.default_rng(seed)
    train, val = data.splits["train"], data.splits["val"]
    reference = trivial_losses(tasks, train, val, losses, batch_size)
    best = Selection()
    first_train: np.ndarray | None = None
    first_val: np.ndarray | None = None
    rows: list[dict] = []
    resumed = checkpoints.resume() if checkpoints is not None else None
    if resumed is not None:
        net.load_state_dict(resumed["model"])
        opt.load_state_dict(resumed["optimizer"])
        weighter.load_state_dict(resumed["weighting"])
        rng.bit_generator.state = resumed["rng"]
        torch.set_rng_state(resumed["torch_rng"])
        first_train = np.asarray(resumed["first_train"], np.float32)
        first_val = np.asarray(resumed["first_val"], np.float64)
        rows = resumed["rows"]
        best = Selection(resumed["best_score"], resumed["best_epoch"], checkpoints.selected()["model"], resumed["best_val"])
    start_epoch = resumed["epoch"] + 1 if resumed is not None else 0
    if resumed is not None:   # said, never silent: the numbers equal an uninterrupted run's
        print(f"[resume] {checkpoints.folder}: resuming at epoch {start_epoch} of {profile.epochs} "
              f"from its last checkpoint", flush=True)
    changed = False  # the selected weights changed since the last checkpoint

    def training_state(epoch: int) -> dict:
        return {"epoch": epoch, "model": net.state_dict(), "optimizer": opt.state_dict(),
                "weighting": weighter.state_dict(), "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                "first_train": first_train.tolist(), "first_val": first_val.tolist(), "rows": rows,
                "best_score": best.score, "best_epoch": best.epoch, "best_val": best.val}

    epochs = range(start_epoch, profile.epochs)
    if settings.progress:
        from tqdm.auto import tqdm
        epochs = tqdm(epochs, desc="  epochs", leave=False, disable=not sys.stderr.isatty())  # no \r in logs
    for epoch in epochs:
        start = time.perf_counter()
        weighter.start_epoch(epoch)
        if hasattr(net, "start_epoch"):          # a MultiTaskModel (LTB's schedule); a bare nn.Module has none
            net.start_epoch(epoch, profile.epochs)
        mean_losses, weights, _ = train_epoch(net, tasks, train, losses, opt, weighter, batch_size, rng, device,
                                              profile.amp, profile.channels_last,
                                              GRADIENT_CHECK_STEPS if epoch == start_epoch else 0,
                                              data.spec.name, epoch)
        first_train = mean_losses if first_train is None else first_train
        _check_losses(data.spec.name, epoch, tasks, "training", mean_losses, first_train, profile, batch_size)
        weighter.end_epoch(mean_losses)
        recalibrate_batchnorm(net, train, batch_size, profile.bn_recalibration_batches, device, profile.channels_last,
                              rng=recalibration_rng(seed, epoch))
        val_res = evaluate(net, tasks, val, batch_size, device, losses, profile.channels_last)
        val_losses = np.array([val_res[t.name]["loss"] for t in tasks])
        first_val = val_losses if first_val is None else first_val
        _check_losses(data.spec.name, epoch, tasks, "validation", val_losses, first_val, profile, batch_size)
        check_metrics(val_res, tasks, f"{data.spec.name}, validation after epoch {epoch}")
        score = selection_score(val_losses, reference)
        gap = eval_gap_warning(tasks, mean_losses, val_losses)
        if gap:  # evaluation looks broken, not the training: say so, never silently
            warnings.warn(f"{data.spec.name}, epoch {epoch}: {gap} (eval-mode statistics suspect; "
                          f"this epoch stays selectable)", stacklevel=2)
        if score < best.score:
            state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            best, changed = Selection(score, epoch, state, val_res), True
        seconds = time.perf_counter() - start
        if on_epoch is not None:
            on_epoch(EpochEnd(epoch, net, tasks, weights, mean_losses, val_res, score))
        for k, t in enumerate(tasks):
            rows.append({"epoch": epoch, "task": t.name, "train_loss": float(mean_losses[k]),
                         "loss_weight": float(weights[k]), "val_loss": val_res[t.name]["loss"],
                         "val_metric": t.metric, "val_value": val_res[t.name][t.metric],
                         "selection_rule": SELECTION_RULE, "selection_reference": float(reference[k]),
                         "selection_score": score, "selected": False, "seconds": seconds,
                         "warning": gap})
        if checkpoints is not None and epoch < profile.epochs - 1 and checkpoints.due():
            checkpoints.save(training_state(epoch), {"epoch": best.epoch, "model": best.state} if changed else None)
            changed = False
    best_epoch, state, best_val = best.epoch, best.state, best.val
    if state is None:
        raise NonFiniteLoss(f"{data.spec.name}: validation loss was never finite; no model to select")
    last = training_state(profile.epochs - 1) if checkpoints is not None and checkpoints.keep_last else {}
    net.load_state_dict(state)
    for row in rows:
        row["selected"] = row["epoch"] == best_epoch
    result = TrainResult(best_epoch, best_val, rows)
    if checkpoints is not None:
        checkpoints.finish({"epoch": best_epoch, "model": state}, dataclasses.asdict(result), last)
    return result
