"""metrics.json: every score of the probe stage, and the words its keys are made of.

The probe stage writes the file, the report draws its tables from it, the gate
judges it and the register stage attaches it to the model version. Its shape::

    {task: {<model>:                    {<metric>, <metric>_ci95, n, n_train, n_test, seeds,
                                         alpha_at_bottom, alpha_at_top[, version]
                                         [, terms: {term: {<metric>, <metric>_ci95, seeds}}, skipped_terms]},
            isoclr_minus_<baseline>:    {<metric>, <metric>_ci95, seeds, paired}}}

``<model>`` is the candidate (``isoclr``), a baseline (``reconstruction``: the same
encoder trained to predict masked bases by the reconstruct stage; ``random_init``;
``kmer``) or the registry's ``champion`` (with its ``version``); ``<metric>`` the metrics of
the task's type (:data:`METRICS`; a multilabel task's are macro means over its terms,
with per-term values under ``terms``); a metric that could not be computed is null.
The model names, the paired and interval keys and the metrics of each task type
are spelled here and nowhere else; :mod:`isoclr.fitting` builds the entries.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path

from isoclr.config import CLASSIFICATION_METRICS, PRIMARY_METRIC, REGRESSION_METRICS

CANDIDATE = "isoclr"  # the model being judged
RANDOM_INIT = "random_init"  # the same architecture, untrained
KMER = "kmer"  # k-mer frequencies
RECONSTRUCTION = "reconstruction"  # the same encoder trained with masked-nucleotide reconstruction
BASELINES = (RECONSTRUCTION, RANDOM_INIT, KMER)
CHAMPION = "champion"  # the registry's champion, when it is probed
PAIRED_PREFIX = f"{CANDIDATE}_minus_"
# Multilabel tasks (GO terms): the macro means over the terms scored, spelled like classification's.
MULTILABEL_METRICS = CLASSIFICATION_METRICS
METRICS: dict[str, tuple[str, ...]] = {
    "regression": REGRESSION_METRICS,
    "classification": CLASSIFICATION_METRICS,
    "multilabel": MULTILABEL_METRICS,
}
TERMS = "terms"  # a multilabel model entry: {term: {<metric>, <metric>_ci95, seeds}} per term
SKIPPED_TERMS = "skipped_terms"  # a multilabel model entry: {term: why it was not scored in some seeds}
VERSION = "version"  # the champion's registry version, in its entry
FULL_TRAIN = 1.0  # the train fraction the headline numbers come from (the others draw the low-data curve)
LOWER_IS_BETTER = frozenset({"mse"})  # metrics where the smaller value wins
# Verdicts on a paired difference candidate - baseline, by where its 95% interval lies.
BEATS, LOSES, WITHIN_NOISE = "beats", "loses", "within noise"


def ci_key(metric: str) -> str:
    """The key of a metric's 95% interval ``[lo, hi]``."""
    return f"{metric}_ci95"


def paired_key(baseline: str) -> str:
    """The key of the paired difference candidate - ``baseline``."""
    return PAIRED_PREFIX + baseline


def model_entries(by_model: Mapping) -> dict:
    """One task's entries of single models (candidate, baselines, champion), by model."""
    return {m: v for m, v in by_model.items() if not m.startswith(PAIRED_PREFIX)}


def paired_entries(by_model: Mapping) -> dict:
    """One task's paired differences, by baseline."""
    return {m.removeprefix(PAIRED_PREFIX): v for m, v in by_model.items() if m.startswith(PAIRED_PREFIX)}


def number(entry: Mapping | None, metric: str) -> float | None:
    """A finite value of ``metric`` in an entry, or None (missing, null, NaN or not a number)."""
    value = (entry or {}).get(metric)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def ci(entry: Mapping | None, metric: str) -> list | None:
    """The ``[lo, hi]`` interval of ``metric`` in an entry, or None."""
    return (entry or {}).get(ci_key(metric))


def finite_or_none(value: float) -> float | None:
    """NaN is not JSON: a metric that could not be computed is written as null."""
    return float(value) if math.isfinite(value) else None


def task_scores(metrics: Mapping, task_types: Mapping[str, str]) -> Iterator[tuple[str, str, str, float]]:
    """``(task, model, metric, value)`` for every finite metric of every entry, paired differences included.

    Args:
        task_types: task name -> "regression" | "classification" | "multilabel" (the metrics an entry holds).
    """
    for task, by_model in metrics.items():
        for model, entry in by_model.items():
            for metric in METRICS[task_types[task]]:
                value = number(entry, metric)
                if value is not None:
                    yield task, model, metric, value


def verdict(entry: Mapping | None, metric: str) -> str | None:
    """Whether the candidate beats the baseline of a paired entry on ``metric``: :data:`BEATS` when the
    95% interval of the difference lies wholly on the better side of 0 (above it; below it for
    :data:`LOWER_IS_BETTER` metrics), :data:`LOSES` wholly on the worse side, :data:`WITHIN_NOISE`
    when it holds 0; None when the difference or its interval is missing."""
    interval = ci(entry, metric)
    if number(entry, metric) is None or not interval or any(v is None for v in interval):
        return None
    lo, hi = sorted(float(v) for v in interval)
    better_above = metric not in LOWER_IS_BETTER
    if lo > 0:
        return BEATS if better_above else LOSES
    if hi < 0:
        return LOSES if better_above else BEATS
    return WITHIN_NOISE


def primary_metric(entry: Mapping | None, task_type: str | None = None) -> str | None:
    """The metric a task is judged by: :data:`~isoclr.config.PRIMARY_METRIC` of ``task_type`` when given,
    else the first primary metric ``entry`` holds (metrics.json does not record task types)."""
    if task_type is not None and task_type in PRIMARY_METRIC:
        return PRIMARY_METRIC[task_type]
    return next((m for m in dict.fromkeys(PRIMARY_METRIC.values()) if number(entry, m) is not None), None)


def versus(metrics: Mapping, baseline: str, task_types: Mapping[str, str] | None = None) -> list[dict]:
    """Per task with a paired ``isoclr_minus_<baseline>`` entry: ``{task, metric, difference, ci95, verdict}``
    on the task's primary metric (:func:`primary_metric`, :func:`verdict`)."""
    rows = []
    for task, by_model in metrics.items():
        entry = by_model.get(paired_key(baseline))
        if entry is None:
            continue
        metric = primary_metric(entry, (task_types or {}).get(task))
        rows.append(
            {
                "task": task,
                "metric": metric,
                "difference": number(entry, metric) if metric else None,
                "ci95": ci(entry, metric) if metric else None,
                "verdict": verdict(entry, metric) if metric else None,
            }
        )
    return rows


def versus_line(row: Mapping, baseline: str) -> str:
    """One :func:`versus` row in words: ``halflife: isoclr beats reconstruction (pearson_r +0.120 [0.05, 0.19])``."""
    if row["verdict"] is None:
        return f"{row['task']}: {CANDIDATE} vs {baseline}: no paired difference"
    lo, hi = row["ci95"]
    said = {BEATS: "beats", LOSES: "loses to", WITHIN_NOISE: "is within noise of"}[row["verdict"]]
    return (
        f"{row['task']}: {CANDIDATE} {said} {baseline} "
        f"({CANDIDATE} - {baseline} {row['metric']} {row['difference']:+.3f} [{lo:+.3f}, {hi:+.3f}], 95% CI)"
    )


def write(path: Path, metrics: Mapping) -> None:
    """metrics.json (strict JSON: a NaN would be an error, not a token other readers choke on)."""
    Path(path).write_text(json.dumps(metrics, indent=2, allow_nan=False) + "\n")


def read(path: Path) -> dict:
    """metrics.json as written by :func:`write`."""
    return json.loads(Path(path).read_text())
