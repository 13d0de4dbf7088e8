"""Multilabel probes end to end through fitting.evaluate, the metrics.json entries, and the ClassificationMetrics
numbers (ROC points, confusion matrix at the val-chosen threshold) against sklearn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, confusion_matrix, roc_auc_score, roc_curve

from isoclr import classification, scores
from isoclr.config import ProbeConfig, ProbeTask
from isoclr.fitting import ProbeSplitError, evaluate, model_entry, paired_entry, prediction_frame
from isoclr.report import label_table, markdown_report
from isoclr.statistics import mean_ci

LABELS = ["GO:1", "GO:2", "GO:3", "GO:never"]


def probe_cfg(**update) -> ProbeConfig:
    task = ProbeTask(name="go", source="go", join="gene_id", type="multilabel")
    return ProbeConfig(tasks=[task], **{"seeds": 4, "train_fractions": [1.0, 0.1], **update})


def planted(n: int = 300, seed: int = 0):
    """Three labels a linear probe can read from the model's features (plus noise columns); one label no row holds."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, len(LABELS))) < [0.4, 0.25, 0.15, 0.0]).astype(float)
    model = np.hstack([1.5 * y[:, :3] + rng.normal(size=(n, 3)), rng.normal(size=(n, 6))])
    noise = rng.normal(size=model.shape)
    groups = (np.arange(n) // 3).astype(str)  # three rows a group, kept on one side of each split
    return y, model, noise, groups


def test_planted_labels_beat_noise_and_one_class_label_is_skipped_not_averaged():
    y, model, noise, groups = planted()
    cfg = probe_cfg()
    good = evaluate(model, y, groups, cfg, "multilabel", LABELS)
    bad = evaluate(noise, y, groups, cfg, "multilabel", LABELS)
    assert good["auroc"] > 0.75 and good["auprc"] > 0.5
    assert abs(bad["auroc"] - 0.5) < 0.1
    entry = model_entry(good, "multilabel")
    assert set(entry[scores.TERMS]) == set(LABELS)
    assert entry[scores.TERMS]["GO:never"]["seeds"] == 0 and entry[scores.TERMS]["GO:never"]["auroc"] is None
    assert "one class in the train rows" in entry[scores.SKIPPED_TERMS]["GO:never"]
    assert "GO:1" not in entry[scores.SKIPPED_TERMS]
    full = good["per_seed"].query("train_fraction == 1.0")
    assert (full["n_terms_scored"] == 3).all()  # the one-class label is left out, never averaged in as 0.5
    per_term = good["per_term"].query("train_fraction == 1.0 and term != 'GO:never'")
    macro = per_term.groupby("seed")["auroc"].mean()
    assert np.allclose(macro.to_numpy(), full.set_index("seed").loc[macro.index, "auroc"].to_numpy())
    assert np.isclose(entry["auroc"], mean_ci(full["auroc"])[0])
    paired = paired_entry(good, bad, "multilabel")
    assert paired["auroc"] > 0.2 and paired["auroc_ci95"][0] > 0 and paired["paired"] is True


def test_seed0_per_term_scores_match_sklearn_on_the_stored_predictions():
    y, model, _, groups = planted(seed=1)
    result = evaluate(model, y, groups, probe_cfg(seeds=2, train_fractions=[1.0]), "multilabel", LABELS)
    pred = result["predictions"]
    measured, predicted = np.array(pred["measured"]), np.array(pred["predicted"])
    assert np.array_equal(measured, y[pred["index"]])
    seed0 = result["per_term"].query("seed == 0").set_index("term")
    for j, label in enumerate(LABELS[:3]):
        assert np.isclose(seed0.loc[label, "auroc"], roc_auc_score(measured[:, j], predicted[:, j]))
        assert np.isclose(seed0.loc[label, "auprc"], average_precision_score(measured[:, j], predicted[:, j]))
    assert np.isnan(predicted[:, 3]).all() and pred["threshold"][3] is None


def test_a_label_with_one_class_in_the_test_rows_is_skipped_with_that_reason():
    y, model, _, groups = planted(seed=2)
    rare = np.zeros(len(y))
    rare[:6] = 1  # two groups: in some seeds neither reaches the test rows
    y = np.column_stack([y[:, :3], rare])
    result = evaluate(model, y, groups, probe_cfg(seeds=10, train_fractions=[1.0]), "multilabel", LABELS)
    reasons = result["per_term"].query("term == 'GO:never'")["skipped"]
    assert (
        reasons.str.contains("one class in the test rows") | reasons.str.contains("train rows") | (reasons == "")
    ).all()
    assert reasons.str.contains("one class in the test rows").any()
    skipped = model_entry(result, "multilabel")[scores.SKIPPED_TERMS]["GO:never"]
    assert skipped.startswith(f"skipped in {int((reasons != '').sum())} of 10 seeds")


def test_every_label_one_class_cannot_be_probed():
    y, model, _, groups = planted()
    with pytest.raises(ProbeSplitError, match="every label holds one class"):
        evaluate(model, y[:, [3]], groups, probe_cfg(), "multilabel", ["GO:never"])


def test_classification_view_matches_sklearn_roc_and_confusion_matrix():
    y, model, _, groups = planted(seed=3)
    result = evaluate(model, y, groups, probe_cfg(seeds=2, train_fractions=[1.0]), "multilabel", LABELS)
    frame = prediction_frame("go", "isoclr", result["predictions"], LABELS)
    assert sorted(frame["term"].unique()) == LABELS[:3]  # the unfitted label has no predictions
    view = classification.view(frame, "go", "isoclr")
    fpr, tpr, thresholds = roc_curve(frame["measured"], frame["predicted"])
    assert np.allclose(view.fpr, fpr) and np.allclose(view.tpr, tpr)
    assert np.allclose(view.thresholds[1:], thresholds[1:]) and np.isfinite(view.thresholds).all()
    called = (frame["predicted"] >= frame["threshold"]).astype(int)
    assert view.matrix == confusion_matrix(frame["measured"], called).tolist()
    assert sum(map(sum, view.matrix)) == len(frame) == view.n and view.pooled_terms == 3
    assert view.thresholds_used == frame.groupby("term")["threshold"].first().to_dict()


def test_threshold_is_chosen_on_val_by_youden_j():
    y_val = np.array([0, 0, 0, 1, 1, 1])
    p_val = np.array([0.1, 0.2, 0.6, 0.4, 0.7, 0.9])
    # thresholds 0.7: TPR 2/3, FPR 0 (J 0.67); 0.4: TPR 1, FPR 1/3 (J 0.67): the larger wins the tie
    assert classification.choose_threshold(y_val, p_val) == pytest.approx(0.7)
    assert classification.choose_threshold(np.zeros(3), np.array([0.1, 0.2, 0.3])) == classification.DEFAULT_THRESHOLD
    fpr, tpr, _ = roc_curve(y_val, p_val)
    assert max(tpr - fpr) == pytest.approx(2 / 3)


def test_classification_task_predictions_and_view():
    rng = np.random.default_rng(4)
    y = (rng.random(300) < 0.3).astype(float)
    x = np.column_stack([y + rng.normal(size=300), rng.normal(size=(300, 4))])
    groups = np.arange(300).astype(str)
    cfg = probe_cfg(seeds=2, train_fractions=[1.0])
    result = evaluate(x, y, groups, cfg, "classification")
    frame = prediction_frame("c", "isoclr", result["predictions"])
    assert (frame["term"] == "").all() and frame["threshold"].nunique() == 1
    view = classification.view(frame, "c", "isoclr")
    assert view.matrix == confusion_matrix(frame["measured"], frame["predicted"] >= frame["threshold"]).tolist()
    regression = prediction_frame("r", "isoclr", {"measured": [1.0, 2.0], "predicted": [1.5, 1.0]})
    assert regression["threshold"].isna().all()
    with pytest.raises(classification.NoPredictionsError, match="no classification predictions"):
        classification.view(pd.concat([frame, regression]), "r", "isoclr")


def test_report_lists_terms_with_names_counts_scores_and_skips():
    y, model, noise, groups = planted()
    cfg = probe_cfg(seeds=3, train_fractions=[1.0])
    results = {m: evaluate(f, y, groups, cfg, "multilabel", LABELS) for m, f in (("isoclr", model), ("kmer", noise))}
    metrics = {"go": {m: model_entry(r, "multilabel") for m, r in results.items()}}
    metrics["go"]["isoclr_minus_kmer"] = paired_entry(results["isoclr"], results["kmer"], "multilabel")
    terms = [
        {"go_id": g, "term": f"name {g}", "level": 2, "n_genes": 100 - i, "share": 0.1} for i, g in enumerate(LABELS)
    ]
    notes = {
        "go": {
            "task": "go",
            "type": "multilabel",
            "labels": LABELS,
            "terms": terms,
            "n_positive": {g: int(c) for g, c in zip(LABELS, y.sum(axis=0), strict=True)},
            "n_label_rows": 1000,
            "selection": "go: the 4 most common MF terms at level 2 held by 0.01..0.5 of 1000 labelled genes",
            "go": {
                "ontology": "MF",
                "n": 4,
                "level": 2,
                "min_share": 0.01,
                "max_share": 0.5,
                "drop_iea": False,
                "genes_matched": 300,
                "matched_ensembl": 280,
                "matched_symbol": 20,
            },
        }
    }
    table = label_table(metrics, notes)
    assert table["label"].tolist() == LABELS and table["name"].tolist() == [f"name {g}" for g in LABELS]
    assert table["genes (genome-wide)"].tolist() == [100, 99, 98, 97]
    assert table.set_index("label").loc["GO:never", "isoclr auroc"] == "n/a"
    first = metrics["go"]["isoclr"][scores.TERMS]["GO:1"]
    assert table.set_index("label").loc["GO:1", "isoclr auroc"].startswith(f"{first['auroc']:.3f}")
    low = pd.DataFrame(columns=["task", "model", "train_fraction", "n_train", "metric", "mean", "lo", "hi", "seeds"])
    text = markdown_report(metrics, notes, low, cfg)
    assert "## Multilabel tasks: labels" in text and "name GO:2" in text
    assert "go: label GO:never not in the macro mean: skipped in 3 of 3 seeds" in text
    assert "the 4 most common MF terms at level 2" in text
