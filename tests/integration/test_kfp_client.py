"""`isoclr pipeline submit|schedule` through kfp.Client against a local server speaking the KFP v2 REST routes."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from isoclr.cli import app
from isoclr.config import load
from tests.conftest import ROOT
from tests.integration.fake_api import serve

pytestmark = pytest.mark.filterwarnings("ignore:This client only works:FutureWarning")

EXPERIMENTS = "/apis/v2beta1/experiments"
RUNS = "/apis/v2beta1/runs"
RECURRING = "/apis/v2beta1/recurringruns"


@pytest.fixture
def kfp_api():
    created = {"experiment_id": "exp-1", "display_name": "isoclr", "namespace": "isoclr"}
    api, server = serve(
        {
            ("GET", "/apis/v2beta1/healthz"): (200, {"multi_user": True}),
            ("GET", EXPERIMENTS): (200, {}),  # no experiment yet: the client creates it
            ("POST", EXPERIMENTS): (200, created),
            ("POST", RUNS): lambda r: (200, {"run_id": "run-1", **r.body}),
            ("POST", RECURRING): lambda r: (200, {"recurring_run_id": "rr-1", **r.body}),
        }
    )
    yield api
    server.shutdown()


def _invoke(*args: str):
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_submit_creates_the_experiment_then_a_run_as_the_pipeline_service_account(kfp_api, monkeypatch):
    monkeypatch.chdir(ROOT)
    kf = load(ROOT / "params.yaml").kubeflow
    out = _invoke(
        "pipeline",
        "submit",
        "--host",
        kfp_api.url,
        "--arg",
        "gpu_count=4",
        "--arg",
        "data_version=v1.2",
        "--run-name",
        "try",
    )
    assert out.strip().endswith("run-1")
    [experiment] = kfp_api.sent("POST", EXPERIMENTS)
    assert experiment.body == {"display_name": kf.experiment, "namespace": kf.namespace}
    [run] = kfp_api.sent("POST", RUNS)
    assert run.body["experiment_id"] == "exp-1" and run.body["display_name"] == "try"
    assert run.body["service_account"] == kf.service_account
    assert run.body["runtime_config"]["parameters"] == {"gpu_count": 4, "data_version": "v1.2"}
    committed = list(yaml.safe_load_all((ROOT / "pipelines" / "isoclr_pipeline.yaml").read_text()))
    assert run.body["pipeline_spec"]["pipeline_spec"] == committed[0]  # the compiled YAML, inline
    assert run.body["pipeline_spec"]["platform_spec"] == committed[1]  # kfp-kubernetes settings travel with it


def test_schedule_creates_a_weekly_recurring_run_one_at_a_time_without_catch_up(kfp_api, monkeypatch):
    monkeypatch.chdir(ROOT)
    kf = load(ROOT / "params.yaml").kubeflow
    out = _invoke("pipeline", "schedule", "--host", kfp_api.url)
    assert out.strip().endswith("rr-1")
    [recurring] = kfp_api.sent("POST", RECURRING)
    body = recurring.body
    assert body["trigger"] == {"cron_schedule": {"cron": kf.schedule_cron}}
    assert len(kf.schedule_cron.split()) == 6 and kf.schedule_cron.split()[-1] != "*"  # weekly: one day of the week
    assert body["max_concurrency"] == "1" or body["max_concurrency"] == 1
    assert body["no_catchup"] is True and body["mode"] == "ENABLE"
    assert body["service_account"] == kf.service_account and body["experiment_id"] == "exp-1"
    # Retraining must not be served from the cache: every task's caching is switched off.
    tasks = body["pipeline_spec"]["pipeline_spec"]["root"]["dag"]["tasks"]
    assert all(not t.get("cachingOptions", {}).get("enableCache", False) for t in tasks.values())


def test_a_malformed_run_argument_is_refused_before_anything_is_sent(kfp_api, monkeypatch):
    monkeypatch.chdir(ROOT)
    result = CliRunner().invoke(app, ["pipeline", "submit", "--host", kfp_api.url, "--arg", "gpu_count"])
    assert result.exit_code == 1 and "NAME=VALUE" in result.output
    assert not kfp_api.sent("POST", RUNS)


def test_compile_writes_the_pipeline_yaml(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "p.yaml"
    code = (
        "from pathlib import Path; from pipelines.isoclr_pipeline import compile_pipeline; "
        f"compile_pipeline(Path({str(out)!r}))"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
    assert list(yaml.safe_load_all(out.read_text())) == list(
        yaml.safe_load_all((ROOT / "pipelines" / "isoclr_pipeline.yaml").read_text())
    )
