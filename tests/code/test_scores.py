"""metrics.json: its keys, its entries built from probe results, and reading it back."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from isoclr import scores


def per_seed(values: dict[str, list[float]], n_train=(70, 72, 71), edges=("", "top", "bottom")) -> pd.DataFrame:
    """A per-seed table as isoclr.fitting.evaluate returns it: three full-split seeds and one low-data row."""
    full = pd.DataFrame({"train_fraction": 1.0, "seed": [0, 1, 2], "n_train": list(n_train), "n_test": 15,
                         "alpha_edge": list(edges), **values})
    low = pd.DataFrame({"train_fraction": 0.1, "seed": [0], "n_train": [7], "n_test": [15], "alpha_edge": [""],
                        **{k: [0.0] for k in values}})
    return pd.concat([full, low], ignore_index=True)


def result(values: dict[str, list[float]], **means) -> dict:
    out = {"per_seed": per_seed(values), "n": 100}
    for metric, seeds in values.items():
        out[metric] = float(np.nanmean(seeds))
        out[scores.ci_key(metric)] = [means.get("lo", 0.0), float("nan")]
    return out


def test_keys_are_spelled_once():
    assert scores.paired_key(scores.RANDOM_INIT) == "isoclr_minus_random_init"
    assert scores.paired_key(scores.CHAMPION) == "isoclr_minus_champion"
    assert scores.ci_key("auroc") == "auroc_ci95"
    assert scores.BASELINES == ("random_init", "kmer") and scores.CANDIDATE == "isoclr"
    assert scores.METRICS == {"regression": ("pearson_r", "spearman_r", "mse"), "classification": ("auroc", "auprc")}
    by_model = {"isoclr": {}, "kmer": {}, "champion": {}, "isoclr_minus_kmer": {"x": 1}, "isoclr_minus_champion": {}}
    assert list(scores.model_entries(by_model)) == ["isoclr", "kmer", "champion"]
    assert scores.paired_entries(by_model) == {"kmer": {"x": 1}, "champion": {}}


def test_a_number_is_finite_and_numeric():
    entry = {"a": 0.5, "b": None, "c": float("nan"), "d": True, "e": "0.3", "f": 2, "a_ci95": [0.1, 0.9]}
    assert [scores.number(entry, k) for k in "abcdef"] == [0.5, None, None, None, None, 2.0]
    assert scores.number(None, "a") is None and scores.number(entry, "missing") is None
    assert scores.ci(entry, "a") == [0.1, 0.9] and scores.ci(None, "a") is None


def test_model_entry_takes_the_full_train_split_and_writes_nan_as_null():
    entry = scores.model_entry(result({"auroc": [0.8, 0.9, 0.7], "auprc": [0.6, 0.7, 0.5]}), "classification")
    assert entry["auroc"] == pytest.approx(0.8) and entry["auroc_ci95"] == [0.0, None]
    assert entry["n"] == 100 and entry["n_train"] == pytest.approx(71.0) and entry["n_test"] == 15.0
    assert entry["seeds"] == 3 and entry["alpha_at_top"] == 1 and entry["alpha_at_bottom"] == 1
    assert "pearson_r" not in entry


def test_paired_entry_is_the_mean_of_per_seed_differences():
    a = result({"pearson_r": [0.5, 0.2, 0.4], "spearman_r": [0.1, 0.1, 0.1], "mse": [1.0, 2.0, 3.0]})
    b = result({"pearson_r": [0.3, 0.1, 0.1], "spearman_r": [0.1, 0.1, 0.1], "mse": [1.5, 2.5, 3.5]})
    entry = scores.paired_entry(a, b, "regression")
    assert entry["pearson_r"] == pytest.approx(0.2) and entry["mse"] == pytest.approx(-0.5)
    assert entry["mse_ci95"] == [pytest.approx(-0.5), pytest.approx(-0.5)]  # the same shift on every seed
    assert entry["seeds"] == 3 and entry["paired"] is True


def test_task_scores_name_every_metric_of_the_task_type_paired_differences_included():
    metrics = {
        "coding": {"isoclr": {"auroc": 0.9, "auprc": None, "n": 10},
                   "isoclr_minus_kmer": {"auroc": 0.1, "auprc": 0.05, "seeds": 3}},
        "mrl": {"kmer": {"pearson_r": 0.7, "spearman_r": 0.6, "mse": 1.2, "auroc": 0.5}},
    }
    got = list(scores.task_scores(metrics, {"coding": "classification", "mrl": "regression"}))
    assert got == [("coding", "isoclr", "auroc", 0.9), ("coding", "isoclr_minus_kmer", "auroc", 0.1),
                   ("coding", "isoclr_minus_kmer", "auprc", 0.05), ("mrl", "kmer", "pearson_r", 0.7),
                   ("mrl", "kmer", "spearman_r", 0.6), ("mrl", "kmer", "mse", 1.2)]


def test_write_refuses_nan_and_read_returns_what_was_written(tmp_path):
    metrics = {"mrl": {"isoclr": {"pearson_r": 0.5, "pearson_r_ci95": [None, 0.6]}}}
    scores.write(tmp_path / "metrics.json", metrics)
    assert scores.read(tmp_path / "metrics.json") == metrics
    with pytest.raises(ValueError):
        scores.write(tmp_path / "bad.json", {"mrl": {"isoclr": {"pearson_r": math.nan}}})
