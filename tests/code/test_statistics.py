"""Per-seed summaries and test scores, against scipy's and scikit-learn's own implementations."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import average_precision_score, roc_auc_score

from isoclr.scores import METRICS
from isoclr.statistics import correlations, mean_ci, paired_difference, score


def test_mean_ci_is_scipys_t_interval():
    values = np.array([0.21, 0.35, 0.18, 0.29, 0.40, 0.26])
    mean, lo, hi = mean_ci(values)
    ref_lo, ref_hi = stats.t.interval(0.95, df=len(values) - 1, loc=values.mean(), scale=stats.sem(values))
    assert mean == pytest.approx(values.mean())
    assert (lo, hi) == pytest.approx((ref_lo, ref_hi), rel=1e-12)
    ref90 = stats.t.interval(0.90, df=len(values) - 1, loc=values.mean(), scale=stats.sem(values))
    assert mean_ci(values, level=0.90)[1:] == pytest.approx(ref90, rel=1e-12)


def test_mean_ci_leaves_out_nan_seeds_and_needs_two_for_an_interval():
    mean, lo, hi = mean_ci([0.1, np.nan, 0.3, 0.2])
    ref = stats.t.interval(0.95, df=2, loc=0.2, scale=stats.sem([0.1, 0.3, 0.2]))
    assert mean == pytest.approx(0.2) and (lo, hi) == pytest.approx(ref)
    one = mean_ci([0.5, np.nan])
    assert one[0] == 0.5 and np.isnan(one[1]) and np.isnan(one[2])
    assert all(np.isnan(v) for v in mean_ci([np.nan, np.nan]))


def test_paired_difference_is_scipys_paired_t_interval():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0.5, 0.1, 8), rng.normal(0.4, 0.1, 8)
    mean, lo, hi = paired_difference(a, b)
    d = a - b
    assert mean == pytest.approx(d.mean())
    assert (lo, hi) == pytest.approx(stats.ttest_rel(a, b).confidence_interval(0.95), rel=1e-10)
    assert (lo, hi) == pytest.approx(stats.t.interval(0.95, df=7, loc=d.mean(), scale=stats.sem(d)), rel=1e-12)


def test_paired_difference_is_tighter_than_unpaired_when_splits_share_noise():
    rng = np.random.default_rng(0)
    split_noise = rng.normal(scale=0.1, size=10)  # what a hard or easy split does to both models
    a = 0.5 + split_noise + rng.normal(scale=0.01, size=10)
    b = 0.4 + split_noise + rng.normal(scale=0.01, size=10)
    mean, lo, hi = paired_difference(a, b)
    assert mean == pytest.approx(0.1, abs=0.02) and lo > 0.05
    _, a_lo, a_hi = mean_ci(a)
    assert hi - lo < (a_hi - a_lo) / 4
    with pytest.raises(ValueError, match="same seeds"):
        paired_difference(a, b[:5])


def test_regression_scores_are_scipys():
    rng = np.random.default_rng(1)
    y = rng.normal(size=50)
    pred = y + rng.normal(scale=0.5, size=50)
    got = score("regression", y, pred)
    assert list(got) == list(METRICS["regression"])
    assert got["pearson_r"] == pytest.approx(stats.pearsonr(y, pred).statistic, rel=1e-12)
    assert got["spearman_r"] == pytest.approx(stats.spearmanr(y, pred).statistic, rel=1e-12)
    assert got["mse"] == pytest.approx(np.mean((y - pred) ** 2))


def test_correlations_of_a_constant_side_are_nan_not_a_warning():
    assert all(np.isnan(v) for v in correlations(np.ones(5), np.arange(5.0)))
    assert all(np.isnan(v) for v in correlations(np.array([1.0]), np.array([2.0])))
    got = score("regression", np.arange(5.0), np.full(5, 2.0))
    assert np.isnan(got["pearson_r"]) and got["mse"] == pytest.approx(2.0)


def test_classification_scores_are_sklearns_and_nan_on_one_class():
    rng = np.random.default_rng(2)
    y = (rng.random(80) > 0.6).astype(float)
    pred = np.clip(0.3 * y + 0.7 * rng.random(80), 0, 1)
    got = score("classification", y, pred)
    assert list(got) == list(METRICS["classification"])
    assert got["auroc"] == pytest.approx(roc_auc_score(y, pred))
    assert got["auprc"] == pytest.approx(average_precision_score(y, pred))
    one_class = score("classification", np.ones(5), np.linspace(0, 1, 5))
    assert set(one_class) == {"auroc", "auprc"} and all(np.isnan(v) for v in one_class.values())
