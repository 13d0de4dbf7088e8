"""Linear probes: fit on the train rows, choose the penalty on the val rows, score the test rows.

Protocol, per seed: a 70/15/15 split by group (:func:`isoclr.splits.split_by_group`:
near-identical sequences never straddle two splits); features standardised with
statistics of the rows that are fitted; the penalty chosen on the val split
(group-disjoint, so near-identical sequences cannot make a small penalty look
good, as leave-one-out would); the model fitted on the train rows only and
scored on the test rows. The low-data curve repeats this with a share of the
train rows (val and test unchanged); a share that leaves fewer than
``min_train_rows`` rows (or one class) is skipped and reported. Every feature
set of a task gets the same splits and subsets, so their scores pair up seed by
seed.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.metrics import log_loss
from sklearn.preprocessing import StandardScaler

from isoclr import schemas
from isoclr.config import ProbeConfig
from isoclr.errors import IsoclrError
from isoclr.scores import FULL_TRAIN, METRICS, ci_key, finite_or_none
from isoclr.splits import split_by_group
from isoclr.statistics import mean_ci, paired_difference, score

# Logistic regression: Newton iteration cap per penalty (warm-started along the path).
LOGISTIC_MAX_ITER = 100
LOGISTIC_SOLVER = "newton-cholesky"  # second order: fast and robust when rows >> features, as here
# Low-data subsets are drawn from this stream, keyed by seed and fraction (the same for every model).
_SUBSET_STREAM = 7919
_FRACTION_KEY = 1_000_000


class ProbeSplitError(IsoclrError, ValueError):
    """The splits of a label set leave nothing to fit or to score (too few groups, rows or classes)."""


def _ridge_select(x_fit, y_fit, x_val, y_val, alphas: Sequence[float]) -> tuple[float, np.ndarray, float]:
    """Ridge on standardised ``x_fit`` (n, d) for every alpha at once; the alpha with least val MSE.

    One thin SVD gives all the solutions: w(alpha) = V diag(s / (s^2 + alpha)) U^T (y - mean y).
    Returns (alpha, w (d,), intercept).
    """
    intercept = float(y_fit.mean())
    u, s, vt = np.linalg.svd(x_fit, full_matrices=False)
    uty = u.T @ (y_fit - intercept)  # (k,)
    alphas = np.asarray(alphas, dtype=float)
    shrink = s[None, :] / (s[None, :] ** 2 + alphas[:, None])  # (n_alphas, k)
    weights = (shrink * uty[None, :]) @ vt  # (n_alphas, d)
    val_mse = (((x_val @ weights.T) + intercept - y_val[:, None]) ** 2).mean(axis=0)
    best = int(np.argmin(val_mse))
    return float(alphas[best]), weights[best], intercept


def _fit_predict(
    task_type: str,
    x: np.ndarray,
    y: np.ndarray,
    fit: np.ndarray,
    val: np.ndarray,
    test: np.ndarray,
    alphas: Sequence[float],
) -> tuple[np.ndarray, float]:
    """Standardise on the fit rows, choose the penalty on the val rows, fit, predict the test rows.

    Returns (test predictions (n_test,), chosen alpha). Regression predicts the
    target; classification the probability of the positive class.
    """
    scaler = StandardScaler().fit(x[fit])
    x_fit, x_val, x_test = (scaler.transform(x[rows]) for rows in (fit, val, test))
    if task_type == "regression":
        if len(x_val) == 0:  # no val split configured: leave-one-out over the fit rows
            model = RidgeCV(alphas=list(alphas)).fit(x_fit, y[fit])
            return model.predict(x_test), float(model.alpha_)
        alpha, w, b = _ridge_select(x_fit, y[fit], x_val, y[val], alphas)
        return x_test @ w + b, alpha
    # The penalty path from strong to weak, each fit warm-started from the last: near-separable
    # classes at a weak penalty converge in a few iterations instead of thousands. A weak-penalty fit
    # that stops at the iteration cap is still a valid candidate; the val loss judges it.
    model = LogisticRegression(solver=LOGISTIC_SOLVER, warm_start=True, max_iter=LOGISTIC_MAX_ITER)
    # Without val rows the fit rows choose (the least penalty wins: the report shows it as an edge choice).
    x_sel, y_sel = (x_val, y[val]) if len(x_val) else (x_fit, y[fit])
    best = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for alpha in sorted(alphas, reverse=True):
            model.set_params(C=1.0 / alpha).fit(x_fit, y[fit])
            loss = log_loss(y_sel, model.predict_proba(x_sel)[:, 1], labels=[0, 1])
            if best is None or loss < best[0]:
                best = (loss, alpha, model.coef_.copy(), model.intercept_.copy())
    _, alpha, coef, intercept = best
    model.coef_, model.intercept_ = coef, intercept
    return model.predict_proba(x_test)[:, 1], float(alpha)


def _edge(alpha: float, alphas: Sequence[float]) -> str:
    return "bottom" if alpha == min(alphas) else "top" if alpha == max(alphas) else ""


def probe_splits(groups: np.ndarray, cfg: ProbeConfig) -> list[np.ndarray]:
    """One ``(n,)`` array of "train" | "val" | "test" per seed; the same for every feature set of a task."""
    return [split_by_group(np.asarray(groups), cfg.fractions, seed) for seed in range(cfg.seeds)]


def low_data_rows(train_rows: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """The train rows a low-data point fits on: a seeded random share, the same for every model."""
    if fraction >= 1.0:
        return train_rows
    n = int(round(fraction * len(train_rows)))
    rng = np.random.default_rng([_SUBSET_STREAM, seed, int(round(fraction * _FRACTION_KEY))])
    return np.sort(rng.choice(train_rows, size=n, replace=False))


def _skip_reason(task_type: str, y_fit: np.ndarray, cfg: ProbeConfig) -> str | None:
    if len(y_fit) < cfg.min_train_rows:
        return f"{len(y_fit)} train rows < min_train_rows {cfg.min_train_rows}"
    if task_type == "classification" and len(np.unique(y_fit)) < 2:
        return "the train rows hold one class only"
    return None


def evaluate(
    features: np.ndarray, y: np.ndarray, groups: np.ndarray, cfg: ProbeConfig, task_type: str = "regression"
) -> dict:
    """Linear probe over ``cfg.seeds`` group-disjoint splits and every train fraction.

    Args:
        features: (n, d) one row per labelled sequence.
        y: (n,) measured target (0/1 for classification).
        groups: (n,) group of each row; a group never straddles two splits.
    Returns:
        ``per_seed``: DataFrame, one row per (train_fraction, seed) that ran, with
        ``n_train``, ``n_val``, ``n_test``, ``alpha``, ``alpha_edge`` ("top", "bottom" or "") and the metrics;
        ``skipped``: {fraction: reason} for fractions that did not run;
        for each metric (full train split) its mean and ``<metric>_ci95`` = [lo, hi];
        ``n``; ``predictions``: seed 0 test rows at the full train split
        (``index``, ``measured``, ``predicted``).
    """
    if task_type not in METRICS:
        raise ValueError(f"task type must be one of {sorted(METRICS)}, got {task_type!r}")
    features = np.asarray(features, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    groups = np.asarray(groups)
    if not (len(features) == len(y) == len(groups)):
        raise ValueError(f"features {features.shape}, y {y.shape} and groups {groups.shape} differ in length")
    rows: list[dict] = []
    skipped: dict[float, str] = {}
    predictions: dict = {}
    for seed, split in enumerate(probe_splits(groups, cfg)):
        train, val, test = (np.flatnonzero(split == s) for s in schemas.SPLITS)
        if len(train) == 0 or len(test) == 0:
            raise ProbeSplitError(
                f"seed {seed}: the split has {len(train)} train and {len(test)} test rows "
                f"({len(np.unique(groups))} groups): too few groups to probe"
            )
        for fraction in cfg.train_fractions:
            fit = low_data_rows(train, fraction, seed)
            reason = _skip_reason(task_type, y[fit], cfg)
            if reason is not None:
                skipped.setdefault(fraction, reason)
                continue
            pred, alpha = _fit_predict(task_type, features, y, fit, val, test, cfg.alphas)
            rows.append(
                {
                    "train_fraction": fraction,
                    "seed": seed,
                    "n_train": len(fit),
                    "n_val": len(val),
                    "n_test": len(test),
                    "alpha": alpha,
                    "alpha_edge": _edge(alpha, cfg.alphas),
                    **score(task_type, y[test], pred),
                }
            )
            if seed == 0 and fraction == FULL_TRAIN:
                predictions = {"index": test.tolist(), "measured": y[test].tolist(), "predicted": pred.tolist()}
    per_seed = pd.DataFrame(rows)
    if FULL_TRAIN in skipped:
        raise ProbeSplitError(f"the full train split cannot be probed: {skipped[FULL_TRAIN]}")
    full = _full_split(per_seed)
    result: dict = {"per_seed": per_seed, "skipped": skipped, "n": int(len(y)), "predictions": predictions}
    for metric in METRICS[task_type]:
        mean, lo, hi = mean_ci(full[metric])
        result[metric] = mean
        result[ci_key(metric)] = [lo, hi]
    return result


# --------------------------------------------------------------------------- metrics.json entries


def _full_split(per_seed: pd.DataFrame) -> pd.DataFrame:
    return per_seed[per_seed["train_fraction"] == FULL_TRAIN]


def model_entry(result: dict, task_type: str) -> dict:
    """One model's metrics.json entry (:mod:`isoclr.scores`) from its :func:`evaluate` result: full train split."""
    entry: dict = {}
    for metric in METRICS[task_type]:
        entry[metric] = finite_or_none(result[metric])
        entry[ci_key(metric)] = [finite_or_none(v) for v in result[ci_key(metric)]]
    full = _full_split(result["per_seed"])
    entry["n"] = result["n"]
    entry["n_train"] = float(full["n_train"].mean())
    entry["n_test"] = float(full["n_test"].mean())
    entry["seeds"] = len(full)
    # Penalties at the grid's edges: "bottom" means the grid may be too narrow; "top" that the
    # strongest penalty won, i.e. the features carry little linear signal (predictions ~ the mean).
    entry["alpha_at_bottom"] = int((full["alpha_edge"] == "bottom").sum())
    entry["alpha_at_top"] = int((full["alpha_edge"] == "top").sum())
    return entry


def paired_entry(candidate: dict, baseline: dict, task_type: str) -> dict:
    """The entry of candidate - baseline (two :func:`evaluate` results, same splits): per-seed differences on
    the full train split, their mean and 95% CI for each metric."""
    a = _full_split(candidate["per_seed"]).set_index("seed")
    b = _full_split(baseline["per_seed"]).set_index("seed")
    entry: dict = {}
    for metric in METRICS[task_type]:
        mean, lo, hi = paired_difference(a[metric], b.loc[a.index, metric])
        entry[metric] = finite_or_none(mean)
        entry[ci_key(metric)] = [finite_or_none(lo), finite_or_none(hi)]
    entry["seeds"] = len(a)
    entry["paired"] = True
    return entry
