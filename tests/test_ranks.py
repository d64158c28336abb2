"""Average ranks, Friedman and the Nemenyi critical difference over datasets (issue 23)."""
from __future__ import annotations

import math

import pandas as pd
import pytest
from scipy import stats

from benchmark.report.ranks import friedman_nemenyi, nemenyi_q, plot_cd


def test_nemenyi_q_matches_demsars_table():
    # Demšar (2006), Table 5(a), alpha = 0.05
    for k, q in {2: 1.960, 3: 2.343, 4: 2.569, 5: 2.728, 6: 2.850, 10: 3.164}.items():
        assert nemenyi_q(k) == pytest.approx(q, abs=2e-3)


def test_ranks_friedman_and_cd_on_a_small_table(tmp_path):
    scores = pd.DataFrame({"stl": [0, 0, 0, 0], "hps": [1.5, -0.1, 2.0, 0.5], "mtan": [-7.6, -6.3, -1.0, -2.0],
                           "ctan": [2.2, 2.0, 3.0, 0.1]}, index=["prostate", "openkbp", "ham10000", "stoic"])
    res = friedman_nemenyi(scores)
    assert res.average_ranks == [2.75, 2.0, 4.0, 1.25]     # ctan best on 3 of 4, hps best on stoic
    ref = stats.friedmanchisquare(*[scores[c] for c in scores.columns])
    assert (res.statistic, res.p) == pytest.approx((ref.statistic, ref.pvalue))
    assert res.cd == pytest.approx(2.569 * math.sqrt(4 * 5 / (6 * 4)), abs=2e-3)
    paths = plot_cd(res, tmp_path / "cd")
    assert [p.suffix for p in paths] == [".png", ".pdf"] and all(p.stat().st_size > 1000 for p in paths)


def test_too_few_methods_or_datasets_give_no_test():
    assert friedman_nemenyi(pd.DataFrame({"stl": [0, 0], "hps": [1, 2]})) is None
    assert friedman_nemenyi(pd.DataFrame({"a": [0], "b": [1], "c": [2]})) is None
