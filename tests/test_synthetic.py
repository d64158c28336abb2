"""Synthetic stand-ins (issue 3): deterministic, shaped like the real data, tasks related."""
from __future__ import annotations

import numpy as np
import pytest

from data import DATASETS
from data.base import SPLITS, DataError, Split


@pytest.mark.parametrize("name", list(DATASETS))
def test_deterministic_per_seed_and_shaped_by_the_spec(name):
    entry = DATASETS[name]
    a = entry.synthetic(3, 24, 8, 8, 32)
    b = entry.synthetic(3, 24, 8, 8, 32)
    c = entry.synthetic(4, 24, 8, 8, 32)
    assert a.source == "synthetic"
    assert a.counts() == {"train": 24, "val": 8, "test": 8}
    for split in SPLITS:
        np.testing.assert_array_equal(a.splits[split].image, b.splits[split].image)
        for t in entry.spec.tasks:
            np.testing.assert_array_equal(a.splits[split].targets[t.name], b.splits[split].targets[t.name])
    assert not np.array_equal(a.splits["train"].image, c.splits["train"].image)
    assert a.splits["train"].image.shape == (24, entry.spec.in_channels, 32, 32)
    assert a.splits["train"].image.dtype == np.float32
    # no case appears in two splits
    ids = [set(a.splits[s].case_id.tolist()) for s in SPLITS]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])


@pytest.mark.parametrize("name", [n for n, e in DATASETS.items() if any(t.mask for t in e.spec.tasks)])
def test_dose_lives_in_the_body_and_is_spared_in_organs(name):
    data = DATASETS[name].synthetic(0, 64, 4, 4, 48).splits["train"]
    dose = data.targets["dose"][:, 0]
    body = data.extras["dose_mask"]
    assert (dose[~body] == 0).all() and dose.max() > 50
    seg = data.targets["segmentation"]
    assert all((seg == k).any() for k in range(1, 5))
    # Organs at risk receive less than the target region: mean dose in organs < 60 % of the max.
    assert dose[seg > 0].mean() < 0.6 * dose.max()


def test_prostate_dose_peaks_between_bladder_and_rectum():
    data = DATASETS["prostate"].synthetic(0, 32, 4, 4, 48).splits["train"]
    seg, dose = data.targets["segmentation"], data.targets["dose"][:, 0]
    rows = np.arange(48)[:, None]
    for i in range(len(seg)):
        rectum_y = (rows * (seg[i] == 1)).sum() / (seg[i] == 1).sum()
        bladder_y = (rows * (seg[i] == 2)).sum() / (seg[i] == 2).sum()
        peak_y = np.unravel_index(dose[i].argmax(), dose[i].shape)[0]
        assert bladder_y < peak_y < rectum_y


def test_stoic_severe_cases_are_covid_positive_and_share_findings():
    data = DATASETS["stoic"].synthetic(0, 600, 4, 4, 32).splits["train"]
    covid, severe = data.targets["covid"], data.targets["severity"]
    assert (covid[severe == 1] == 1).all()
    assert 0.5 < covid.mean() < 0.7 and 0.05 < severe.mean() < 0.35
    # Findings raise lung density; severe cases show more of them than other positives.
    density = data.image.mean((1, 2, 3))
    assert density[severe == 1].mean() > density[(covid == 1) & (severe == 0)].mean()


def test_ham10000_diagnosis_depends_on_lesion_colour_and_every_class_occurs():
    data = DATASETS["ham10000"].synthetic(0, 700, 4, 4, 32).splits["train"]
    dx, mask = data.targets["diagnosis"], data.targets["segmentation"].astype(bool)
    assert set(dx.tolist()) == set(range(7))
    assert mask.reshape(len(mask), -1).any(1).all()
    brightness = np.array([data.image[i][:, mask[i]].mean() for i in range(len(dx))])
    mel, nv = 4, 5
    assert brightness[dx == mel].mean() < brightness[dx == nv].mean()


def test_validation_names_the_problem():
    spec = DATASETS["stoic"].spec
    good = DATASETS["stoic"].synthetic(0, 4, 2, 2, 16).splits["train"]
    bad = Split(good.image, {"covid": good.targets["covid"] + 5, "severity": good.targets["severity"]}, good.case_id)
    with pytest.raises(DataError, match="covid.*label"):
        bad.validate(spec, "fixture")
    nan = Split(good.image * np.nan, good.targets, good.case_id)
    with pytest.raises(DataError, match="NaN"):
        nan.validate(spec, "fixture")
    wrong = Split(good.image[:, :1], good.targets, good.case_id)
    with pytest.raises(DataError, match=r"\[N, 3, H, W\]"):
        wrong.validate(spec, "fixture")
