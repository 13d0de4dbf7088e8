"""Scores of one probe and their spread over seeds.

The probe stage scores each split's test rows (:func:`score`) and summarises
the seeds as a mean with a t-interval (:func:`mean_ci`); two models probed on
the same splits are compared seed by seed (:func:`paired_difference`). The
report reads the same functions, so a number in a table and a number in
metrics.json are computed once, in one way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats
from sklearn.metrics import average_precision_score, roc_auc_score

CI_LEVEL = 0.95


def mean_ci(values: Sequence[float], level: float = CI_LEVEL) -> tuple[float, float, float]:
    """Mean and t-interval over seeds; NaN seeds are left out (all NaN -> NaN)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(v.mean())
    if len(v) == 1:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + level / 2, df=len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return mean, mean - half, mean + half


def paired_difference(a: Sequence[float], b: Sequence[float], level: float = CI_LEVEL) -> tuple[float, float, float]:
    """Mean and t-interval of ``a - b`` seed by seed (same splits), over seeds where both are finite.

    Pairing removes the split-to-split variation both models share, so the
    interval is far narrower than the difference of two unpaired intervals.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired values need the same seeds: {a.shape} vs {b.shape}")
    return mean_ci(a - b, level)


def correlations(y: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """Pearson and Spearman r of ``(n,)`` arrays; NaN where either side is constant or there are < 2 rows."""
    if len(y) < 2 or np.ptp(y) == 0 or np.ptp(pred) == 0:
        return float("nan"), float("nan")
    return float(stats.pearsonr(y, pred).statistic), float(stats.spearmanr(y, pred).statistic)


def score(task_type: str, y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Test metrics: Pearson r, Spearman r, MSE (regression) or AUROC, AUPRC (classification; NaN on one class).

    Args:
        y: (n,) measured target (0/1 for classification).
        pred: (n,) prediction (the probability of the positive class for classification).
    """
    if task_type == "classification":
        if len(np.unique(y)) < 2:
            return {"auroc": float("nan"), "auprc": float("nan")}
        return {"auroc": float(roc_auc_score(y, pred)), "auprc": float(average_precision_score(y, pred))}
    pearson, spearman = correlations(y, pred)
    return {"pearson_r": pearson, "spearman_r": spearman, "mse": float(np.mean((y - pred) ** 2))}
