"""Stage metrics pushed to a real Pushgateway (Debian prometheus-pushgateway) and read back from its /metrics."""

from __future__ import annotations

import secrets
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from isoclr import metrics, stage
from isoclr.artifacts import Paths
from tests.helpers import metrics_config as config
from tests.helpers import tiny_config, train_paths, write_inputs, write_tables

pytestmark = pytest.mark.integration


def scrape(url: str) -> str:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as reply:
        return reply.read().decode()


def samples(text: str, **match) -> dict[tuple, float]:
    """(name, sorted non-grouping labels) -> value, for the samples whose labels include ``match``."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if all(sample.labels.get(k) == v for k, v in match.items()):
                labels = tuple(
                    sorted((k, v) for k, v in sample.labels.items() if k not in ("job", "run_id", "stage", "instance"))
                )
                out[(sample.name, labels)] = sample.value
    return out


@pytest.fixture
def run_id(monkeypatch) -> str:
    value = f"test-{secrets.token_hex(4)}"
    monkeypatch.setenv(metrics.RUN_ID_ENV, value)
    return value


@pytest.mark.slow
def test_every_stage_pushes_its_metrics_when_run_for_real(pushgateway, run_id, sample_data, tmp_path):
    """The whole pipeline on the sample (tiny sizes) through the one stage runner: each stage's own metrics
    arrive under job / run_id / stage, the probe's classification metrics included."""
    from isoclr import stage
    from isoclr.artifacts import STAGES, Paths
    from isoclr.config import Config
    from tests.conftest import tiny_params

    params = tiny_params()
    params["metrics"] = {"pushgateway_url": pushgateway, "job": "isoclr-test"}
    params["registry"] = {"uri": f"file://{tmp_path / 'registry'}"}
    cfg = Config.model_validate(params)
    paths = Paths.under(tmp_path / "outputs", data_dir=sample_data)
    for name in STAGES:
        stage.run(name, cfg, paths)

    text = scrape(pushgateway)
    got = {name: samples(text, job="isoclr-test", run_id=run_id, stage=name) for name in STAGES}
    for name in STAGES:
        assert got[name][("isoclr_stage_success", ())] == 1, name
        assert got[name][("isoclr_stage_duration_seconds", ())] > 0, name
    assert got["validate"][("isoclr_records_validated_total", ())] > 1000
    assert (
        got["encode"][("isoclr_track_store_transcripts", ())] == got["validate"][("isoclr_records_validated_total", ())]
    )
    assert got["pairs"][("isoclr_homology_groups", ())] > 100
    assert got["train"][("isoclr_train_loss", ())] > 0
    assert (
        got["reconstruct"][("isoclr_train_loss", ())] > 0 and ("isoclr_train_masked_accuracy", ()) in got["reconstruct"]
    )
    probe = got["probe"]
    for task, metric in [("halflife", "pearson_r"), ("mrl", "mse"), ("coding", "auroc"), ("coding", "auprc")]:
        for model in ("isoclr", "reconstruction", "random_init", "kmer", "isoclr_minus_reconstruction"):
            key = ("isoclr_probe_metric", (("metric", metric), ("model", model), ("task", task)))
            assert key in probe, key
    assert got["gate"][("isoclr_gate_passed", ())] == 1
    assert got["register"][("isoclr_model_registered", ())] == 1


def test_gate_and_register_stages_push_verdict_and_registry_counts(pushgateway, run_id, tmp_path):
    cfg = config(pushgateway_url=pushgateway)
    cfg = cfg.model_copy(
        update={"registry": cfg.registry.model_copy(update={"uri": f"file://{tmp_path / 'registry'}"})}
    )
    paths = Paths.under(tmp_path)
    write_inputs(paths.probe, passed=True)  # halflife only: the mrl rule fails closed
    assert stage.run("gate", cfg, paths).passed is False

    model = tmp_path / "model"
    model.mkdir()
    (model / "encoder.pt").write_bytes(b"weights")
    _, passed = write_inputs(paths.probe, passed=True)
    passed.replace(paths.decision)
    stage.run("register", cfg, paths.replace(model=model))

    text = scrape(pushgateway)
    gate = samples(text, run_id=run_id, stage="gate")
    assert gate[("isoclr_gate_passed", ())] == 0
    assert gate[("isoclr_gate_rule_passed", (("kind", "threshold"), ("metric", "pearson_r"), ("task", "mrl")))] == 0
    assert (
        gate[("isoclr_gate_rule_passed", (("kind", "threshold"), ("metric", "pearson_r"), ("task", "halflife")))] == 1
    )
    assert ("isoclr_registry_operations_total", (("operation", "champion"),)) in gate  # the no-regression read
    register = samples(text, run_id=run_id, stage="register")
    assert register[("isoclr_model_registered", ())] == 1
    assert register[("isoclr_registry_operations_total", (("operation", "register"),))] == 1
    assert register[("isoclr_registry_operations_total", (("operation", "set_champion"),))] == 1
    assert ("isoclr_registry_failures_total", (("operation", "register"),)) not in register


def test_training_progress_is_pushed_every_n_steps_and_served(pushgateway, run_id):
    cfg = config(pushgateway_url=pushgateway, push_every_steps=2, http_port=0)
    with metrics.stage_metrics(cfg, "train") as run:
        report = metrics.training_reporter(cfg)
        served = f"http://127.0.0.1:{run.http_port}"
        rows = [{"step": s, "loss": 5.0 - s, "lr": 1e-3 * (s + 1), "samples_per_s": 100.0 + s} for s in range(3)]
        report(rows[0])
        assert samples(scrape(pushgateway), run_id=run_id, stage="train") == {}  # not yet: every 2 steps
        report(rows[1])
        pushed = samples(scrape(pushgateway), run_id=run_id, stage="train")
        assert pushed[("isoclr_train_step", ())] == 1 and pushed[("isoclr_train_loss", ())] == 4.0
        assert pushed[("isoclr_train_learning_rate", ())] == pytest.approx(2e-3)
        report(rows[2])
        live = samples(scrape(served))  # /metrics of the training process itself
        assert live[("isoclr_train_step", ())] == 2 and live[("isoclr_train_samples_per_second", ())] == 102.0
    final = samples(scrape(pushgateway), run_id=run_id, stage="train")
    assert final[("isoclr_train_step", ())] == 2 and final[("isoclr_stage_success", ())] == 1
    with pytest.raises(OSError):
        scrape(served)  # the server stops with the stage


def test_without_a_configured_gateway_nothing_arrives(pushgateway, run_id):
    with metrics.stage_metrics(config(pushgateway_url=None), "gate") as meter:
        meter.set("isoclr_gate_passed", 1)
    assert samples(scrape(pushgateway), run_id=run_id) == {}


ALERT_TEST = """
rule_files: [rules.yml]
evaluation_interval: 1m
tests:
{cases}
"""
# Three runs' gate groups as the Pushgateway exposes them: verdict + push time; r2 at 5 min, r3 at 10 min.
ALERT_CASE = """
  - interval: 1m
    input_series:
      - {{series: 'isoclr_gate_passed{{job="isoclr",stage="gate",run_id="r1"}}', values: '{r1}x20'}}
      - {{series: 'push_time_seconds{{job="isoclr",stage="gate",run_id="r1"}}', values: '0x20'}}
      - {{series: 'isoclr_gate_passed{{job="isoclr",stage="gate",run_id="r2"}}', values: '_x4 {r2}x15'}}
      - {{series: 'push_time_seconds{{job="isoclr",stage="gate",run_id="r2"}}', values: '_x4 300x15'}}
      - {{series: 'isoclr_gate_passed{{job="isoclr",stage="gate",run_id="r3"}}', values: '_x9 {r3}x10'}}
      - {{series: 'push_time_seconds{{job="isoclr",stage="gate",run_id="r3"}}', values: '_x9 600x10'}}
    alert_rule_test:
      - {{eval_time: 7m, alertname: IsoclrGateFailedTwiceInARow, exp_alerts: {at7}}}
      - {{eval_time: 12m, alertname: IsoclrGateFailedTwiceInARow, exp_alerts: {at12}}}
"""


def test_the_documented_gate_alert_fires_after_two_failed_runs_only(tmp_path):
    import re
    import subprocess

    from tests.conftest import ROOT, require_tool

    promtool = require_tool("promtool", "prometheus")
    doc = (ROOT / "docs" / "metrics.md").read_text()
    (tmp_path / "rules.yml").write_text(re.search(r"```yaml\n(.*?)```", doc, re.S).group(1))
    doc_alert = re.search(r"summary: \"(.*?)\"\n\s+description: \"(.*?)\"", doc)
    annotations = f'{{summary: "{doc_alert[1]}", description: "{doc_alert[2]}"}}'
    fired = f"[{{exp_labels: {{severity: warning}}, exp_annotations: {annotations}}}]"
    cases = [
        ALERT_CASE.format(
            r1=1, r2=0, r3=0, at7="[]", at12=fired
        ),  # passed, failed, failed: fires at the second failure
        ALERT_CASE.format(r1=0, r2=0, r3=1, at7=fired, at12="[]"),  # failed, failed, passed: stops
        ALERT_CASE.format(r1=0, r2=1, r3=0, at7="[]", at12="[]"),  # failures not in a row: silent
    ]
    (tmp_path / "test.yml").write_text(ALERT_TEST.format(cases="".join(cases)))
    result = subprocess.run([promtool, "test", "rules", "test.yml"], cwd=tmp_path, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_real_training_pushes_while_it_runs(pushgateway, run_id, tmp_path):
    base = tiny_config(steps=4)
    metrics_cfg = base.metrics.model_copy(update={"pushgateway_url": pushgateway, "push_every_steps": 2})
    cfg = base.model_copy(update={"metrics": metrics_cfg})
    during: dict[int, dict] = {}

    def look(row: dict) -> None:  # runs after the step's metrics were handled
        during[row["step"]] = samples(scrape(pushgateway), run_id=run_id, stage="train")

    paths = train_paths(tmp_path, write_tables(tmp_path))
    result = stage.run("train", cfg, paths, tracks=False, progress=False, on_step=look)
    assert during[0] == {}  # nothing before the first push_every_steps steps
    assert during[1][("isoclr_train_step", ())] == 1 and during[1][("isoclr_train_loss", ())] > 0
    assert during[2][("isoclr_train_step", ())] == 1  # step 2 is not a push step
    final = samples(scrape(pushgateway), run_id=run_id, stage="train")
    assert final[("isoclr_train_step", ())] == 3 and final[("isoclr_stage_success", ())] == 1
    assert final[("isoclr_train_samples_per_second", ())] > 0 and result.as_dict()["steps"] == 4
