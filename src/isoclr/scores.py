"""metrics.json: every score of the probe stage, and the words its keys are made of.

The probe stage writes the file, the report draws its tables from it, the gate
judges it and the register stage attaches it to the model version. Its shape::

    {task: {<model>:                    {<metric>, <metric>_ci95, n, n_train, n_test, seeds,
                                         alpha_at_bottom, alpha_at_top[, version]
                                         [, terms: {term: {<metric>, <metric>_ci95, seeds}}, skipped_terms]},
            isoclr_minus_<baseline>:    {<metric>, <metric>_ci95, seeds, paired}}}

``<model>`` is the candidate (``isoclr``), a baseline (``random_init``, ``kmer``)
or the registry's ``champion`` (with its ``version``); ``<metric>`` the metrics of
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

from isoclr.config import CLASSIFICATION_METRICS, REGRESSION_METRICS

CANDIDATE = "isoclr"  # the model being judged
RANDOM_INIT = "random_init"  # the same architecture, untrained
KMER = "kmer"  # k-mer frequencies
BASELINES = (RANDOM_INIT, KMER)
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


def write(path: Path, metrics: Mapping) -> None:
    """metrics.json (strict JSON: a NaN would be an error, not a token other readers choke on)."""
    Path(path).write_text(json.dumps(metrics, indent=2, allow_nan=False) + "\n")


def read(path: Path) -> dict:
    """metrics.json as written by :func:`write`."""
    return json.loads(Path(path).read_text())
