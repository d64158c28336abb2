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
