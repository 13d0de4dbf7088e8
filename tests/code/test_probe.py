"""The probe stage: every model on the same splits, the champion passed in or read, metrics recorded."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from isoclr import stage
from isoclr.artifacts import Paths
from isoclr.config import Config
from isoclr.metrics import StageRun
from isoclr.probe import ProbeResult
from isoclr.store import StoreError
from tests.conftest import tiny_params
from tests.helpers import GO_SYNTH, save_encoder, synthetic_inputs

RECONSTRUCTION_SEED = 789  # the reconstruction stand-in: neither the candidate's nor random_init's seed


def stage_paths(root: Path, transcripts: Path, groups: Path, model: Path, cfg: Config) -> Paths:
    """The probe's paths: outputs under ``root / "outputs"``, the label files in ``root / "data"``, and a
    reconstruction-model stand-in (another random encoder) at the reconstruct stage's place."""
    paths = Paths.under(root / "outputs", data_dir=root / "data")
    paths = paths.replace(transcripts=transcripts, groups=groups, model=model)
    if not paths.reconstruction_model.exists():
        save_encoder(cfg, RECONSTRUCTION_SEED, paths.reconstruction_model)
    return paths


def probe_metric(meter: StageRun, task: str, model: str, metric: str) -> float | None:
    labels = {"task": task, "model": model, "metric": metric}
    return meter.registry.get_sample_value("isoclr_probe_metric", labels)


@pytest.mark.slow
def test_probe_stage_end_to_end(tmp_path):
    from isoclr.registry import register, set_champion

    params = tiny_params()
    next(t for t in params["probe"]["tasks"] if t["name"] == "utr3_stability")["max_rows"] = 60
    params["probe"]["seeds"] = 3
    params["probe"]["min_train_rows"] = 5  # the tiny tasks then have a 0.1 point too
    params["registry"] = {"uri": f"file://{tmp_path / 'registry'}"}
    cfg = Config.model_validate(params)
    t_path, g_path = synthetic_inputs(tmp_path)
    model_dir = save_encoder(cfg, 123, tmp_path / "model")  # not the random_init seed
    champion = save_encoder(cfg, 456, tmp_path / "champion")
    set_champion(cfg.registry.uri, version := register(cfg.registry.uri, champion, {}, {"metrics": {}}))
    paths = stage_paths(tmp_path, t_path, g_path, model_dir, cfg)
    result = stage.run("probe", cfg, paths, tracks=False)  # the champion: the registry's, read now
    out, metrics = paths.probe, result.metrics

    assert set(metrics) == {"halflife", "localisation", "mrl", "utr3_stability", "coding", "go_mf", "dm3loc"}
    models = {"isoclr", "reconstruction", "random_init", "kmer", "champion"}
    paired = {
        "isoclr_minus_reconstruction",
        "isoclr_minus_random_init",
        "isoclr_minus_kmer",
        "isoclr_minus_champion",
    }
    for task, entries in metrics.items():
        assert set(entries) == models | paired
        metric = "auroc" if task in ("localisation", "coding", "go_mf", "dm3loc") else "pearson_r"
        for name in models:
            assert {metric, f"{metric}_ci95", "n", "n_train", "n_test", "seeds"} <= set(entries[name])
            assert entries[name]["seeds"] == 3
        for name in paired:
            assert entries[name]["paired"] is True and len(entries[name][f"{metric}_ci95"]) == 2
        assert entries["champion"]["version"] == version
        # the paired difference is the mean of per-seed differences on the same splits
        difference = entries["isoclr"][metric] - entries["kmer"][metric]
        assert entries["isoclr_minus_kmer"][metric] == pytest.approx(difference)
        # the reconstruction arm is its own model (not a copy of the candidate or of random init)
        assert entries["reconstruction"][metric] not in (entries["isoclr"][metric], entries["random_init"][metric])
        reconstruction = entries["isoclr"][metric] - entries["reconstruction"][metric]
        assert entries["isoclr_minus_reconstruction"][metric] == pytest.approx(reconstruction)
    assert metrics["halflife"]["kmer"]["n"] == 48
    assert metrics["mrl"]["kmer"]["pearson_r"] > 0.5  # G content is a k-mer feature
    assert metrics["utr3_stability"]["kmer"]["n"] == 60
    assert metrics["mrl"]["isoclr"]["pearson_r"] != metrics["mrl"]["champion"]["pearson_r"]
    assert metrics["mrl"]["isoclr"]["n_test"] == metrics["mrl"]["kmer"]["n_test"]

    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert result.champion == version and result.champion_error is None
    assert result.task_types == {
        "halflife": "regression",
        "localisation": "classification",
        "mrl": "regression",
        "utr3_stability": "regression",
        "coding": "classification",
        "go_mf": "multilabel",
        "dm3loc": "multilabel",
    }
    # GO: the four level-2 terms of the synthetic ontology (tests.helpers.write_go_tables), one row per gene
    go_terms = [GO_SYNTH[k] for k in "CDEF"]
    assert set(metrics["go_mf"]["isoclr"]["terms"]) == set(go_terms) and metrics["go_mf"]["isoclr"]["n"] == 48
    per_seed = pd.read_csv(out / "per_seed.csv")
    assert set(per_seed["model"]) == models and set(per_seed["train_fraction"]) >= {1.0, 0.1}
    low = pd.read_csv(out / "low_data.csv")
    assert set(low["task"]) == set(metrics) and (low.groupby(["task", "model"]).size() >= 1).all()
    predictions = pd.read_csv(out / "predictions.csv")
    assert list(predictions.columns) == ["task", "model", "term", "measured", "predicted", "threshold"]
    go_rows = predictions[predictions["task"] == "go_mf"]
    assert set(go_rows["term"]) <= set(go_terms) and go_rows["threshold"].notna().all()
    assert predictions.loc[predictions["task"] == "mrl", "threshold"].isna().all()
    notes = json.loads((out / "tasks.json").read_text())
    assert notes["utr3_stability"]["dropped_na"] == 1
    assert notes["mrl"]["tracks"].startswith("sequence only") and notes["halflife"]["champion"] == version
    assert "0.005" in notes["halflife"]["skipped_fractions"]

    summary = (out / "table.md").read_text()
    for heading in (
        "## Results",
        "## Model vs baselines (paired, same splits)",
        "## Contrastive vs reconstruction",
        "## Low-data curves",
        "## Label sets",
        "## Multilabel tasks: labels",
        "## Remarks",
    ):
        assert heading in summary
    assert "isoclr - champion" in summary and "skipped" in summary and "by homology group" in summary
    section = summary.split("## Contrastive vs reconstruction")[1].split("\n## ")[0]
    for task, entries in metrics.items():  # one row per task: the primary metric's paired difference and a verdict
        (row,) = [line for line in section.splitlines() if line.startswith(f"| {task} ")]
        metric = "pearson_r" if result.task_types[task] == "regression" else "auroc"
        assert f"{entries['isoclr_minus_reconstruction'][metric]:+.3f}" in row
        assert row.rstrip(" |").endswith(("beats", "loses", "within noise"))
    assert result.table == summary and result.summary().startswith(summary)
    assert result.summary().endswith(f"report: {result.report}") and result.report.name == "report.html"
    meter = StageRun(cfg.metrics, "probe")
    result.record(meter)
    for model in models | paired:
        for metric in ("auroc", "auprc"):
            assert probe_metric(meter, "coding", model, metric) == metrics["coding"][model][metric]
        assert probe_metric(meter, "mrl", model, "mse") == metrics["mrl"][model]["mse"]
        assert probe_metric(meter, "mrl", model, "auroc") is None
        assert probe_metric(meter, "go_mf", model, "auroc") == metrics["go_mf"][model]["auroc"]
    report = (out / "report.html").read_text()
    assert report.count('src="data:image/png;base64,') == 3
    assert "http://" not in report and "https://" not in report  # self-contained
    for plot in ("predicted_vs_measured", "low_data", "model_vs_baselines"):
        assert (out / "plots" / f"{plot}.png").read_bytes()[:4] == b"\x89PNG"


def test_probe_reads_rows_from_the_track_store(tmp_path):
    """The probes embed annotated rows from the store: one built before a sequence changed is refused as stale."""
    from isoclr.store import write_store

    cfg = Config.model_validate(tiny_params())  # the first task, half-life, joins its rows to the annotation
    t_path, g_path = synthetic_inputs(tmp_path)
    model_dir = save_encoder(cfg, 123, tmp_path / "model")
    older = pd.read_parquet(t_path)
    older.loc[0, "seq"] += "ACG"
    older.to_parquet(tmp_path / "older.parquet")
    paths = stage_paths(tmp_path, t_path, g_path, model_dir, cfg)
    write_store(tmp_path / "older.parquet", paths.tracks)
    with pytest.raises(StoreError, match=rf"{older.loc[0, 'transcript_id']}.*stale"):
        stage.run("probe", cfg, paths, champion_version=None)
    assert not paths.probe.exists()  # a failed stage leaves no output


def test_the_result_records_every_metric_of_each_task_type_classification_included():
    cfg = Config.model_validate(tiny_params())
    metrics = {
        "coding": {
            "isoclr": {"auroc": 0.91, "auprc": 0.83, "auroc_ci95": [0.9, 0.92], "n": 40},
            "kmer": {"auroc": 0.7, "auprc": None},
            "isoclr_minus_kmer": {"auroc": 0.21, "auprc": 0.1, "paired": True},
        },
        "halflife": {
            "isoclr": {"pearson_r": 0.2, "spearman_r": 0.1, "mse": 1.5},
            "champion": {"pearson_r": 0.25, "spearman_r": 0.2, "mse": 1.4, "version": "v1"},
        },
    }
    result = ProbeResult(
        metrics=metrics,
        task_types={"coding": "classification", "halflife": "regression"},
        champion="v1",
        champion_error=None,
        table="# Linear probes\n",
        report=Path("report.html"),
    )
    meter = StageRun(cfg.metrics, "probe")
    result.record(meter)
    assert probe_metric(meter, "coding", "isoclr", "auroc") == 0.91
    assert probe_metric(meter, "coding", "isoclr", "auprc") == 0.83
    assert probe_metric(meter, "coding", "kmer", "auroc") == 0.7
    assert probe_metric(meter, "coding", "kmer", "auprc") is None  # null: not computed, not pushed as 0
    assert probe_metric(meter, "coding", "isoclr_minus_kmer", "auprc") == 0.1
    assert probe_metric(meter, "halflife", "champion", "mse") == 1.4
    assert probe_metric(meter, "coding", "isoclr", "n") is None
    assert result.flat_scores() == {
        "coding.isoclr.auroc": 0.91,
        "coding.isoclr.auprc": 0.83,
        "coding.kmer.auroc": 0.7,
        "coding.isoclr_minus_kmer.auroc": 0.21,
        "coding.isoclr_minus_kmer.auprc": 0.1,
        "halflife.isoclr.pearson_r": 0.2,
        "halflife.isoclr.spearman_r": 0.1,
        "halflife.isoclr.mse": 1.5,
        "halflife.champion.pearson_r": 0.25,
        "halflife.champion.spearman_r": 0.2,
        "halflife.champion.mse": 1.4,
    }
    assert result.summary() == "# Linear probes\n\nreport: report.html"


@pytest.mark.slow
def test_the_champion_version_passed_in_is_probed_and_the_registry_pointer_is_not_read(tmp_path):
    """A cached pipeline probe gets the champion as an input: that version is probed, whatever the pointer says."""
    from isoclr.registry import POINTER, register, set_champion

    params = tiny_params()
    params["probe"]["tasks"] = [t for t in params["probe"]["tasks"] if t["name"] in ("mrl", "coding")]
    params["gate"]["rules"] = [r for r in params["gate"]["rules"] if r["task"] == "mrl"]
    params["finetune"]["tasks"] = ["mrl"]
    params["registry"] = {"uri": f"file://{tmp_path / 'registry'}"}
    cfg = Config.model_validate(params)
    t_path, g_path = synthetic_inputs(tmp_path)
    model_dir = save_encoder(cfg, 123, tmp_path / "model")
    older = register(cfg.registry.uri, save_encoder(cfg, 456, tmp_path / "older"), {}, {"metrics": {}})
    same = register(cfg.registry.uri, model_dir, {}, {"metrics": {}})
    set_champion(cfg.registry.uri, same)
    (tmp_path / "registry" / POINTER).write_text("{not json")  # reading the pointer now would fail
    paths = stage_paths(tmp_path, t_path, g_path, model_dir, cfg)

    passed = stage.run("probe", cfg, paths, tracks=False, champion_version=older)
    assert passed.champion == older and passed.champion_error is None
    for entries in passed.metrics.values():
        assert entries["champion"]["version"] == older and "isoclr_minus_champion" in entries
    assert json.loads((paths.probe / "tasks.json").read_text())["mrl"]["champion"] == older
    assert passed.metrics["mrl"]["champion"]["pearson_r"] != passed.metrics["mrl"]["isoclr"]["pearson_r"]

    itself = stage.run("probe", cfg, paths, tracks=False, champion_version=same)  # the champion is this model
    for entries in itself.metrics.values():
        candidate, champion = entries["isoclr"], entries["champion"]
        assert {k: v for k, v in champion.items() if k != "version"} == candidate
    # the unchanged models score as before: the champion does not touch their splits
    assert itself.metrics["mrl"]["isoclr"] == passed.metrics["mrl"]["isoclr"]

    none = stage.run("probe", cfg, paths, tracks=False, champion_version="")  # a pipeline's "no champion"
    assert none.champion is None and none.champion_error is None
    assert all(
        "champion" not in entries and "isoclr_minus_champion" not in entries for entries in none.metrics.values()
    )
    assert "no champion" in (paths.probe / "table.md").read_text()

    read_now = stage.run("probe", cfg, paths, tracks=False)  # the default reads the (broken) pointer: fails closed
    assert read_now.champion is None and "champion.json is unreadable" in read_now.champion_error
