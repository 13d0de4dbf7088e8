"""metrics.json: every score of the probe stage, and the words its keys are made of.

The probe stage writes the file, the report draws its tables from it, the gate
judges it and the register stage attaches it to the model version. Its shape::

    {task: {<model>:                    {<metric>, <metric>_ci95, n, n_train, n_test, seeds,
                                         alpha_at_bottom, alpha_at_top[, version]},
            isoclr_minus_<baseline>:    {<metric>, <metric>_ci95, seeds, paired}}}

``<model>`` is the candidate (``isoclr``), a baseline (``random_init``, ``kmer``)
or the registry's ``champion`` (with its ``version``); ``<metric>`` the metrics of
the task's type (:data:`METRICS`); a metric that could not be computed is null.
Every key is spelled here and nowhere else.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from isoclr.config import CLASSIFICATION_METRICS, REGRESSION_METRICS
from isoclr.statistics import paired_difference

CANDIDATE = "isoclr"  # the model being judged
RANDOM_INIT = "random_init"  # the same architecture, untrained
KMER = "kmer"  # k-mer frequencies
BASELINES = (RANDOM_INIT, KMER)
CHAMPION = "champion"  # the registry's champion, when it is probed
PAIRED_PREFIX = f"{CANDIDATE}_minus_"
METRICS: dict[str, tuple[str, ...]] = {"regression": REGRESSION_METRICS, "classification": CLASSIFICATION_METRICS}
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
    return float(value) if np.isfinite(value) else None


def _full_split(per_seed):
    return per_seed[per_seed["train_fraction"] == FULL_TRAIN]


def model_entry(result: dict, task_type: str) -> dict:
    """The entry of one model from its :func:`isoclr.fitting.evaluate` result (full train split)."""
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
    """candidate - baseline per seed on the full train split: mean and 95% CI of each metric."""
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


def task_scores(metrics: Mapping, task_types: Mapping[str, str]) -> Iterator[tuple[str, str, str, float]]:
    """``(task, model, metric, value)`` for every finite metric of every entry, paired differences included.

    Args:
        task_types: task name -> "regression" | "classification" (the metrics an entry holds).
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
