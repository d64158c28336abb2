"""Intervals and tests from per-case results (issue 23): fixed expected values on small inputs,
agreement with scipy.stats and scikit-learn where they compute the same thing, and properties."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from benchmark.report.cases import CaseMetric
from benchmark.report.intervals import compare, holm, relative_delta


def _mean_metric(values, name="mae", weights=None) -> CaseMetric:
    v = np.asarray(values, float)
    w = np.ones_like(v) if weights is None else np.asarray(weights, float)
    return CaseMetric(name, np.array([f"c{i:02d}" for i in range(len(v))]), {"value": v[None, :, None],
                                                                          "weight": w[None, :, None]})


def _class_metric(name, labels, logits) -> CaseMetric:
    logits = np.asarray(logits, float)
    logits = logits[:, None] if logits.ndim == 1 else logits
    return CaseMetric(name, np.array([f"c{i:02d}" for i in range(len(labels))]),
                      {"label": np.asarray(labels), "logit": logits[None]})


def test_holm_step_down_by_hand():
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, np.nan]), [0.03, 0.06, 0.06, np.nan])
    np.testing.assert_allclose(holm([0.5, 0.001]), [0.5, 0.002])


@pytest.mark.parametrize("name", ["accuracy", "balanced_accuracy", "macro_f1", "auc"])
def test_set_metrics_on_weighted_cases_equal_sklearn_with_sample_weights(name):
    rng = np.random.default_rng(1)
    k = 1 if name == "auc" else 4
    labels = rng.integers(0, 2 if k == 1 else k, 40)
    logits = rng.normal(size=(40, k)) + (np.eye(k)[labels] if k > 1 else labels[:, None] * 0.7)
    counts = rng.integers(0, 4, 40).astype(float)
    got = _class_metric(name, labels, logits).evaluate(counts[None])[0]
    pred = logits.argmax(1)
    expected = {"accuracy": lambda: skm.accuracy_score(labels, pred, sample_weight=counts),
                "balanced_accuracy": lambda: skm.balanced_accuracy_score(labels, pred, sample_weight=counts),
                "macro_f1": lambda: skm.f1_score(labels, pred, average="macro", labels=np.arange(k),
                                                 sample_weight=counts, zero_division=0),
                "auc": lambda: skm.roc_auc_score(labels, logits[:, 0], sample_weight=counts)}[name]()
    assert got == pytest.approx(100 * expected, rel=1e-10)


def test_auc_of_per_replicate_scores_equals_sklearn():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 30)
    scores = rng.normal(size=(5, 30))
    m = _class_metric("auc", labels, scores[0])
    got = m.evaluate(np.ones((5, 30)), {"label": labels, "logit": scores[:, :, None]})
    np.testing.assert_allclose(got, [100 * skm.roc_auc_score(labels, s) for s in scores], rtol=1e-12)


def test_dice_of_weighted_cases_is_the_class_mean_of_case_means():
    # 3 cases x 2 classes; case 2 lacks class 1 (no row: weight 0)
    m = CaseMetric("dice", np.array(["a", "b", "c"]),
                   {"value": np.array([[[80.0, 60.0], [70.0, 40.0], [90.0, np.nan]]]),
                    "weight": np.array([[[1, 1], [1, 1], [1, 0.0]]])})
    assert m.value == pytest.approx(((80 + 70 + 90) / 3 + (60 + 40) / 2) / 2)
    assert m.evaluate(np.array([[2.0, 0.0, 1.0]]))[0] == pytest.approx(((160 + 90) / 3 + 60) / 2)


def test_fixed_expected_values_on_a_small_hand_made_comparison():
    """Two seeds, eight cases, MAE (lower is better); numbers pinned from this implementation at
    RESAMPLES=400, SEED=0 (a change in the resampling scheme must show here)."""
    base = {0: [_mean_metric([1.0, 1.2, 0.9, 1.5, 1.1, 1.3, 0.8, 1.0])],
            1: [_mean_metric([1.1, 1.1, 1.0, 1.4, 1.2, 1.2, 0.9, 1.1])]}
    meth = {0: [_mean_metric([0.9, 1.0, 0.9, 1.2, 1.0, 1.2, 0.8, 0.9])],
            1: [_mean_metric([1.0, 1.1, 0.8, 1.3, 1.0, 1.1, 0.9, 1.0])]}
    c = compare(meth, base, [False], resamples=400, seed=0)
    expected_delta = relative_delta(np.mean([8.8, 9.0]) / 8, np.mean([7.9, 8.2]) / 8, False)
    assert c.delta_mean == pytest.approx(expected_delta) == pytest.approx(9.5505618, rel=1e-6)
    assert (round(c.delta_mean_ci[0], 4), round(c.delta_mean_ci[1], 4)) == PINNED_CI
    assert round(c.p, 4) == PINNED_P
    assert c.n_seeds == 2 and c.n_cases == 8 and c.mde == pytest.approx(2.8016 * c.se, rel=1e-4)


PINNED_CI = (5.3177, 13.3333)
PINNED_P = 0.0025   # 1 / (1 + 400): no relabelling is as extreme (every case improves or ties)


def test_bootstrap_p_is_below_005_exactly_when_the_interval_excludes_zero():
    from benchmark.report.intervals import bootstrap_p

    rng = np.random.default_rng(7)
    for shift in (-3.0, -1.5, -0.5, 0.0, 0.8, 2.5):
        r = rng.normal(shift, 1.0, 4000)
        lo, hi = np.percentile(r, [2.5, 97.5])
        assert (bootstrap_p(r) < 0.05) == (lo > 0 or hi < 0) or abs(min(abs(lo), abs(hi))) < 0.01
    assert bootstrap_p(np.zeros(10)) == 1.0 and bootstrap_p(np.ones(99)) == pytest.approx(0.01)


def test_bootstrap_interval_agrees_with_scipy_on_one_seed():
    rng = np.random.default_rng(3)
    b = rng.gamma(4, 0.5, 60)
    a = b * rng.normal(0.9, 0.1, 60)
    c = compare({0: [_mean_metric(a)]}, {0: [_mean_metric(b)]}, [False], resamples=20000, seed=1)
    ref = stats.bootstrap((a, b), lambda x, y: relative_delta(np.mean(y), np.mean(x), False), paired=True,
                          vectorized=False, n_resamples=20000, method="percentile", random_state=2)
    lo, hi = ref.confidence_interval
    width = hi - lo
    assert abs(c.delta_mean_ci[0] - lo) < 0.05 * width and abs(c.delta_mean_ci[1] - hi) < 0.05 * width


def test_randomisation_p_agrees_with_scipy_permutation_test_on_one_seed():
    rng = np.random.default_rng(4)
    b = rng.normal(10, 1, 25)
    a = b - rng.normal(0.25, 0.8, 25)        # a small, uncertain improvement
    c = compare({0: [_mean_metric(a)]}, {0: [_mean_metric(b)]}, [False], resamples=5000, seed=5)
    ref = stats.permutation_test((a, b), lambda x, y: relative_delta(np.mean(y), np.mean(x), False),
                                 permutation_type="samples", n_resamples=5000, random_state=6)
    assert 0.01 < ref.pvalue < 0.9
    assert c.p == pytest.approx(ref.pvalue, abs=0.03)


def test_properties_identical_methods_and_a_clear_win():
    rng = np.random.default_rng(5)
    base = {s: [_mean_metric(rng.gamma(4, 0.5, 30))] for s in range(3)}
    same = compare(base, base, [False], resamples=300)
    assert same.delta_mean == 0 and same.delta_mean_ci == (0.0, 0.0) and same.p == 1.0 and same.p_bootstrap == 1.0
    better = {s: [_mean_metric(base[s][0].data["value"][0, :, 0] * 0.8)] for s in range(3)}
    win = compare(better, base, [False], resamples=300)
    assert win.delta_mean == pytest.approx(20.0) and win.delta_mean_ci[0] > 0 and win.p < 0.01
    assert win.p_bootstrap == pytest.approx(1 / 301)
    worse_is_negative = compare(base, better, [False], resamples=300)
    assert worse_is_negative.delta_mean < 0 and worse_is_negative.delta_mean_ci[1] < 0
    # scale: Δ is relative, so multiplying every value by 3 changes nothing
    scaled = compare({s: [_mean_metric(3 * better[s][0].data["value"][0, :, 0])] for s in range(3)},
                     {s: [_mean_metric(3 * base[s][0].data["value"][0, :, 0])] for s in range(3)}, [False], 300)
    assert scaled.delta_mean == pytest.approx(win.delta_mean) and scaled.delta_mean_ci == pytest.approx(win.delta_mean_ci)


def test_seeds_needed_from_the_variance_split():
    from benchmark.report.intervals import Comparison
    c = Comparison([1.0], 1.0, [(0, 2)], (0, 2), [0.5], 0.5, 0.5, [0.5], se=1.0, se_seeds=0.9, se_cases=0.4, n_seeds=3,
                   n_cases=50, resamples=100)
    # 2.8·sqrt(0.81·3/n + 0.16) <= 2  ->  n >= 0.81·3 / ((2/2.8)^2 - 0.16)
    assert c.seeds_needed(2.0) == math.ceil(0.81 * 3 / ((2 / 2.8016) ** 2 - 0.16)) or \
        c.seeds_needed(2.0) == math.ceil(0.81 * 3 / ((2 / 2.80158) ** 2 - 0.16))
    assert c.seeds_needed(1.0) == math.inf           # the case part alone (2.8·0.4 = 1.12) exceeds it
    assert c.mde == pytest.approx(2.80158, rel=1e-4)


def _stoic_run(folder):
    """A small results folder: STOIC's two AUC tasks, STL and HPS, 2 seeds, 30 test CTs each, with
    metrics.csv consistent with cases.csv and a cell.json per cell."""
    import json

    import pandas as pd

    from benchmark.report.cases import case_metric

    rng = np.random.default_rng(0)
    labels = {t: rng.integers(0, 2, 30) for t in ("covid", "severity")}
    metrics, cases = [], []
    for method, weighting, gain in (("stl", "none", 0.0), ("hps", "dwa", 0.8)):
        for seed in (0, 1):
            for k, task in enumerate(("covid", "severity"), start=1):
                y = labels[task]
                logit = y * (0.5 + gain) + rng.normal(size=30)
                rows = [{"case": f"ct{i:02d}", "metric": "label", "part": "", "value": float(y[i]), "weight": 1.0}
                        for i in range(30)]
                rows += [{"case": f"ct{i:02d}", "metric": "logit", "part": "0", "value": float(logit[i]), "weight": 1.0}
                         for i in range(30)]
                keys = dict(dataset="stoic", method=method, weighting=weighting, seed=seed, data_source="synthetic",
                            profile="quick")
                cases += [{**keys, "split": "test", "task": task, **r} for r in rows]
                auc = case_metric(pd.DataFrame(rows), "auc").value
                metrics.append({**keys, "task": task, "task_index": k, "metric": "auc", "value": auc,
                                "higher_is_better": True, "primary": True, "split": "test", "image_size": 48})
            cell = folder / "runs" / "quick-synthetic" / "stoic" / method / weighting / f"seed{seed}"
            cell.mkdir(parents=True)
            (cell / "cell.json").write_text(json.dumps({"config": {"seed": seed, "profile": {"name": "quick"}},
                                                        "config_hash": "x", "wall_seconds": 1.0}))
    pd.DataFrame(metrics).to_csv(folder / "metrics.csv", index=False)
    pd.DataFrame(cases).to_csv(folder / "cases.csv", index=False)


def test_a_reference_keeps_its_cases_and_its_report_has_intervals(tmp_path, monkeypatch):
    import gzip

    import benchmark.report.reference as R
    from benchmark.report.write import write_report

    _stoic_run(tmp_path / "run")
    monkeypatch.setattr(R, "REFERENCE_DIR", tmp_path / "refs")
    out = R.make_reference(tmp_path / "run", "tiny", "python reproduce.py ...", 1.0)
    assert gzip.decompress((out / "cases.csv.gz").read_bytes()) == (tmp_path / "run" / "cases.csv").read_bytes()
    first = (out / "cases.csv.gz").read_bytes()
    R.make_reference(tmp_path / "run", "tiny", "python reproduce.py ...", 1.0)
    assert (out / "cases.csv.gz").read_bytes() == first                  # reproducible bytes (gzip mtime 0)
    written = {p.name for p in write_report(out / "metrics.csv", tmp_path / "report", plots=False)}
    assert {"intervals.csv", "intervals.md", "intervals.tex"} <= written
    import pandas as pd
    iv = pd.read_csv(tmp_path / "report" / "intervals.csv")
    assert list(iv.method) == ["hps"] and iv.delta_mean.iloc[0] > 0 and iv.n_cases.iloc[0] == 30


def test_a_grid_committed_in_parts_is_the_reference_of_the_whole(tmp_path, monkeypatch):
    """A run's datasets committed one part at a time (--dataset, then --append) make the same metrics and
    cases as the whole run at once; the provenance lists both parts; a cell added twice, an unknown
    dataset and another profile are errors naming them."""
    import gzip
    import io
    import json
    import shutil

    import pandas as pd

    import benchmark.report.reference as R
    from benchmark.report.inputs import ReportInputError

    run = tmp_path / "run"
    _stoic_run(run)
    for name in ("metrics.csv", "cases.csv"):            # a second dataset: the same rows under another name
        df = pd.read_csv(run / name, dtype=str, keep_default_na=False)
        pd.concat([df, df.assign(dataset="ham10000")]).to_csv(run / name, index=False)
    shutil.copytree(run / "runs" / "quick-synthetic" / "stoic", run / "runs" / "quick-synthetic" / "ham10000")
    for path in (run / "runs").rglob("cell.json"):
        meta = json.loads(path.read_text())
        meta["config"]["dataset"] = path.relative_to(run / "runs" / "quick-synthetic").parts[0]
        path.write_text(json.dumps(meta))
    monkeypatch.setattr(R, "REFERENCE_DIR", tmp_path / "refs")

    whole = R.make_reference(run, "whole", "python reproduce.py ...", 30.0)
    part = R.make_reference(run, "parts", "python reproduce.py --dataset stoic ...", 10.0, datasets=["stoic"])
    assert set(pd.read_csv(part / "metrics.csv")["dataset"]) == {"stoic"}
    assert len(json.loads((part / "provenance.json").read_text())["per_cell"]) == 4
    R.make_reference(run, "parts", "python reproduce.py --dataset ham10000 ...", 20.0, datasets=["ham10000"],
                     append=True)

    def table(folder, name):
        raw = (folder / name).read_bytes()
        # as written, every field a string (as benchmark.report.cases reads them): a label row's empty
        # part beside a logit's "0" must not come back as "0.0", which no classification metric can read
        df = pd.read_csv(io.BytesIO(gzip.decompress(raw) if name.endswith(".gz") else raw), dtype=str,
                         keep_default_na=False)
        return df.sort_values(list(df.columns)).reset_index(drop=True)
    for name in ("metrics.csv", "cases.csv.gz"):
        pd.testing.assert_frame_equal(table(part, name), table(whole, name))
    from benchmark.report.write import write_report
    for folder in (part, whole):        # and the parts' report has the whole's intervals
        write_report(folder / "metrics.csv", tmp_path / f"report-{folder.name}", plots=False)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "report-parts" / "intervals.csv"),
                                  pd.read_csv(tmp_path / "report-whole" / "intervals.csv"))
    prov = json.loads((part / "provenance.json").read_text())
    assert prov["cells"] == 8 and prov["elapsed_seconds"] == 30.0 and len(prov["parts"]) == 2
    assert [p["datasets"] for p in prov["parts"]] == [["stoic"], ["ham10000"]]
    assert prov["datasets"] == ["ham10000", "stoic"]

    with pytest.raises(ReportInputError, match="already in reference 'parts'"):
        R.make_reference(run, "parts", "again", 1.0, datasets=["ham10000"], append=True)
    with pytest.raises(ReportInputError, match=r"dataset\(s\) \['nosuch'\]"):
        R.make_reference(run, "other", "x", 1.0, datasets=["nosuch"])
    with pytest.raises(ReportInputError, match="no reference 'absent'"):
        R.make_reference(run, "absent", "x", 1.0, append=True)
    for path in (run / "runs").rglob("cell.json"):
        meta = json.loads(path.read_text())
        meta["config"]["profile"] = {"name": "public"}
        path.write_text(json.dumps(meta))
    shutil.rmtree(tmp_path / "refs" / "parts")
    R.make_reference(run, "parts", "x", 1.0, datasets=["stoic"])
    prov = json.loads((tmp_path / "refs" / "parts" / "provenance.json").read_text())
    prov["profile"] = {"name": "quick"}
    (tmp_path / "refs" / "parts" / "provenance.json").write_text(json.dumps(prov))
    with pytest.raises(ReportInputError, match="another profile"):
        R.make_reference(run, "parts", "x", 1.0, datasets=["ham10000"], append=True)
