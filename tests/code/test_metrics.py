"""Stage metrics without a gateway: nothing pushed, nothing fails; every metric documented; registry calls counted."""

from __future__ import annotations

import logging
import re
import socket

import pytest
from prometheus_client import generate_latest

from isoclr import metrics
from isoclr.config import Config
from isoclr.ingest import ValidateResult
from isoclr.registry import RegistryError, list_versions, register, verify
from tests.conftest import ROOT, tiny_params


def config(**metrics_cfg) -> Config:
    params = tiny_params()
    params["metrics"] = {**params.get("metrics", {}), **metrics_cfg}
    return Config.model_validate(params)


def exposition(run: metrics.StageRun) -> str:
    return generate_latest(run.registry).decode()


def test_without_a_gateway_nothing_is_pushed_and_the_stage_runs():
    cfg = config(pushgateway_url=None)
    seen = []

    @metrics.stage("validate")
    def validate(cfg):
        seen.append(metrics.current())
        return ValidateResult(n_transcripts=7, n_quarantined=2, by_rule={"too_long": 2})

    assert validate(cfg).n_transcripts == 7
    run = seen[0]
    assert run.push() is False  # no gateway configured: no request at all
    text = exposition(run)
    assert "isoclr_records_validated_total 7.0" in text
    assert 'isoclr_records_quarantined_total{rule="too_long"} 2.0' in text
    assert "isoclr_stage_success 1.0" in text and metrics.current() is None


def test_an_unreachable_gateway_is_a_warning_not_a_failure(caplog):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    cfg = config(pushgateway_url=f"http://127.0.0.1:{closed}", push_timeout_seconds=2)

    @metrics.stage("gate")
    def gate(cfg):
        return {"passed": True, "rules": []}

    with caplog.at_level(logging.WARNING, logger="isoclr.metrics"):
        assert gate(cfg) == {"passed": True, "rules": []}
    assert "could not push the gate metrics" in caplog.text and "the stage goes on" in caplog.text


def test_a_failing_stage_still_reports_and_raises():
    runs = []

    @metrics.stage("pairs")
    def pairs(cfg):
        runs.append(metrics.current())
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        pairs(config())
    assert "isoclr_stage_success 0.0" in exposition(runs[0])
    assert "isoclr_stage_duration_seconds" in exposition(runs[0])


def test_an_unexpected_result_costs_metrics_not_the_stage(caplog):
    @metrics.stage("probe")
    def probe(cfg):
        return ["not", "a", "dict"]

    assert probe(config()) == ["not", "a", "dict"]
    assert "could not read the probe result" in caplog.text


def test_registry_calls_are_counted_once_with_failures(tmp_path):
    uri = f"file://{tmp_path / 'registry'}"
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "encoder.pt").write_bytes(b"w")
    with metrics.stage_metrics(config(), "register") as run:
        register(uri, tmp_path / "model", {}, {})
        list_versions(uri)
        with pytest.raises(RegistryError):
            verify(uri, "nope")
    text = exposition(run)
    assert 'isoclr_registry_operations_total{operation="register"} 1.0' in text
    assert 'isoclr_registry_operations_total{operation="list"} 1.0' in text
    assert 'isoclr_registry_failures_total{operation="verify"} 1.0' in text
    assert 'isoclr_registry_failures_total{operation="list"}' not in text


def test_run_id_comes_from_the_pipeline_or_is_made_once(monkeypatch):
    monkeypatch.setenv(metrics.RUN_ID_ENV, "kfp-run-42")
    assert metrics.run_id() == "kfp-run-42"
    monkeypatch.delenv(metrics.RUN_ID_ENV)
    assert metrics.run_id() == metrics.run_id() and re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{6}", metrics.run_id())


def test_only_rank_zero_reports(monkeypatch):
    monkeypatch.setenv(metrics.RANK_ENV, "1")
    run = metrics.StageRun(config(pushgateway_url="http://127.0.0.1:9").metrics, "train")
    assert run.push() is False


def test_docs_list_every_metric_and_nothing_else():
    doc = (ROOT / "docs" / "metrics.md").read_text()
    documented = set(re.findall(r"^\| `(isoclr_[a-z_]+)`", doc, flags=re.M))
    assert documented == set(metrics.METRICS)
    for name, (kind, _, labels) in metrics.METRICS.items():
        row = next(line for line in doc.splitlines() if line.startswith(f"| `{name}`"))
        assert kind.__name__.lower() in row, name
        for label in labels:
            assert f"`{label}`" in row, (name, label)
        if kind.__name__ == "Counter":
            assert name.endswith("_total"), name
