"""Table 2 on public data (issue 25): the paper's row of the same kind, the verdict rule, and the table
rendered from the committed references."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from benchmark.report import public as PUB
from benchmark.report.reference import REFERENCE_DIR


def test_each_public_row_is_set_beside_the_paper_row_of_its_kind():
    assert {d: PUB.paper_row_of(d) for d in ("ph2", "busi", "ph2_criteria", "openkbp", "stoic")} == \
           {"ph2": "ham10000", "busi": "ham10000", "ph2_criteria": "stoic", "openkbp": "openkbp", "stoic": "stoic"}


@pytest.mark.parametrize("paper,low,high,expected", [
    (1.99, 0.5, 3.0, "supports"), (1.99, -3.0, -0.5, "contradicts"), (-6.29, -9.0, -1.0, "supports"),
    (-6.29, 0.2, 4.0, "contradicts"), (1.99, -1.0, 2.0, "cannot decide (smallest detectable effect 7.7 %)"),
    (np.nan, 0.5, 3.0, "cannot decide (no interval)")])
def test_the_verdict_follows_the_interval_and_the_papers_sign(paper, low, high, expected):
    assert PUB.verdict(paper, low, high, 7.7) == expected


def test_an_interval_off_zero_decides_only_after_holms_correction():
    """BUSI's CTAN: Δ_mean [-5.44, -0.16], p 0.039 alone, p_Holm 0.117 over the row's three methods."""
    assert PUB.verdict(8.79, -5.44, -0.16, 3.5, p_holm=0.117) == (
        "cannot decide (the interval excludes 0 on the other side, but not after Holm's correction: p_Holm 0.12)")
    assert PUB.verdict(8.79, -5.44, -0.16, 3.5, p_holm=0.01) == "contradicts"
    assert PUB.verdict(8.79, 0.5, 3.0, 3.5, p_holm=0.2).startswith("cannot decide (the interval excludes 0 on the paper's side")


def test_the_public_table_renders_the_committed_openkbp_row_with_its_intervals(tmp_path):
    files = PUB.write_public(tmp_path)
    table = pd.read_csv(tmp_path / "public.csv")
    kbp = table[table["dataset"] == "openkbp"].set_index("method")
    assert list(kbp.index) == ["stl", "hps", "mtan", "ctan"] and (kbp["n_seeds"] == 3).all()
    assert kbp.loc["ctan", "delta_mean"] == pytest.approx(-0.12, abs=0.01)
    assert kbp.loc["ctan", "delta_mean_ci_low"] < 0 < kbp.loc["ctan", "delta_mean_ci_high"]
    assert kbp.loc["ctan", "paper_delta_mean"] == pytest.approx(1.99)
    assert kbp.loc["ctan", "verdict"].startswith("cannot decide")
    md = (tmp_path / "public.md").read_text()
    assert "| OpenKBP (OpenKBP) | CTAN | 3 × 1 |" in md and "paper's OpenKBP kind" in md
    for name in PUB.REAL_ROWS:
        if not (REFERENCE_DIR / name / "metrics.csv").is_file():
            assert f"- {name}: no committed evidence run yet." in md
    assert r"\label{tab:public}" in (tmp_path / "public.tex").read_text() and len(files) == 3


def test_a_cross_validated_rows_cases_are_drawn_within_their_fold():
    from benchmark.report.cases import CasesError
    from benchmark.report.intervals import _case_counts, fold_of_case
    universe = np.array([f"c{i}" for i in range(10)])
    strata = {c: i % 3 for i, c in enumerate(universe)}      # folds of 4, 3, 3 cases
    counts = _case_counts(np.random.default_rng(0), universe, strata, 200)
    for fold, size in ((0, 4), (1, 3), (2, 3)):
        cols = [i for i, c in enumerate(universe) if strata[c] == fold]
        assert (counts[:, cols].sum(1) == size).all()
    assert counts.std(0).min() > 0                          # every case is resampled, none fixed
    cases = pd.DataFrame({"case": ["a", "b", "a"], "fold": ["0", "1", "0"]})
    assert fold_of_case(cases) == {"a": "0", "b": "1"}
    assert fold_of_case(pd.DataFrame({"case": ["a"], "fold": [""]})) is None
    with pytest.raises(CasesError, match="'a' is tested in more than one fold"):
        fold_of_case(pd.DataFrame({"case": ["a", "a"], "fold": ["0", "2"]}))


def _cv_run(folder, gain=1.5):
    """A cross-validated results folder: PH2 criteria's two 3-class tasks, the four methods, 2 seeds x 5
    folds of 6 test images (every image tested once per seed), metrics consistent with cases."""
    import json

    from benchmark.report.cases import case_metric
    rng = np.random.default_rng(1)
    images = [f"IMD{i:03d}" for i in range(30)]
    labels = {t: rng.integers(0, 3, 30) for t in ("diagnosis", "asymmetry")}
    metrics, cases = [], []
    for method, weighting in (("stl", "none"), ("hps", "dwa"), ("mtan", "dwa"), ("ctan", "dwa")):
        for seed in (0, 1):
            for fold in range(5):
                idx = range(fold * 6, fold * 6 + 6)
                keys = dict(dataset="ph2_criteria", method=method, weighting=weighting, seed=seed, fold=fold,
                            data_source="real", profile="public")
                for k, task in enumerate(("diagnosis", "asymmetry"), start=1):
                    y = labels[task]
                    rows = []
                    for i in idx:
                        logit = rng.normal(size=3)
                        logit[y[i]] += gain * (method == "ctan") + 0.3
                        rows += [{"case": images[i], "metric": "label", "part": "", "value": float(y[i]), "weight": 1.0}]
                        rows += [{"case": images[i], "metric": "logit", "part": str(c), "value": float(logit[c]),
                                  "weight": 1.0} for c in range(3)]
                    cases += [{**keys, "split": "test", "task": task, **r} for r in rows]
                    metrics.append({**keys, "task": task, "task_index": k, "metric": "accuracy",
                                    "value": case_metric(pd.DataFrame(rows), "accuracy").value,
                                    "higher_is_better": True, "primary": True, "split": "test", "image_size": 64})
                cell = folder / "runs" / "public-real" / "ph2_criteria" / method / weighting / f"seed{seed}-fold{fold}"
                cell.mkdir(parents=True)
                (cell / "cell.json").write_text(json.dumps({"config": {"seed": seed, "fold": fold,
                                                                       "profile": {"name": "public"}},
                                                            "config_hash": "x", "wall_seconds": 1.0}))
    pd.DataFrame(metrics).to_csv(folder / "metrics.csv", index=False)
    pd.DataFrame(cases).to_csv(folder / "cases.csv", index=False)


def test_a_cross_validated_reference_keeps_its_folds_and_gets_a_verdict(tmp_path, monkeypatch):
    import json

    import benchmark.report.reference as R
    _cv_run(tmp_path / "run")
    monkeypatch.setattr(R, "REFERENCE_DIR", tmp_path / "refs")
    out = R.make_reference(tmp_path / "run", "ph2_criteria-public", "python reproduce.py --public ...", 1.0)
    kept = pd.read_csv(out / "metrics.csv")
    assert sorted(kept["fold"].unique()) == [0, 1, 2, 3, 4] and len(kept) == 4 * 2 * 5 * 2
    assert {c["fold"] for c in json.loads((out / "provenance.json").read_text())["per_cell"]} == {0, 1, 2, 3, 4}
    table = PUB.public_table(["ph2_criteria-public"], tmp_path / "refs").set_index("method")
    assert table.loc["ctan", "paper_dataset"] == "stoic" and table.loc["ctan", "n_folds"] == 5
    assert table.loc["ctan", "n_seeds"] == 2 and table.loc["ctan", "n_cases"] == 30
    assert table.loc["ctan", "delta_mean_ci_low"] > 0                 # a large built-in gain is detected
    assert table.loc["ctan", "verdict"] == "supports"                 # the paper's STOIC CTAN Δ_mean is positive
    seed_means = kept[(kept["method"] == "stl") & (kept["task"] == "diagnosis")].groupby("seed")["value"].mean()
    assert table.loc["stl", "task1_mean"] == pytest.approx(seed_means.mean())   # a seed = the mean of its folds


def test_the_committed_ph2_row_is_cross_validated_over_every_image(tmp_path):
    if not (REFERENCE_DIR / "ph2-public" / "metrics.csv").is_file():
        pytest.skip("no committed ph2-public reference")
    table = PUB.public_table(["ph2-public"]).set_index("method")
    assert list(table.index) == ["stl", "hps", "mtan", "ctan"] and (table["paper_dataset"] == "ham10000").all()
    assert (table["n_folds"] == 5).all() and (table.loc[["hps", "mtan", "ctan"], "n_cases"] == 200).all()
    assert (table.loc[["hps", "mtan", "ctan"], "delta_mean_ci_low"] < 0).all()      # as docs/reproduction.md says
