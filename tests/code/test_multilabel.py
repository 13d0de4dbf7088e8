"""Multilabel AUROC / AUPRC against sklearn's own macro computation, and one-class terms skipped."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from isoclr.multilabel import multilabel_scores


def _data(seed: int, n: int = 200, t: int = 6):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, t)) < rng.uniform(0.05, 0.5, t)).astype(int)
    scores = y * rng.uniform(0.0, 1.5, t) + rng.normal(size=(n, t))  # informative, to different degrees
    return y, scores


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_sklearn_macro_on_random_data(seed):
    y, scores = _data(seed)
    result = multilabel_scores(y, scores, terms=[f"GO:{i}" for i in range(6)])
    assert result["auroc"] == pytest.approx(roc_auc_score(y, scores, average="macro"), abs=1e-12)
    assert result["auprc"] == pytest.approx(average_precision_score(y, scores, average="macro"), abs=1e-12)
    assert result["per_term"]["auroc"].to_numpy() == pytest.approx(roc_auc_score(y, scores, average=None))
    assert result["per_term"]["n_positive"].tolist() == y.sum(axis=0).tolist()
    assert result["n_terms_scored"] == 6 and result["skipped"] == {}


def test_one_class_term_is_skipped_not_averaged_as_half():
    y, scores = _data(3)
    y[:, 2] = 0  # no positive in this split
    y[:, 4] = 1  # no negative
    result = multilabel_scores(y, scores, terms=list("abcdef"))
    kept = [0, 1, 3, 5]
    assert set(result["skipped"]) == {"c", "e"} and "0 of 200" in result["skipped"]["c"]
    assert result["n_terms_scored"] == 4
    assert result["auroc"] == pytest.approx(roc_auc_score(y[:, kept], scores[:, kept], average="macro"))
    assert result["auprc"] == pytest.approx(average_precision_score(y[:, kept], scores[:, kept], average="macro"))
    assert np.isnan(result["per_term"].loc[2, "auroc"]) and np.isnan(result["per_term"].loc[4, "auprc"])


def test_perfect_and_reversed_scores():
    y = np.array([[1, 0], [1, 1], [0, 1], [0, 0]])
    result = multilabel_scores(y, y.astype(float) * np.array([1, -1]))
    assert result["per_term"]["auroc"].tolist() == [1.0, 0.0]
    assert result["auroc"] == 0.5 and result["auprc"] == pytest.approx((1.0 + 0.5) / 2)


def test_all_terms_skipped_gives_nan_and_bad_input_raises():
    result = multilabel_scores(np.zeros((3, 2), int), np.zeros((3, 2)))
    assert np.isnan(result["auroc"]) and result["n_terms_scored"] == 0 and len(result["skipped"]) == 2
    with pytest.raises(ValueError, match="shape"):
        multilabel_scores(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="0/1"):
        multilabel_scores(np.full((3, 1), 2), np.zeros((3, 1)))
