"""Metrics (Sec. 2.3) and losses (Table 1) against hand computations and references (DWA: test_weightings)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import f1_score, roc_auc_score

from benchmark.training import metrics as M
from benchmark.training.evaluation import evaluate
from benchmark.training.losses import make_loss
from data import DATASETS
from data.base import Split


def test_dice_per_case_then_class_matches_hand_computation():
    # two cases, two foreground classes; case 1 lacks class 2 in prediction and truth (skipped).
    inter = np.array([[3, 1], [2, 0]])
    pred = np.array([[4, 2], [2, 0]])
    true = np.array([[5, 2], [4, 0]])
    d11, d12, d21 = 2 * 3 / 9, 2 * 1 / 4, 2 * 2 / 6
    expected = 100 * np.mean([np.mean([d11, d21]), d12])
    assert M.dice(inter, pred, true, np.array([0, 1])) == pytest.approx(expected)


def test_dice_pools_the_slices_of_a_case_and_equals_f1_for_one_class():
    rng = np.random.default_rng(0)
    p, t = rng.random((3, 50)) < 0.4, rng.random((3, 50)) < 0.5   # three slices of one patient
    inter, ps, ts = (p & t).sum(1)[:, None], p.sum(1)[:, None], t.sum(1)[:, None]
    assert M.dice(inter, ps, ts, np.zeros(3)) == pytest.approx(100 * f1_score(t.ravel(), p.ravel()))


def test_mae_and_dose_score():
    err = np.array([10.0, 20.0, 30.0])
    pixels = np.array([10.0, 10.0, 10.0])
    assert M.mae(err, pixels) == pytest.approx(2.0)
    masked, mask = np.array([4.0, 6.0, 9.0]), np.array([2.0, 2.0, 3.0])
    # cases: samples 0 and 1 are one patient (10 / 4), sample 2 another (9 / 3)
    assert M.slice_dose_score(masked, mask, np.array(["a", "a", "b"])) == pytest.approx((2.5 + 3.0) / 2)


def test_classification_metrics_by_hand():
    labels = np.array([0, 0, 0, 1, 2, 2])
    logits = np.eye(3)[[0, 0, 1, 1, 2, 0]]
    assert M.accuracy(labels, logits) == pytest.approx(100 * 4 / 6)
    assert M.balanced_accuracy(labels, logits) == pytest.approx(100 * (2 / 3 + 1 + 1 / 2) / 3)
    f1 = [2 * (2 / 3) * (2 / 3) / (4 / 3), 2 * 0.5 * 1 / 1.5, 2 * 1 * 0.5 / 1.5]  # per class P, R -> F1
    assert M.macro_f1(labels, logits) == pytest.approx(100 * np.mean(f1))


def test_auc_is_the_probability_a_positive_outscores_a_negative():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 40)
    scores = rng.normal(size=40) + labels
    pos, neg = scores[labels == 1], scores[labels == 0]
    by_hand = np.mean([(p > n) + 0.5 * (p == n) for p in pos for n in neg])
    assert M.auc(labels, scores[:, None]) == pytest.approx(100 * by_hand)
    assert M.auc(labels, scores[:, None]) == pytest.approx(100 * roc_auc_score(labels, scores))
    assert np.isnan(M.auc(np.ones(5, int), scores[:5, None]))


def test_combo_loss_is_03_dice_plus_07_cross_entropy():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 4)
    target = torch.randint(0, 3, (2, 4, 4))
    prob = logits.softmax(1)
    onehot = F.one_hot(target, 3).permute(0, 3, 1, 2).float()
    dice_terms = []
    for c in (1, 2):  # foreground classes, pooled over the batch
        inter = (prob[:, c] * onehot[:, c]).sum()
        denom = prob[:, c].sum() + onehot[:, c].sum()
        dice_terms.append(1 - (2 * inter + 1e-5) / (denom + 1e-5))
    expected = 0.3 * torch.stack(dice_terms).mean() + 0.7 * F.cross_entropy(logits, target)
    seg = DATASETS["prostate"].spec.task("segmentation")
    torch.testing.assert_close(make_loss(seg)(logits, target), expected)


def test_regression_and_classification_losses():
    dose = DATASETS["openkbp"].spec.task("dose")
    pred, target = torch.full((1, 1, 2, 2), 0.5), torch.full((1, 1, 2, 2), 0.25 * dose.scale)
    torch.testing.assert_close(make_loss(dose)(pred, target), torch.tensor(0.25))
    covid = DATASETS["stoic"].spec.task("covid")
    logit, y = torch.tensor([[0.3], [-1.0]]), torch.tensor([1, 0])
    expected = -(torch.log(torch.sigmoid(torch.tensor(0.3))) + torch.log(1 - torch.sigmoid(torch.tensor(-1.0)))) / 2
    torch.testing.assert_close(make_loss(covid)(logit, y), expected)
    dx = DATASETS["ham10000"].spec.task("diagnosis")
    logits = torch.randn(3, 7)
    torch.testing.assert_close(make_loss(dx)(logits, torch.tensor([0, 5, 6])),
                               -logits.log_softmax(1)[[0, 1, 2], [0, 5, 6]].mean())


class _Fixed(torch.nn.Module):
    """Returns pre-set predictions for a split, batch by batch (for evaluate())."""

    def __init__(self, outputs):
        super().__init__()
        self.outputs, self.pos = outputs, 0

    def forward(self, x):
        n = len(x)
        out = {k: v[self.pos:self.pos + n] for k, v in self.outputs.items()}
        self.pos += n
        return out


def test_evaluate_agrees_with_metrics_on_whole_arrays():
    spec = DATASETS["openkbp"].spec
    rng = np.random.default_rng(2)
    n, s = 6, 8
    seg_true = rng.integers(0, 5, (n, s, s))
    seg_logits = torch.from_numpy(rng.normal(size=(n, 5, s, s)).astype(np.float32))
    dose_true = rng.uniform(0, 70, (n, 1, s, s)).astype(np.float32)
    dose_pred = torch.from_numpy(rng.uniform(0, 1, (n, 1, s, s)).astype(np.float32))
    mask = rng.random((n, s, s)) < 0.5
    split = Split(np.zeros((n, 1, s, s), np.float32), {"segmentation": seg_true, "dose": dose_true},
                  np.array([0, 0, 0, 1, 1, 1]), {"dose_mask": mask})
    res = evaluate(_Fixed({"segmentation": seg_logits, "dose": dose_pred}), spec.tasks, split, batch_size=4)
    pred = seg_logits.argmax(1).numpy()
    per_class = []
    for c in range(1, 5):
        dices = []
        for case in (0, 1):
            sl = slice(3 * case, 3 * case + 3)
            p, t = pred[sl] == c, seg_true[sl] == c
            if p.sum() + t.sum():
                dices.append(2 * (p & t).sum() / (p.sum() + t.sum()))
        per_class.append(np.mean(dices))
    assert res["segmentation"]["dice"] == pytest.approx(100 * np.mean(per_class))
    err = np.abs(dose_pred.numpy() * 70 - dose_true)[:, 0]
    assert res["dose"]["mae"] == pytest.approx(err.mean(), rel=1e-5)
    per_case = [err[3 * c:3 * c + 3][mask[3 * c:3 * c + 3]].mean() for c in (0, 1)]
    assert res["dose"]["slice_dose_score"] == pytest.approx(np.mean(per_case), rel=1e-5)
