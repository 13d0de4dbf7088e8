"""Linear probes: splits by group, the penalty chosen on val, scaling on the fitted rows, low-data subsets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from isoclr import scores
from isoclr.config import ProbeConfig, ProbeTask
from isoclr.errors import IsoclrError
from isoclr.fitting import (
    ProbeSplitError,
    _fit_predict,
    _ridge_select,
    evaluate,
    low_data_rows,
    model_entry,
    paired_entry,
    probe_splits,
)


def probe_cfg(**update) -> ProbeConfig:
    task = ProbeTask(name="t", file="x.csv", join="sequence", id_column="seq", target="y", group_by="prefix5")
    return ProbeConfig(tasks=[task], **update)


def synthetic(n: int = 600, d: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    groups = rng.integers(0, n // 3, n).astype(str)
    return rng, x, groups


def full_split(result: dict) -> pd.DataFrame:
    return result["per_seed"].query("train_fraction == 1.0")


def test_linear_target_is_recovered_and_noise_is_not():
    rng, x, groups = synthetic()
    y = x @ rng.normal(size=x.shape[1]) + 0.1 * rng.normal(size=len(x))
    cfg = probe_cfg(seeds=3)
    good = evaluate(x, y, groups, cfg)
    assert good["pearson_r"] > 0.9 and good["spearman_r"] > 0.9
    lo, hi = good["pearson_r_ci95"]
    assert lo <= good["pearson_r"] <= hi
    assert full_split(good)["seed"].tolist() == [0, 1, 2]
    noise = evaluate(rng.normal(size=x.shape), y, groups, cfg)
    assert abs(noise["pearson_r"]) < 0.2
    assert noise["mse"] > 10 * good["mse"]


def test_no_group_in_two_splits_for_any_seed():
    _, x, groups = synthetic()
    cfg = probe_cfg(seeds=4)
    splits = probe_splits(groups, cfg)
    assert len(splits) == 4
    for split in splits:
        per_group = pd.Series(split).groupby(groups).nunique()
        assert (per_group == 1).all()
        assert set(split) == {"train", "val", "test"}
    # seeds differ, and the seed-0 predictions are exactly the seed-0 test rows
    assert (splits[0] != splits[1]).any()
    result = evaluate(x, x[:, 0], groups, cfg)
    assert result["predictions"]["index"] == np.flatnonzero(splits[0] == "test").tolist()
    assert full_split(result)["n_test"].tolist() == [int((s == "test").sum()) for s in splits]
    # fitted on the train rows only: val chooses the penalty, test scores
    assert full_split(result)["n_train"].tolist() == [int((s == "train").sum()) for s in splits]


def test_evaluate_rejects_too_few_groups_with_a_project_error():
    x = np.arange(10.0)[:, None]
    with pytest.raises(ProbeSplitError, match="too few groups") as err:
        evaluate(x, x[:, 0], np.zeros(10), probe_cfg())
    assert isinstance(err.value, IsoclrError) and isinstance(err.value, ValueError)
    rng, x, groups = synthetic(n=200)
    with pytest.raises(ProbeSplitError, match="full train split cannot be probed.*min_train_rows"):
        evaluate(x, x[:, 0], groups, probe_cfg(min_train_rows=1000))


def test_penalty_is_chosen_on_val_and_features_are_scaled_on_train_only():
    rng, x, groups = synthetic(n=400, d=6)
    y = x[:, 0] + 0.5 * rng.normal(size=len(x))
    cfg = probe_cfg(seeds=2)
    split = probe_splits(groups, cfg)[0]
    fit, val, test = (np.flatnonzero(split == s) for s in ("train", "val", "test"))
    pred, alpha = _fit_predict("regression", x, y, fit, val, test, cfg.alphas)
    assert alpha in cfg.alphas
    # Scaling a feature on val/test rows only changes nothing the fit saw: the same model, rescaled inputs.
    shifted = x.copy()
    shifted[test, 1] += 1000.0
    pred_shifted, alpha_shifted = _fit_predict("regression", shifted, y, fit, val, test, cfg.alphas)
    train_only = x.copy()
    train_only[fit, 1] *= 3.0
    _, alpha_train = _fit_predict("regression", train_only, y, fit, val, test, cfg.alphas)
    assert alpha_shifted == alpha
    assert not np.allclose(pred_shifted, pred)  # the test rows moved ...
    np.testing.assert_allclose(pred_shifted - pred, (pred_shifted - pred)[0])  # ... by one constant shift
    # and the val rows alone pick the penalty: a target the val rows cannot see picks the strongest one
    y_noise = y.copy()
    y_noise[val] = rng.normal(size=len(val))
    _, alpha_noise = _fit_predict("regression", x, y_noise, fit, val, test, cfg.alphas)
    assert alpha_noise >= alpha and alpha_train in cfg.alphas


def test_ridge_path_matches_sklearn_ridge():
    from sklearn.linear_model import Ridge

    rng, x, _ = synthetic(n=120, d=8)
    y = x @ rng.normal(size=8) + rng.normal(size=120)
    xv, yv = rng.normal(size=(40, 8)), rng.normal(size=40)
    alpha, w, b = _ridge_select(x - x.mean(0), y, xv, yv, [alpha_only := 3.0])
    reference = Ridge(alpha=alpha_only).fit(x - x.mean(0), y)
    assert alpha == alpha_only
    np.testing.assert_allclose(w, reference.coef_, rtol=1e-8)
    assert b == pytest.approx(reference.intercept_)


def test_classification_reports_auroc_and_auprc():
    rng, x, groups = synthetic()
    y = (x[:, 0] + 0.3 * rng.normal(size=len(x)) > 0.5).astype(float)
    cfg = probe_cfg(seeds=3)
    good = evaluate(x, y, groups, cfg, task_type="classification")
    assert good["auroc"] > 0.9 and good["auprc"] > 0.8 and "pearson_r" not in good
    chance = evaluate(rng.normal(size=x.shape), y, groups, cfg, task_type="classification")
    assert abs(chance["auroc"] - 0.5) < 0.1
    assert chance["auprc"] < good["auprc"]
    probabilities = np.asarray(good["predictions"]["predicted"])
    assert ((probabilities >= 0) & (probabilities <= 1)).all()


def test_low_data_points_share_subsets_across_models_and_skip_when_too_small():
    rng, x, groups = synthetic(n=600)
    y = x[:, 0] + rng.normal(size=len(x))
    cfg = probe_cfg(seeds=3, train_fractions=[1.0, 0.1, 0.01], min_train_rows=20)
    a = evaluate(x, y, groups, cfg)
    b = evaluate(rng.normal(size=x.shape), y, groups, cfg)
    # ~420 train rows: 0.1 leaves ~42 (runs), 0.01 leaves ~4 (skipped, with the reason)
    assert set(a["per_seed"]["train_fraction"]) == {1.0, 0.1}
    assert 0.01 in a["skipped"] and "min_train_rows 20" in a["skipped"][0.01]
    tenth = a["per_seed"].query("train_fraction == 0.1")
    full = full_split(a)
    assert (tenth["n_train"].to_numpy() < full["n_train"].to_numpy() / 5).all()
    assert (tenth["n_test"].to_numpy() == full["n_test"].to_numpy()).all()  # the test rows never change
    # the same rows for every model: identical sizes seed by seed
    assert a["per_seed"]["n_train"].tolist() == b["per_seed"]["n_train"].tolist()
    train_rows = np.arange(100)
    assert (low_data_rows(train_rows, 0.1, 0) == low_data_rows(train_rows, 0.1, 0)).all()
    assert len(low_data_rows(train_rows, 0.1, 0)) == 10 and (low_data_rows(train_rows, 1.0, 3) == train_rows).all()


# --------------------------------------------------------------------------- metrics.json entries


def per_seed(values: dict[str, list[float]], n_train=(70, 72, 71), edges=("", "top", "bottom")) -> pd.DataFrame:
    """A per-seed table as isoclr.fitting.evaluate returns it: three full-split seeds and one low-data row."""
    full = pd.DataFrame(
        {
            "train_fraction": 1.0,
            "seed": [0, 1, 2],
            "n_train": list(n_train),
            "n_test": 15,
            "alpha_edge": list(edges),
            **values,
        }
    )
    low = pd.DataFrame(
        {
            "train_fraction": 0.1,
            "seed": [0],
            "n_train": [7],
            "n_test": [15],
            "alpha_edge": [""],
            **{k: [0.0] for k in values},
        }
    )
    return pd.concat([full, low], ignore_index=True)


def result(values: dict[str, list[float]], **means) -> dict:
    out = {"per_seed": per_seed(values), "n": 100}
    for metric, seeds in values.items():
        out[metric] = float(np.nanmean(seeds))
        out[scores.ci_key(metric)] = [means.get("lo", 0.0), float("nan")]
    return out


def test_model_entry_takes_the_full_train_split_and_writes_nan_as_null():
    entry = model_entry(result({"auroc": [0.8, 0.9, 0.7], "auprc": [0.6, 0.7, 0.5]}), "classification")
    assert entry["auroc"] == pytest.approx(0.8) and entry["auroc_ci95"] == [0.0, None]
    assert entry["n"] == 100 and entry["n_train"] == pytest.approx(71.0) and entry["n_test"] == 15.0
    assert entry["seeds"] == 3 and entry["alpha_at_top"] == 1 and entry["alpha_at_bottom"] == 1
    assert "pearson_r" not in entry


def test_paired_entry_is_the_mean_of_per_seed_differences():
    a = result({"pearson_r": [0.5, 0.2, 0.4], "spearman_r": [0.1, 0.1, 0.1], "mse": [1.0, 2.0, 3.0]})
    b = result({"pearson_r": [0.3, 0.1, 0.1], "spearman_r": [0.1, 0.1, 0.1], "mse": [1.5, 2.5, 3.5]})
    entry = paired_entry(a, b, "regression")
    assert entry["pearson_r"] == pytest.approx(0.2) and entry["mse"] == pytest.approx(-0.5)
    assert entry["mse_ci95"] == [pytest.approx(-0.5), pytest.approx(-0.5)]  # the same shift on every seed
    assert entry["seeds"] == 3 and entry["paired"] is True
