"""Per-case results (``cases.csv``) and every set-level metric recomputed from them on weighted or
mixed cases: the basis of the report's intervals and tests (``benchmark.report.intervals``).

A metric of one cell and task is a :class:`CaseMetric`: its cases (sorted ids) and what it needs of
each, as arrays. ``evaluate(weights, data)`` gives the metric for a batch of R case weightings
(``weights [R, n]``: ones for the set value, bootstrap counts for a resample) and, for a
randomisation test, R per-replicate versions of the per-case data. The definitions are those of
``benchmark.training.metrics`` (tests check equality on every metric of a smoke grid):

- ``dice``: per case and foreground class (``part``); per class the mean over its cases, then the
  mean over classes;
- ``mae``, ``slice_dose_score``, ``dose_score``, ``dvh_score``: weighted means of per-case values (weights: pixels, 1, 1,
  the patient's number of DVH metrics);
- ``accuracy``, ``balanced_accuracy``, ``macro_f1``, ``auc``: from each image's label and logits;
- any other metric (a plug-in task kind's, ``benchmark.training.kinds``): the weighted mean of its
  per-case values, like ``mae`` -- the form a kind's per-case rows must take.

Imports no torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

class CasesError(ValueError):
    """A cases table that cannot give the metric asked for: the message says what is missing."""


def load_cases(path: Path | str) -> pd.DataFrame:
    """A ``cases.csv`` (the results folder's, a cell's or a reference's) with the types fixed."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    for col in ("seed",):
        df[col] = df[col].astype(int)
    for col in ("value", "weight"):
        df[col] = pd.to_numeric(df[col].replace("", "nan"))
    return df


@dataclass
class CaseMetric:
    """One metric of one cell's task on its cases; ``data`` holds per-case arrays whose first axis
    may carry replicates (``[R, n, ...]``) or not (``[1, n, ...]``)."""

    name: str
    cases: np.ndarray                 # [n] sorted case ids
    data: dict[str, np.ndarray]

    def evaluate(self, weights: np.ndarray | None = None, data: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """The metric for each of R weightings of the cases (``[R]``)."""
        data = self.data if data is None else data
        n = len(self.cases)
        w = np.ones((1, n)) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1, n)
        return _FROM_PREDICTIONS.get(self.name, _mean_type)(data, w)

    @property
    def value(self) -> float:
        return float(self.evaluate()[0])


def _mean_type(data, w):
    v, vw = data["value"], data["weight"]               # [1|R, n, P]; weight 0 where a part is missing
    num = np.einsum("rn,rnp->rp", w, np.broadcast_to(vw * np.nan_to_num(v), np.broadcast_shapes(vw.shape, (w.shape[0], 1, 1))))
    den = np.einsum("rn,rnp->rp", w, np.broadcast_to(vw, np.broadcast_shapes(vw.shape, (w.shape[0], 1, 1))))
    with np.errstate(invalid="ignore", divide="ignore"):
        per_part = np.where(den > 0, num / den, np.nan)
    ok = np.isfinite(per_part)
    out = np.where(ok, per_part, 0).sum(1) / np.maximum(ok.sum(1), 1)
    return np.where(ok.any(1), out, np.nan)


def _confusion(data, w):
    labels, logits = data["label"], data["logit"]       # [n], [1|R, n, K]
    k = logits.shape[-1]
    truth = np.eye(k)[labels]                            # [n, K]
    pred = np.eye(k)[logits.argmax(-1)]                  # [1|R, n, K]
    return np.einsum("rn,nk,rnl->rkl", w, truth, np.broadcast_to(pred, (w.shape[0], *pred.shape[1:])))


def _accuracy(data, w):
    conf = _confusion(data, w)
    return 100 * np.trace(conf, axis1=1, axis2=2) / conf.sum((1, 2))


def _balanced_accuracy(data, w):
    conf = _confusion(data, w)
    true = conf.sum(2)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.diagonal(conf, axis1=1, axis2=2) / true
    present = true > 0                                   # sklearn: mean recall over classes in y_true
    return 100 * np.where(present, recall, 0).sum(1) / np.maximum(present.sum(1), 1)


def _macro_f1(data, w):
    conf = _confusion(data, w)
    tp = np.diagonal(conf, axis1=1, axis2=2)
    denom = 2 * tp + (conf.sum(1) - tp) + (conf.sum(2) - tp)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(denom > 0, 2 * tp / denom, 0.0)     # sklearn's zero_division=0, every class counted
    return 100 * f1.mean(1)


def _auc(data, w):
    labels, scores = data["label"], data["logit"][..., 0]  # [n], [1|R, n]
    pos, neg = labels == 1, labels == 0
    if not pos.any() or not neg.any():
        return np.full(w.shape[0], np.nan)
    if scores.shape[0] == 1:  # fixed scores, weighted cases: the pairwise form
        s = scores[0]
        wins = (s[pos][:, None] > s[neg][None, :]) + 0.5 * (s[pos][:, None] == s[neg][None, :])
        num = np.einsum("rp,pq,rq->r", w[:, pos], wins, w[:, neg])
        return 100 * num / (w[:, pos].sum(1) * w[:, neg].sum(1))
    if not np.all(w == 1):
        raise CasesError("AUC of per-replicate scores needs unit case weights")
    from scipy.stats import rankdata  # per-replicate scores (randomisation test): the rank form
    ranks = rankdata(scores, axis=1)
    n_pos, n_neg = pos.sum(), neg.sum()
    return 100 * (ranks[:, pos].sum(1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


# recomputed from each image's label and logits; every other metric is a weighted mean (_mean_type)
_FROM_PREDICTIONS = {"accuracy": _accuracy, "balanced_accuracy": _balanced_accuracy, "macro_f1": _macro_f1,
                     "auc": _auc}


def case_metric(rows: pd.DataFrame, metric: str) -> CaseMetric:
    """The :class:`CaseMetric` of ``metric`` from one cell's rows of one task."""
    if metric not in _FROM_PREDICTIONS:     # the suite's mean-type metrics and every plug-in kind's
        sub = rows[rows["metric"] == metric]
        if sub.empty:
            raise CasesError(f"no per-case rows of {metric!r}")
        cases = np.array(sorted(sub["case"].unique()))
        parts = sorted(sub["part"].unique())
        value = np.full((1, len(cases), len(parts)), np.nan)
        weight = np.zeros((1, len(cases), len(parts)))
        i = np.searchsorted(cases, sub["case"].to_numpy())
        j = np.searchsorted(np.array(parts), sub["part"].to_numpy())
        value[0, i, j] = sub["value"].to_numpy(float)
        weight[0, i, j] = sub["weight"].to_numpy(float)
        return CaseMetric(metric, cases, {"value": value, "weight": weight})
    labels = rows[rows["metric"] == "label"]
    logits = rows[rows["metric"] == "logit"]
    if labels.empty or logits.empty:
        raise CasesError(f"{metric!r} needs each image's label and logits")
    cases = np.array(sorted(labels["case"]))
    if len(set(cases)) != len(cases):
        raise CasesError("an image is listed twice among the labels")
    k = logits["part"].astype(int).max() + 1
    logit = np.zeros((1, len(cases), k))
    logit[0, np.searchsorted(cases, logits["case"].to_numpy()), logits["part"].astype(int).to_numpy()] = \
        logits["value"].to_numpy(float)
    label = np.zeros(len(cases), np.int64)
    label[np.searchsorted(cases, labels["case"].to_numpy())] = labels["value"].to_numpy(float).astype(np.int64)
    return CaseMetric(metric, cases, {"label": label, "logit": logit})


def align(metric: CaseMetric, cases: np.ndarray) -> CaseMetric:
    """``metric`` on exactly ``cases`` (a paired comparison needs the same cases in the same order)."""
    if len(metric.cases) == len(cases) and np.array_equal(metric.cases, cases):
        return metric
    missing = np.setdiff1d(cases, metric.cases)
    if len(missing):
        raise CasesError(f"{metric.name}: case {missing[0]} has no result")
    idx = np.searchsorted(metric.cases, cases)
    data = {k: (v[idx] if v.ndim == 1 else v[:, idx]) for k, v in metric.data.items()}
    return CaseMetric(metric.name, np.asarray(cases), data)


def mix(a: CaseMetric, b: CaseMetric, swap: np.ndarray) -> dict[str, np.ndarray]:
    """Per-replicate data that takes case i from ``b`` where ``swap[r, i]`` and from ``a`` elsewhere
    (a paired randomisation test's relabelling; labels are the truth, never swapped)."""
    out = {}
    for k, va in a.data.items():
        if k == "label":
            out[k] = va
            continue
        vb = b.data[k]
        s = swap.reshape(swap.shape + (1,) * (va.ndim - 2))
        out[k] = np.where(s, vb, va)
    return out
