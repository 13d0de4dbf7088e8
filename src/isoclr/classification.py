"""ROC points and confusion matrices of classification and multilabel probes, for Kubeflow's ClassificationMetrics.

The probe stage keeps the seed-0 test predictions of every model with the
decision threshold chosen on the val rows (:func:`choose_threshold`); this
module turns them into what kfp's ``ClassificationMetrics.log_roc_curve`` and
``log_confusion_matrix`` take, so a component only logs them. A multilabel task
is pooled over its terms (micro average: every (row, term) pair one decision,
each term at its own threshold), because a kfp output count is fixed when the
pipeline compiles while the number of terms is data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, roc_curve

from isoclr.artifacts import PROBE_PREDICTIONS
from isoclr.config import ProbeConfig

# Task types whose seed-0 predictions are probabilities: the ones drawn as ROC curves and confusion matrices.
CLASSIFIED = ("classification", "multilabel")
DEFAULT_THRESHOLD = 0.5  # probabilities: when the val rows hold one class, no threshold can be chosen
CATEGORIES = ("negative", "positive")
TIE_TOLERANCE = 1e-12  # J values this close are a tie (1 - 1/3 and 2/3 differ in the last bit)
# roc_curve's first threshold is +inf (nothing predicted positive); JSON has no inf, and a probability never
# exceeds 1, so the point is labelled with this finite bound instead.
ABOVE_ANY_PROBABILITY = 1.0 + 1e-9


class NoPredictionsError(ValueError):
    """No seed-0 predictions of this task and model to draw (task not probed, or not a classification task)."""


def choose_threshold(y_val: np.ndarray, p_val: np.ndarray) -> float:
    """The threshold on ``p_val`` (n,) that maximises Youden's J (TPR - FPR) on the val rows ``y_val`` (n,) 0/1.

    Chosen on val rows, so the confusion matrix of the test rows is an honest one; ties go to the
    larger threshold (fewer positive calls). One class (or no rows) in val: :data:`DEFAULT_THRESHOLD`.
    """
    y_val, p_val = np.asarray(y_val), np.asarray(p_val, dtype=float)
    if len(y_val) == 0 or len(np.unique(y_val)) < 2:
        return DEFAULT_THRESHOLD
    fpr, tpr, thresholds = roc_curve(y_val, p_val)
    finite = np.isfinite(thresholds)
    j = np.where(finite, tpr - fpr, -np.inf)
    # thresholds run high to low: the first within rounding of the maximum is the largest tied threshold
    return float(thresholds[int(np.flatnonzero(j >= j.max() - TIE_TOLERANCE)[0])])


@dataclass(frozen=True)
class ClassificationView:
    """What one ClassificationMetrics artifact shows: ROC points and the confusion matrix at the thresholds.

    ``fpr``, ``tpr``, ``thresholds``: (k,) lists of the ROC curve; ``matrix``: 2x2 [[TN, FP], [FN, TP]],
    rows = truth, columns = prediction, in :data:`CATEGORIES` order; ``thresholds_used``: term -> threshold.
    """

    fpr: list[float]
    tpr: list[float]
    thresholds: list[float]
    matrix: list[list[int]]
    categories: tuple[str, ...]
    thresholds_used: dict[str, float]
    n: int
    pooled_terms: int


def roc_points(y: np.ndarray, scores: np.ndarray) -> tuple[list[float], list[float], list[float]]:
    """``(fpr, tpr, thresholds)`` of :func:`sklearn.metrics.roc_curve`, every threshold finite."""
    fpr, tpr, thresholds = roc_curve(np.asarray(y), np.asarray(scores, dtype=float), drop_intermediate=True)
    thresholds = np.where(np.isfinite(thresholds), thresholds, ABOVE_ANY_PROBABILITY)
    return fpr.tolist(), tpr.tolist(), thresholds.tolist()


def decisions(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """1 where a score reaches its threshold (a row's own threshold: a multilabel term's)."""
    return (np.asarray(scores, dtype=float) >= np.asarray(thresholds, dtype=float)).astype(int)


def view(predictions: pd.DataFrame, task: str, model: str) -> ClassificationView:
    """The ROC curve and confusion matrix of one task and model from predictions.csv's rows.

    Args:
        predictions: columns task, model, term ("" for a single-label task), measured (0/1),
            predicted (probability), threshold (chosen on the val rows).
    Raises:
        NoPredictionsError: no rows, a column missing, or one class only (no ROC curve exists).
    """
    missing = {"task", "model", "term", "measured", "predicted", "threshold"} - set(predictions.columns)
    if missing:
        raise NoPredictionsError(f"predictions lack column(s) {sorted(missing)}")
    rows = predictions[(predictions["task"] == task) & (predictions["model"] == model)]
    rows = rows[rows["threshold"].notna()]
    if rows.empty:
        raise NoPredictionsError(f"no classification predictions of task {task!r}, model {model!r}")
    y = rows["measured"].to_numpy().astype(int)
    if len(np.unique(y)) < 2:
        raise NoPredictionsError(f"task {task!r}, model {model!r}: the test rows hold one class: no ROC curve")
    fpr, tpr, thresholds = roc_points(y, rows["predicted"].to_numpy())
    matrix = confusion_matrix(y, decisions(rows["predicted"], rows["threshold"]), labels=[0, 1])
    used = rows.groupby("term", sort=False)["threshold"].first()
    return ClassificationView(
        fpr=fpr,
        tpr=tpr,
        thresholds=thresholds,
        matrix=matrix.tolist(),
        categories=CATEGORIES,
        thresholds_used={str(k): float(v) for k, v in used.items()},
        n=len(rows),
        pooled_terms=int(rows["term"].nunique()),
    )


def classified_tasks(probe_cfg: ProbeConfig) -> list[str]:
    """The tasks a pipeline compiled from this configuration shows as ClassificationMetrics, in order."""
    return [task.name for task in probe_cfg.tasks if task.type in CLASSIFIED]


def read_predictions(folder: Path) -> pd.DataFrame:
    """predictions.csv of a probe output folder, a single-label task's empty term read back as ""."""
    predictions = pd.read_csv(Path(folder) / PROBE_PREDICTIONS)
    if "term" in predictions:
        predictions["term"] = predictions["term"].fillna("").astype(str)
    return predictions


def folder_view(folder: Path, task: str, model: str) -> tuple[ClassificationView | None, str]:
    """(the view of ``task`` and ``model`` from a probe output folder, a one-line description); (None, why)
    when there is nothing to draw (a run whose params dropped the task, one class in the test rows)."""
    try:
        shown = view(read_predictions(folder), task, model)
    except NoPredictionsError as err:
        return None, str(err)
    pooled = f", pooled over {shown.pooled_terms} labels (micro)" if shown.pooled_terms > 1 else ""
    return shown, (
        f"{task} / {model}: seed-0 test rows{pooled}, {shown.n} decisions; confusion matrix at the threshold "
        "chosen on the val rows (Youden's J)"
    )
