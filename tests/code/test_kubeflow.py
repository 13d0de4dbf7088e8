"""isoclr.kubeflow: run parameters folded into the configuration, data versions, GPU shapes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from isoclr.config import Config, load
from isoclr.kubeflow import effective_params, node_selector, plan_run, resolve_data, trainjob_name, trainjob_shape
from tests.conftest import ROOT


@pytest.fixture
def params() -> dict:
    return load(ROOT / "params.yaml").to_dict()


def test_defaults_change_nothing(params):
    assert effective_params(params) == Config.model_validate(params).to_dict()


def test_run_parameters_override_their_keys(params):
    rules = [{"task": "halflife", "metric": "pearson_r", "min": 0.5}]
    out = effective_params(
        params,
        model_size="small",
        train_steps=7,
        gate_rules=rules,
        registry_uri="gs://models/isoclr",
        pushgateway_url="http://pg:9091",
    )
    cfg = Config.model_validate(out)
    assert cfg.model.stage_filters == [64, 128, 128, 256]  # the "small" preset replaces the model block
    assert cfg.train.steps == 7
    assert [r.model_dump(mode="json") for r in cfg.gate.rules] == rules
    assert cfg.registry.uri == "gs://models/isoclr"
    assert cfg.metrics.pushgateway_url == "http://pg:9091"
    assert params["train"]["steps"] != 7  # the input is not modified


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"model_size": "huge"}, "model_size"),
        ({"gate_rules": [{"task": "halflife", "min": "high"}]}, "min"),
        ({"gate_rules": [{"task": "nope", "min": 0}]}, "nope"),
    ],
)
def test_bad_run_parameters_fail_before_any_work(params, override, message):
    with pytest.raises(ValueError, match=message):
        effective_params(params, **override)


def test_data_versions_resolve_to_folders(params, tmp_path):
    cfg = Config.model_validate(params)
    assert resolve_data("", cfg, tmp_path) == ROOT.joinpath(cfg.data.dir).relative_to(ROOT)
    assert str(resolve_data("gs://isoclr-data/releases/2026-09", cfg, tmp_path)) == "/gcs/isoclr-data/releases/2026-09"
    with pytest.raises(ValueError, match="only gs://isoclr-data is mounted"):
        resolve_data("gs://elsewhere/x", cfg, tmp_path)
    assert resolve_data(str(tmp_path), cfg, tmp_path / "cache") == tmp_path


@pytest.mark.integration
def test_a_dvc_revision_is_fetched_once_with_dvc_get(params, tmp_path, sample_data, monkeypatch):
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")  # dvc, as in the image
    # This repository is the data repo; HEAD is a DVC revision whose data.dvc names the sample.
    cfg = Config.model_validate({**params, "kubeflow": {**params["kubeflow"], "data_repo": str(ROOT)}})
    calls = []

    def run(cmd, check):
        calls.append(cmd)
        return subprocess.run(cmd, check=check, capture_output=True)

    folder = resolve_data("HEAD", cfg, tmp_path, run=run)
    assert folder == tmp_path / "HEAD"
    assert (folder / "gencode_v28_chr1p_transcripts.fa").read_bytes() == (
        sample_data / "gencode_v28_chr1p_transcripts.fa"
    ).read_bytes()
    assert resolve_data("HEAD", cfg, tmp_path, run=run) == folder
    assert len(calls) == 1  # the second run reuses the fetched copy


def test_plan_without_the_pvc_has_no_run_folder(params):
    cfg = Config.model_validate(params)
    plan = plan_run(cfg, data_version="", gpu_type="nvidia-tesla-a100", run_id="r1")
    assert plan == {
        "data_dir": cfg.data.dir,
        "node_selector": {"cloud.google.com/gke-accelerator": "nvidia-tesla-a100"},
        "run_dir": "",
    }
    assert node_selector(cfg.kubeflow, "") == {"cloud.google.com/gke-accelerator": cfg.kubeflow.gpu_type}


@pytest.mark.parametrize(("gpus", "shape"), [(1, (1, 1)), (2, (1, 2)), (8, (1, 8)), (16, (2, 8))])
def test_gpus_fill_nodes_first(gpus, shape):
    assert trainjob_shape(gpus, 8) == shape


def test_gpu_counts_are_checked_in_params(params):
    with pytest.raises(ValueError, match="GPU counts must be one of"):
        Config.model_validate({**params, "kubeflow": {**params["kubeflow"], "gpu_count": 3}})


def test_trainjob_names_are_dns_labels():
    name = trainjob_name("3F2A_91c0-77d1-4e5b-a2b1-0f7c2d9e8a11")
    assert name.startswith("isoclr-") and len(name) <= 27 and name == name.lower() and name.replace("-", "").isalnum()
