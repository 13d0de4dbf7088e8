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
from threadpoolctl import threadpool_limits

from isoclr import schemas
from isoclr.classification import choose_threshold
from isoclr.config import ProbeConfig
from isoclr.errors import IsoclrError
from isoclr.multilabel import multilabel_scores
from isoclr.scores import FULL_TRAIN, METRICS, MULTILABEL_METRICS, SKIPPED_TERMS, TERMS, ci_key, finite_or_none
from isoclr.splits import split_by_group
from isoclr.statistics import mean_ci, paired_difference, score

# Logistic regression: Newton iteration cap per penalty (warm-started along the path).
LOGISTIC_MAX_ITER = 100
LOGISTIC_SOLVER = "newton-cholesky"  # second order: fast and robust when rows >> features, as here
# Low-data subsets are drawn from this stream, keyed by seed and fraction (the same for every model).
_SUBSET_STREAM = 7919
_FRACTION_KEY = 1_000_000
# Per-label logistic fits are thousands of small (rows x ~100s) Newton solves: BLAS threads cost more in
# start-up and contention than they gain (measured on the 2-core machine: 6.5 s CPU with threads, 1.0 s with one).
LABEL_FIT_THREADS = 1


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
    if task_type == "multilabel" and not _two_classes(y_fit).any():
        return "every label holds one class only in the train rows"
    return None


def _two_classes(y: np.ndarray) -> np.ndarray:
    """(t,) bool: which columns of a (n, t) 0/1 matrix hold both classes."""
    positives = y.sum(axis=0)
    return (positives > 0) & (positives < len(y))


def _fit_predict_labels(
    x: np.ndarray, y: np.ndarray, fit: np.ndarray, val: np.ndarray, rows: np.ndarray, alphas: Sequence[float]
) -> tuple[np.ndarray, np.ndarray, dict[int, str]]:
    """One logistic probe per label column of ``y`` (n, t), penalty chosen on val per label.

    Returns (predictions (len(rows), t), NaN for a label not fitted; chosen alphas (t,), NaN likewise;
    {column: reason} for labels with one class in the fit rows).
    """
    pred = np.full((len(rows), y.shape[1]), np.nan)
    chosen = np.full(y.shape[1], np.nan)
    not_fitted = {}
    fittable = _two_classes(y[fit])
    with threadpool_limits(LABEL_FIT_THREADS):
        for j in range(y.shape[1]):
            if not fittable[j]:
                not_fitted[j] = f"one class in the train rows ({int(y[fit, j].sum())} of {len(fit)} positive)"
                continue
            pred[:, j], chosen[j] = _fit_predict("classification", x, y[:, j], fit, val, rows, alphas)
    return pred, chosen, not_fitted


def _score_labels(
    y_test: np.ndarray, pred: np.ndarray, labels: list[str], not_fitted: dict[int, str]
) -> tuple[dict[str, float], pd.DataFrame]:
    """Macro AUROC / AUPRC over the labels fitted and two-class in the test rows, and the per-label table."""
    fitted = [j for j in range(len(labels)) if j not in not_fitted]
    scored = multilabel_scores(y_test[:, fitted], pred[:, fitted], [labels[j] for j in fitted])
    per_label = scored["per_term"].assign(skipped="")
    for term, reason in scored["skipped"].items():
        per_label.loc[per_label["term"] == term, "skipped"] = reason.replace("the split", "the test rows")
    unfit = pd.DataFrame(
        {
            "term": [labels[j] for j in not_fitted],
            "n": len(y_test),
            "n_positive": [int(y_test[:, j].sum()) for j in not_fitted],
            "auroc": np.nan,
            "auprc": np.nan,
            "skipped": list(not_fitted.values()),
        }
    )
    per_label = pd.concat([per_label, unfit], ignore_index=True) if len(unfit) else per_label
    macro = {m: scored[m] for m in MULTILABEL_METRICS}
    macro["n_terms_scored"] = scored["n_terms_scored"]
    return macro, per_label


def evaluate(
    features: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    cfg: ProbeConfig,
    task_type: str = "regression",
    labels: Sequence[str] | None = None,
) -> dict:
    """Linear probe over ``cfg.seeds`` group-disjoint splits and every train fraction.

    Args:
        features: (n, d) one row per labelled sequence.
        y: (n,) measured target (0/1 for classification); (n, t) 0/1 for multilabel.
        groups: (n,) group of each row; a group never straddles two splits.
        labels: multilabel: the t label names (default "0".."t-1").
    Returns:
        ``per_seed``: DataFrame, one row per (train_fraction, seed) that ran, with
        ``n_train``, ``n_val``, ``n_test``, ``alpha``, ``alpha_edge`` ("top", "bottom" or "") and the metrics
        (multilabel: macro means and ``n_terms_scored``; ``alpha`` the median over labels);
        ``skipped``: {fraction: reason} for fractions that did not run;
        for each metric (full train split) its mean and ``<metric>_ci95`` = [lo, hi];
        ``n``; ``predictions``: seed 0 test rows at the full train split
        (``index``, ``measured``, ``predicted`` and, for classification and multilabel, ``threshold``
        chosen on the val rows; multilabel: (n_test, t) lists);
        multilabel also ``per_term``: one row per (train_fraction, seed, term) with
        n_positive (test rows), auroc, auprc and ``skipped`` (the reason, "" when scored).
    """
    if task_type not in METRICS:
        raise ValueError(f"task type must be one of {sorted(METRICS)}, got {task_type!r}")
    features = np.asarray(features, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    groups = np.asarray(groups)
    if not (len(features) == len(y) == len(groups)):
        raise ValueError(f"features {features.shape}, y {y.shape} and groups {groups.shape} differ in length")
    multilabel = task_type == "multilabel"
    if multilabel and y.ndim != 2:
        raise ValueError(f"a multilabel y is (n, labels), got {y.shape}")
    labels = [str(i) for i in range(y.shape[1])] if multilabel and labels is None else list(labels or [])
    rows: list[dict] = []
    term_rows: list[pd.DataFrame] = []
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
            keep = seed == 0 and fraction == FULL_TRAIN and task_type != "regression"
            scored_rows = np.concatenate([test, val]) if keep else test  # val predictions choose the threshold
            if multilabel:
                both, chosen, not_fitted = _fit_predict_labels(features, y, fit, val, scored_rows, cfg.alphas)
                pred = both[: len(test)]
                metrics, per_label = _score_labels(y[test], pred, labels, not_fitted)
                term_rows.append(per_label.assign(train_fraction=fraction, seed=seed))
                alpha = float(np.nanmedian(chosen))
            else:
                both, alpha = _fit_predict(task_type, features, y, fit, val, scored_rows, cfg.alphas)
                pred = both[: len(test)]
                metrics = score(task_type, y[test], pred)
            rows.append(
                {
                    "train_fraction": fraction,
                    "seed": seed,
                    "n_train": len(fit),
                    "n_val": len(val),
                    "n_test": len(test),
                    "alpha": alpha,
                    "alpha_edge": _edge(alpha, cfg.alphas),
                    **metrics,
                }
            )
            if seed == 0 and fraction == FULL_TRAIN:
                predictions = {"index": test.tolist(), "measured": y[test].tolist(), "predicted": pred.tolist()}
                if keep:
                    predictions["threshold"] = _thresholds(y[val], both[len(test) :], multilabel)
    per_seed = pd.DataFrame(rows)
    if FULL_TRAIN in skipped:
        raise ProbeSplitError(f"the full train split cannot be probed: {skipped[FULL_TRAIN]}")
    full = _full_split(per_seed)
    result: dict = {"per_seed": per_seed, "skipped": skipped, "n": int(len(y)), "predictions": predictions}
    if multilabel:
        result["per_term"] = pd.concat(term_rows, ignore_index=True)
        result["labels"] = labels
    for metric in METRICS[task_type]:
        mean, lo, hi = mean_ci(full[metric])
        result[metric] = mean
        result[ci_key(metric)] = [lo, hi]
    return result


def _thresholds(y_val: np.ndarray, p_val: np.ndarray, multilabel: bool) -> float | list[float | None]:
    """The decision threshold chosen on the val rows (:func:`isoclr.classification.choose_threshold`), per label."""
    if not multilabel:
        return choose_threshold(y_val, p_val)
    return [
        None if np.isnan(p_val[:, j]).any() else choose_threshold(y_val[:, j], p_val[:, j])
        for j in range(y_val.shape[1])
    ]


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
    if task_type == "multilabel":
        entry.update(term_entries(result))
    return entry


def term_entries(result: dict) -> dict:
    """A multilabel result's per-term scores on the full train split (mean and 95% CI over the seeds that
    scored the term) and the terms skipped in some seed, with the reason and how often."""
    per_term = result["per_term"]
    full = per_term[per_term["train_fraction"] == FULL_TRAIN]
    terms, skipped = {}, {}
    for term in result["labels"]:
        rows = full[full["term"] == term]
        values: dict = {"seeds": int(rows["auroc"].notna().sum())}
        for metric in MULTILABEL_METRICS:
            mean, lo, hi = mean_ci(rows[metric])
            values[metric] = finite_or_none(mean)
            values[ci_key(metric)] = [finite_or_none(lo), finite_or_none(hi)]
        terms[term] = values
        reasons = rows.loc[rows["skipped"] != "", "skipped"]
        if len(reasons):
            skipped[term] = f"skipped in {len(reasons)} of {len(rows)} seeds, e.g. {reasons.iloc[0]}"
    return {TERMS: terms, SKIPPED_TERMS: skipped}


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


def prediction_frame(task: str, model: str, predictions: dict, labels: Sequence[str] = ()) -> pd.DataFrame:
    """predictions.csv rows of one :func:`evaluate` result: task, model, term ("" unless multilabel),
    measured, predicted and threshold (chosen on val; NaN for regression). A multilabel result gives one
    row per (test row, label), labels that were not fitted left out."""
    measured, predicted = np.asarray(predictions["measured"], float), np.asarray(predictions["predicted"], float)
    threshold = predictions.get("threshold")
    if measured.ndim == 1:
        value = np.nan if threshold is None else float(threshold)
        return pd.DataFrame(
            {"task": task, "model": model, "term": "", "measured": measured, "predicted": predicted, "threshold": value}
        )
    frames = [
        pd.DataFrame(
            {
                "task": task,
                "model": model,
                "term": str(label),
                "measured": measured[:, j],
                "predicted": predicted[:, j],
                "threshold": threshold[j],
            }
        )
        for j, label in enumerate(labels)
        if threshold[j] is not None and np.isfinite(predicted[:, j]).all()
    ]
    return pd.concat(frames, ignore_index=True)
