"""metrics.json: its keys, its entries built from probe results, and reading it back."""

from __future__ import annotations

import math

import pytest

from isoclr import scores


def test_keys_are_spelled_once():
    assert scores.paired_key(scores.RANDOM_INIT) == "isoclr_minus_random_init"
    assert scores.paired_key(scores.CHAMPION) == "isoclr_minus_champion"
    assert scores.ci_key("auroc") == "auroc_ci95"
    assert scores.BASELINES == ("random_init", "kmer") and scores.CANDIDATE == "isoclr"
    assert scores.METRICS == {
        "regression": ("pearson_r", "spearman_r", "mse"),
        "classification": ("auroc", "auprc"),
        "multilabel": ("auroc", "auprc"),  # macro means over the terms; per-term values under scores.TERMS
    }
    by_model = {"isoclr": {}, "kmer": {}, "champion": {}, "isoclr_minus_kmer": {"x": 1}, "isoclr_minus_champion": {}}
    assert list(scores.model_entries(by_model)) == ["isoclr", "kmer", "champion"]
    assert scores.paired_entries(by_model) == {"kmer": {"x": 1}, "champion": {}}


def test_a_number_is_finite_and_numeric():
    entry = {"a": 0.5, "b": None, "c": float("nan"), "d": True, "e": "0.3", "f": 2, "a_ci95": [0.1, 0.9]}
    assert [scores.number(entry, k) for k in "abcdef"] == [0.5, None, None, None, None, 2.0]
    assert scores.number(None, "a") is None and scores.number(entry, "missing") is None
    assert scores.ci(entry, "a") == [0.1, 0.9] and scores.ci(None, "a") is None


def test_task_scores_name_every_metric_of_the_task_type_paired_differences_included():
    metrics = {
        "coding": {
            "isoclr": {"auroc": 0.9, "auprc": None, "n": 10},
            "isoclr_minus_kmer": {"auroc": 0.1, "auprc": 0.05, "seeds": 3},
        },
        "mrl": {"kmer": {"pearson_r": 0.7, "spearman_r": 0.6, "mse": 1.2, "auroc": 0.5}},
    }
    got = list(scores.task_scores(metrics, {"coding": "classification", "mrl": "regression"}))
    assert got == [
        ("coding", "isoclr", "auroc", 0.9),
        ("coding", "isoclr_minus_kmer", "auroc", 0.1),
        ("coding", "isoclr_minus_kmer", "auprc", 0.05),
        ("mrl", "kmer", "pearson_r", 0.7),
        ("mrl", "kmer", "spearman_r", 0.6),
        ("mrl", "kmer", "mse", 1.2),
    ]


def test_write_refuses_nan_and_read_returns_what_was_written(tmp_path):
    metrics = {"mrl": {"isoclr": {"pearson_r": 0.5, "pearson_r_ci95": [None, 0.6]}}}
    scores.write(tmp_path / "metrics.json", metrics)
    assert scores.read(tmp_path / "metrics.json") == metrics
    with pytest.raises(ValueError):
        scores.write(tmp_path / "bad.json", {"mrl": {"isoclr": {"pearson_r": math.nan}}})
