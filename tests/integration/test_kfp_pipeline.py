"""The Kubeflow pipeline: committed YAML matches the code; the whole DAG runs in kfp's local runner."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import tiny_params


def test_compiled_yaml_matches_code(tmp_path):
    from pipelines.isoclr_pipeline import PACKAGE, compile_pipeline

    fresh = yaml.safe_load(compile_pipeline(tmp_path / "fresh.yaml").read_text())
    committed = yaml.safe_load(PACKAGE.read_text())
    assert fresh == committed, "pipelines/isoclr_pipeline.yaml is stale: run `make pipeline` and commit it"


def test_registration_runs_only_when_the_gate_passes_and_is_never_cached():
    from pipelines.isoclr_pipeline import PACKAGE

    spec = yaml.safe_load(PACKAGE.read_text())
    condition = spec["root"]["dag"]["tasks"]["condition-1"]
    assert "== 'passed'" in condition["triggerPolicy"]["condition"]
    register = spec["components"]["comp-condition-1"]["dag"]["tasks"]["register"]
    assert not register.get("cachingOptions", {}).get("enableCache", False)


@pytest.mark.slow
@pytest.mark.integration
def test_local_run_registers_a_model(tmp_path, sample_data, monkeypatch):
    import kfp.local

    from isoclr.registry import champion, list_versions
    from pipelines.isoclr_pipeline import isoclr_pipeline

    # Components run `python3` from PATH: make it this interpreter, with isoclr installed.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(tmp_path)
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "kfp"))
    registry = f"file://{tmp_path / 'registry'}"
    isoclr_pipeline(params=tiny_params(), data_dir=str(sample_data), registry_uri=registry)
    versions = list_versions(registry)
    assert len(versions) == 1
    assert champion(registry) == versions[0]["version"]
