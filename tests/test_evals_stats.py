"""Bootstrap intervals and correlations used by the evaluation reports."""

from __future__ import annotations

import pytest

from cai.evals.stats import bootstrap_diff, bootstrap_mean, correlations, rank


def test_bootstrap_mean_is_seeded_and_brackets_the_mean():
    values = [0, 1, 1, 0, 1, 1, 1, 0, 1, 1]
    a, b = bootstrap_mean(values, seed=1), bootstrap_mean(values, seed=1)
    assert a == b and a["value"] == 0.7 and a["n"] == 10
    assert 0.3 <= a["ci"][0] < 0.7 < a["ci"][1] <= 1.0
    assert bootstrap_mean([]) is None
    assert bootstrap_mean([1.0] * 5)["ci"] == [1.0, 1.0]


def test_paired_difference_cancels_shared_probe_difficulty():
    hard = [0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    shifted = [1.0 if i % 2 else x for i, x in enumerate(hard)]
    same = bootstrap_diff(hard, hard)
    assert same == {"value": 0.0, "ci": [0.0, 0.0], "n": 8}
    d = bootstrap_diff(shifted, hard)
    assert d["value"] == pytest.approx(0.125) and d["ci"][0] >= 0.0  # one probe improved, none got worse
    with pytest.raises(ValueError, match="differ in length"):
        bootstrap_diff([1.0], [1.0, 0.0])


def test_rank_averages_ties_and_correlations():
    assert rank([3, 1, 3, 2]).tolist() == [3.5, 1.0, 3.5, 2.0]
    c = correlations([1, 2, 3, 4], [10, 20, 30, 1000])
    assert c["spearman"] == pytest.approx(1.0) and c["pearson"] < 1.0
    assert correlations([1, 1, 1], [1, 2, 3]) == {"pearson": None, "spearman": None, "n": 3}
    assert correlations([1, 2], [2, 1])["pearson"] is None
