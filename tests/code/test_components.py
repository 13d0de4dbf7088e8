"""Components called directly (`component.python_func`) with artifacts on tmp_path: no cluster needed."""

import json

import pytest
import yaml
from kfp import dsl

from components.gate.component import gate
from components.register.component import register
from isoclr.registry import champion
from isoclr.store import TrackStore, write_store
from tests.conftest import ROOT


def _params(min_halflife: float) -> dict:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["gate"]["rules"] = [{"task": "halflife", "metric": "pearson_r", "min": min_halflife}]
    return params


def _artifact(kind, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    return kind(name=path.name, uri=str(path), metadata={})


def _results(tmp_path, r: float):
    results = _artifact(dsl.Dataset, tmp_path / "results")
    (tmp_path / "results").mkdir(exist_ok=True)
    halflife = {"isoclr": {"pearson_r": r}, "isoclr_minus_random_init": {"pearson_r": 0.1}}
    (tmp_path / "results" / "metrics.json").write_text(json.dumps({"halflife": halflife}))
    return results


def test_gate_component_returns_the_verdict_and_writes_the_decision(tmp_path):
    decision = _artifact(dsl.Artifact, tmp_path / "decision.json")
    verdict = _artifact(dsl.Markdown, tmp_path / "verdict.md")
    registry = f"file://{tmp_path / 'registry'}"
    run = dict(registry_uri=registry, decision=decision, verdict=verdict)
    assert gate.python_func(params=_params(0.5), results=_results(tmp_path, 0.6), **run) == "passed"
    assert json.loads((tmp_path / "decision.json").read_text())["passed"] is True
    assert decision.metadata["passed"] is True and decision.metadata["failed_rules"] == []
    assert (tmp_path / "verdict.md").read_text().startswith("# Gate: passed")
    assert gate.python_func(params=_params(0.7), results=_results(tmp_path, 0.6), **run) == "failed"
    assert decision.metadata["failed_rules"] == ["threshold halflife pearson_r: 0.6000 < min 0.7"]
    assert "| FAIL | threshold | halflife |" in (tmp_path / "verdict.md").read_text()


@pytest.mark.slow
def test_probe_component_hands_report_summary_and_metrics_to_the_ui(tmp_path):
    from components.probe.component import probe
    from tests.conftest import tiny_params
    from tests.helpers import save_encoder, synthetic_inputs

    params = tiny_params()
    params["probe"]["tasks"] = [t for t in params["probe"]["tasks"] if t["name"] in ("halflife", "mrl")]  # suffice here
    params["gate"]["rules"] = [r for r in params["gate"]["rules"] if r["task"] in ("halflife", "mrl")]
    from isoclr.config import Config

    model = save_encoder(Config.model_validate(params), 1, tmp_path / "model")
    reconstruction = save_encoder(Config.model_validate(params), 2, tmp_path / "reconstruction")
    t_path, g_path = synthetic_inputs(tmp_path)
    write_store(t_path, tmp_path / "tracks")
    metrics = _artifact(dsl.Metrics, tmp_path / "metrics.json")
    probe.python_func(
        params=params,
        data_dir=str(tmp_path / "data"),
        champion_version="",
        transcripts=_artifact(dsl.Dataset, t_path),
        groups=_artifact(dsl.Dataset, g_path),
        tracks=_artifact(dsl.Dataset, tmp_path / "tracks"),
        model=_artifact(dsl.Model, model),
        reconstruction=_artifact(dsl.Model, reconstruction),
        results=_artifact(dsl.Dataset, tmp_path / "results"),
        metrics=metrics,
        report=_artifact(dsl.HTML, tmp_path / "report.html"),
        summary=_artifact(dsl.Markdown, tmp_path / "summary.md"),
    )
    assert "data:image/png;base64," in (tmp_path / "report.html").read_text()
    assert (tmp_path / "summary.md").read_text().startswith("# Linear probes")
    logged = metrics.metadata
    assert "mrl.isoclr.pearson_r" in logged and "mrl.isoclr_minus_random_init.pearson_r" in logged
    assert "mrl.reconstruction.pearson_r" in logged and "mrl.isoclr_minus_reconstruction.pearson_r" in logged
    assert (tmp_path / "results" / "metrics.json").exists()


def test_register_component_writes_a_version_and_champion(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "encoder.pt").write_bytes(b"weights")
    (tmp_path / "decision.json").write_text(json.dumps({"passed": True, "rules": []}))
    registry = f"file://{tmp_path / 'registry'}"
    version = register.python_func(
        params=_params(0.0),
        registry_uri=registry,
        model=_artifact(dsl.Model, model),
        results=_results(tmp_path, 0.6),
        decision=_artifact(dsl.Artifact, tmp_path / "decision.json"),
        record=_artifact(dsl.Artifact, tmp_path / "record.json"),
    )
    assert version and champion(registry) == version


def test_encode_component_writes_the_track_store_folder(tmp_path):
    from components.encode.component import encode
    from isoclr import tracks as track_codec
    from tests.helpers import synthetic_annotation

    transcripts, _ = synthetic_annotation()
    transcripts.to_parquet(tmp_path / "transcripts.parquet")
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["encode"]["shard_bytes"] = 2_000  # several shards from ~40 short transcripts
    store = _artifact(dsl.Dataset, tmp_path / "out" / "tracks")
    encode.python_func(
        params=params, transcripts=_artifact(dsl.Dataset, tmp_path / "transcripts.parquet"), tracks=store
    )
    opened = TrackStore(tmp_path / "out" / "tracks")
    assert opened.ids == transcripts["transcript_id"].tolist()
    assert store.metadata["n_transcripts"] == len(transcripts) and store.metadata["shards"] > 1
    row = transcripts.iloc[7]
    assert (opened.tracks(row["transcript_id"]) == track_codec.encode_row(row)).all()


@pytest.mark.slow
def test_finetune_component_hands_curves_and_metrics_to_the_ui(tmp_path):
    from components.finetune.component import finetune
    from isoclr.config import Config
    from tests.conftest import tiny_params
    from tests.helpers import save_encoder, synthetic_inputs

    params = tiny_params()
    params["finetune"].update(tasks=["mrl"], train_fractions=[1.0, 0.5])
    model = save_encoder(Config.model_validate(params), 1, tmp_path / "model")
    t_path, g_path = synthetic_inputs(tmp_path)
    write_store(t_path, tmp_path / "tracks")
    metrics = _artifact(dsl.Metrics, tmp_path / "metrics.json")
    finetune.python_func(
        params=params,
        data_dir=str(tmp_path / "data"),
        transcripts=_artifact(dsl.Dataset, t_path),
        groups=_artifact(dsl.Dataset, g_path),
        tracks=_artifact(dsl.Dataset, tmp_path / "tracks"),
        model=_artifact(dsl.Model, model),
        results=_artifact(dsl.Dataset, tmp_path / "results"),
        metrics=metrics,
        curves=_artifact(dsl.HTML, tmp_path / "curves.html"),
    )
    assert (tmp_path / "curves.html").read_text().count("data:image/png;base64,") == 1
    logged = metrics.metadata
    assert {"mrl.pretrained.1.0.pearson_r", "mrl.scratch.0.5.mse", "mrl.pretrained_minus_scratch.1.0.pearson_r"} <= set(
        logged
    )
    assert (tmp_path / "results" / "finetune.json").exists() and (tmp_path / "results" / "plots" / "mrl.png").exists()


def test_reconstruct_component_trains_the_baseline_on_the_global_batch_and_checkpoints_in_its_own_folder(tmp_path):
    from components.reconstruct.component import reconstruct
    from isoclr.artifacts import LAST_CHECKPOINT, MODEL_META
    from tests.helpers import tiny_config, write_tables, write_track_store

    tables = write_tables(tmp_path)
    params = tiny_config(steps=2, checkpoint_every=1).to_dict()
    model = _artifact(dsl.Model, tmp_path / "out" / "model")
    reconstruct.python_func(
        params=params,
        gpu_count=2,  # the contrastive run's GPUs: one process here trains on their global batch
        transcripts=_artifact(dsl.Dataset, tables[0]),
        groups=_artifact(dsl.Dataset, tables[1]),
        tracks=_artifact(dsl.Dataset, write_track_store(tables)),
        model=model,
        log=_artifact(dsl.Dataset, tmp_path / "out" / "log.csv"),
        checkpoint_dir=str(tmp_path / "run"),
    )
    meta = json.loads((tmp_path / "out" / "model" / MODEL_META).read_text())
    assert meta["objective"] == "reconstruction"
    assert meta["train_config"]["batch_genes"] == 2 * params["train"]["batch_genes"]
    assert (tmp_path / "run" / "reconstruction" / "checkpoints" / LAST_CHECKPOINT).is_file()
    assert not (tmp_path / "run" / LAST_CHECKPOINT).exists()  # the contrastive trainer's checkpoint stays its own
    assert "masked_accuracy" in (tmp_path / "out" / "log.csv").read_text().splitlines()[0]
    assert model.metadata["objective"] == "reconstruction" and model.metadata["steps"] == 2
