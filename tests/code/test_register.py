"""The register stage through the stage runner, with a file:// registry."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from isoclr import metrics, stage
from isoclr.artifacts import Paths
from isoclr.errors import MissingInputError
from isoclr.register import NOT_REGISTERED, RegisterResult
from isoclr.registry import champion, list_versions
from tests.helpers import make_model, registry_config, write_inputs


@pytest.fixture
def uri(tmp_path) -> str:
    return f"file://{tmp_path / 'registry'}"


def stage_inputs(root: Path, passed: bool | None) -> Paths:
    """The register stage's inputs where ``Paths.under(root)`` expects them; ``passed=None``: no decision."""
    paths = Paths.under(root / "outputs")
    make_model(paths.model, "m")
    _, decision = write_inputs(paths.probe, passed=bool(passed))
    if passed is None:
        decision.unlink()
    else:
        shutil.move(decision, paths.decision)
    return paths


def registered_gauge(result: RegisterResult, cfg) -> str:
    meter = metrics.StageRun(cfg.metrics, "register")
    result.record(meter)
    return next(
        line
        for line in generate_latest(meter.registry).decode().splitlines()
        if line.startswith("isoclr_model_registered")
    )


def test_a_failed_gate_registers_nothing(uri, tmp_path):
    cfg = registry_config(uri)
    paths = stage_inputs(tmp_path, passed=False)
    result = stage.run("register", cfg, paths)
    assert result.registered is False and result.summary() == NOT_REGISTERED
    written = json.loads(paths.registration.read_text())
    assert written == {"registered": False, "reason": result.reason, "registry": uri}
    assert written["reason"] == "not registered: gate failed (mrl pearson_r: metric missing)"
    assert list_versions(uri) == [] and champion(uri) is None
    assert registered_gauge(result, cfg).endswith(" 0.0")


def test_without_a_decision_nothing_is_registered(uri, tmp_path):
    paths = stage_inputs(tmp_path, passed=None)
    with pytest.raises(MissingInputError, match="gate.json does not exist: run `isoclr gate` first"):
        stage.run("register", registry_config(uri), paths)
    assert not paths.registration.exists() and list_versions(uri) == []


def test_a_passed_gate_registers_promotes_and_a_rerun_reuses_the_version(uri, tmp_path):
    cfg = registry_config(uri)
    paths = stage_inputs(tmp_path, passed=True)
    result = stage.run("register", cfg, paths)
    record = json.loads(paths.registration.read_text())
    assert record == {
        "registered": True,
        "version": result.version,
        "champion": result.version,
        "registry": uri,
        "note": "new version",
    }
    assert json.loads(result.summary()) == record
    assert champion(uri) == result.version
    assert registered_gauge(result, cfg).endswith(" 1.0")
    (entry,) = list_versions(uri)
    assert {"model/encoder.pt", "attachments/metrics.json", "attachments/decision.json"} <= set(entry["files"])
    metadata = entry["metadata"]
    assert {"provenance", "config", "metrics", "decision"} <= set(metadata)
    assert metadata["config"]["registry"]["uri"] == uri and metadata["decision"]["passed"] is True
    assert metadata["metrics"]["halflife"]["isoclr"]["pearson_r"] == 0.3
    assert not list(paths.registration.parent.glob(f"{stage.STAGING_PREFIX}*"))  # staging folder gone

    again = stage.run("register", cfg, paths)
    assert again.version == result.version and again.note.startswith("same model")
    assert len(list_versions(uri)) == 1
    (paths.model / "encoder.pt").write_bytes(b"retrained")
    new = stage.run("register", cfg, paths)
    assert new.version > result.version and champion(uri) == new.version


def test_missing_probe_metrics_is_a_missing_input(uri, tmp_path):
    paths = stage_inputs(tmp_path, passed=True)
    paths.probe_metrics.unlink()
    with pytest.raises(MissingInputError, match="metrics.json does not exist"):
        stage.run("register", registry_config(uri), paths)
    assert not paths.registration.exists() and list_versions(uri) == []
