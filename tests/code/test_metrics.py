"""Stage metrics without a gateway: nothing pushed, nothing fails; every metric documented; registry calls counted."""

from __future__ import annotations

import logging
import re
import socket

import pytest
from prometheus_client import generate_latest

from isoclr import metrics
from isoclr.registry import RegistryError, list_versions, register, verify
from isoclr.validate import ValidateResult
from tests.conftest import ROOT
from tests.helpers import metrics_config as config


def exposition(run: metrics.StageRun) -> str:
    return generate_latest(run.registry).decode()


def test_without_a_gateway_nothing_is_pushed_and_the_stage_runs():
    with metrics.stage_metrics(config(pushgateway_url=None), "validate") as run:
        assert metrics.current() is run
        ValidateResult(n_transcripts=7, n_quarantined=2, by_rule={"too_long": 2}).record(run)
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
    with caplog.at_level(logging.WARNING, logger="isoclr.metrics"), metrics.stage_metrics(cfg, "gate") as run:
        run.set("isoclr_gate_passed", 1)
    assert "could not push the gate metrics" in caplog.text and "the stage goes on" in caplog.text


def test_a_failing_stage_still_reports_and_raises():
    with pytest.raises(ValueError, match="bad input"), metrics.stage_metrics(config(), "pairs") as run:
        raise ValueError("bad input")
    assert "isoclr_stage_success 0.0" in exposition(run)
    assert "isoclr_stage_duration_seconds" in exposition(run)


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
