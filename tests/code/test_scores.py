"""metrics.json: its keys, its entries built from probe results, and reading it back."""

from __future__ import annotations

import math

import pytest

from isoclr import scores


def test_keys_are_spelled_once():
    assert scores.paired_key(scores.RANDOM_INIT) == "isoclr_minus_random_init"
    assert scores.paired_key(scores.CHAMPION) == "isoclr_minus_champion"
    assert scores.ci_key("auroc") == "auroc_ci95"
    assert scores.BASELINES == ("reconstruction", "random_init", "kmer") and scores.CANDIDATE == "isoclr"
    assert scores.METRICS == {
        "regression": ("pearson_r", "spearman_r", "mse"),
        "classification": ("auroc", "auprc"),
        "multilabel": ("auroc", "auprc"),  # macro means over the terms; per-term values under scores.TERMS
    }
    assert scores.paired_key(scores.RECONSTRUCTION) == "isoclr_minus_reconstruction"
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


@pytest.mark.parametrize(
    ("difference", "interval", "metric", "expected"),
    [
        (0.12, [0.05, 0.19], "pearson_r", "beats"),  # the whole interval above 0: better
        (-0.12, [-0.19, -0.05], "pearson_r", "loses"),
        (0.03, [-0.02, 0.08], "pearson_r", "within noise"),  # holds 0
        (0.05, [0.0, 0.1], "auroc", "within noise"),  # touching 0 is not clear of it
        (-0.2, [-0.3, -0.1], "mse", "beats"),  # lower is better for mse
        (0.2, [0.1, 0.3], "mse", "loses"),
        (0.1, [0.19, 0.01], "auprc", "beats"),  # bounds in either order
        (None, [0.1, 0.2], "pearson_r", None),  # no difference
        (0.1, None, "pearson_r", None),  # no interval
        (0.1, [None, 0.2], "pearson_r", None),
        (float("nan"), [0.1, 0.2], "pearson_r", None),
    ],
)
def test_a_verdict_says_where_the_paired_interval_lies(difference, interval, metric, expected):
    entry = {metric: difference, f"{metric}_ci95": interval}
    assert scores.verdict(entry, metric) == expected


def test_versus_judges_each_task_on_its_primary_metric_and_says_it_in_words():
    metrics = {
        "halflife": {
            "isoclr": {"pearson_r": 0.3},
            "isoclr_minus_reconstruction": {
                "pearson_r": 0.1,
                "pearson_r_ci95": [0.02, 0.18],
                "mse": -0.5,
                "mse_ci95": [-0.6, 0.1],
            },
        },
        "coding": {"isoclr_minus_reconstruction": {"auroc": -0.04, "auroc_ci95": [-0.07, -0.01], "auprc": 0.2}},
        "mrl": {"isoclr_minus_kmer": {"pearson_r": 0.5, "pearson_r_ci95": [0.4, 0.6]}},  # no reconstruction arm
        "utr3": {"isoclr_minus_reconstruction": {"pearson_r": None, "pearson_r_ci95": None}},
    }
    rows = scores.versus(metrics, scores.RECONSTRUCTION, {"halflife": "regression", "coding": "classification"})
    assert [(r["task"], r["metric"], r["verdict"]) for r in rows] == [
        ("halflife", "pearson_r", "beats"),
        ("coding", "auroc", "loses"),
        ("utr3", None, None),  # no type given and no primary metric held: nothing to judge
    ]
    # without task types the primary metric an entry holds is used
    assert [r["metric"] for r in scores.versus(metrics, scores.RECONSTRUCTION)][:2] == ["pearson_r", "auroc"]
    assert scores.versus_line(rows[0], "reconstruction") == (
        "halflife: isoclr beats reconstruction (isoclr - reconstruction pearson_r +0.100 [+0.020, +0.180], 95% CI)"
    )
    assert scores.versus_line(rows[1], "reconstruction").startswith("coding: isoclr loses to reconstruction")
    assert scores.versus_line(rows[2], "reconstruction") == "utr3: isoclr vs reconstruction: no paired difference"
