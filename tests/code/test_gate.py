"""Gate decisions: pass, fail on a threshold, fail closed on a missing metric, no regression vs the champion."""

from __future__ import annotations

import json

from isoclr.config import Config, GateConfig, GateRule
from isoclr.gate import decide, run_gate
from tests.conftest import tiny_params

GATE = GateConfig(rules=[GateRule(task="halflife", min=0.05), GateRule(task="mrl", metric="spearman_r", min=0.1)])


def metrics(halflife: float = 0.3, mrl: float = 0.4, ci: tuple[float, float] | None = None) -> dict:
    ci = list(ci) if ci else None
    return {
        "halflife": {"isoclr": {"pearson_r": halflife, "pearson_r_ci95": ci}, "kmer": {"pearson_r": 0.9}},
        "mrl": {"isoclr": {"spearman_r": mrl, "spearman_r_ci95": ci}},
    }


def test_all_rules_met_passes():
    decision = decide(GATE, metrics())
    assert decision["passed"] is True
    assert [r["passed"] for r in decision["rules"]] == [True, True]
    assert decision["rules"][0] | {"reason": None} == {
        "kind": "threshold", "task": "halflife", "metric": "pearson_r", "min": 0.05, "value": 0.3,
        "passed": True, "reason": None,
    }


def test_one_rule_below_its_threshold_fails():
    decision = decide(GATE, metrics(mrl=0.05))
    assert decision["passed"] is False
    failed = [r for r in decision["rules"] if not r["passed"]]
    assert len(failed) == 1 and failed[0]["task"] == "mrl"
    assert "0.0500 < min 0.1" in failed[0]["reason"]


def test_missing_task_or_metric_fails_closed():
    only_halflife = {"halflife": metrics()["halflife"]}
    decision = decide(GATE, only_halflife)
    assert decision["passed"] is False
    mrl = decision["rules"][1]
    assert mrl["passed"] is False and mrl["reason"] == "metric missing" and mrl["value"] is None
    # a baseline's value is not the model's: halflife judged on the isoclr entry only
    decision = decide(GATE, {"halflife": {"kmer": {"pearson_r": 0.9}}, "mrl": metrics()["mrl"]})
    assert decision["rules"][0]["reason"] == "metric missing" and decision["passed"] is False


def test_metric_that_could_not_be_computed_fails():
    decision = decide(GATE, metrics(halflife=float("nan")))
    assert decision["passed"] is False and "not a number" in decision["rules"][0]["reason"]
    decision = decide(GATE, {**metrics(), "halflife": {"isoclr": {"pearson_r": None}}})
    assert decision["rules"][0]["reason"] == "metric missing"


def test_regression_below_the_champions_ci_fails():
    champion = {"version": "v1", "metrics": metrics(halflife=0.5, mrl=0.5, ci=(0.4, 0.6))}
    within_noise = decide(GATE, metrics(halflife=0.45, mrl=0.41), champion)
    assert within_noise["passed"] is True
    assert [r["kind"] for r in within_noise["rules"]] == ["threshold", "no_regression"] * 2
    worse = decide(GATE, metrics(halflife=0.3, mrl=0.45), champion)
    assert worse["passed"] is False
    failed = [r for r in worse["rules"] if not r["passed"]]
    assert len(failed) == 1 and failed[0]["kind"] == "no_regression" and "v1" in failed[0]["reason"]


def test_run_gate_writes_the_decision(tmp_path):
    cfg = Config.model_validate(tiny_params())
    cfg = cfg.model_copy(update={"registry": cfg.registry.model_copy(update={"uri": str(tmp_path / "registry")})})
    (tmp_path / "metrics.json").write_text(json.dumps({"halflife": {"isoclr": {"pearson_r": 0.2}}}))
    decision = run_gate(cfg, tmp_path / "metrics.json", tmp_path / "out" / "gate.json")
    assert json.loads((tmp_path / "out" / "gate.json").read_text()) == decision
    assert decision["passed"] is False  # mrl is missing
    assert decision["champion"] is None and decision["model"] == "isoclr"
    missing = run_gate(cfg, tmp_path / "nope.json", tmp_path / "gate2.json")
    assert missing["passed"] is False and "does not exist" in missing["rules"][0]["reason"]


def test_run_gate_compares_with_the_registry_champion(tmp_path):
    from isoclr.registry import register, set_champion

    uri = str(tmp_path / "registry")
    model = tmp_path / "model"
    model.mkdir()
    (model / "encoder.pt").write_bytes(b"w")
    champion_metrics = metrics(halflife=0.6, mrl=0.6, ci=(0.5, 0.7))
    set_champion(uri, version := register(uri, model, {}, {"metrics": champion_metrics}))
    cfg = Config.model_validate({**tiny_params(), "registry": {"uri": uri}})
    gate_cfg = cfg.gate.model_copy(update={"rules": list(GATE.rules)})
    cfg = cfg.model_copy(update={"gate": gate_cfg})
    (tmp_path / "metrics.json").write_text(json.dumps(metrics(halflife=0.3, mrl=0.55)))
    decision = run_gate(cfg, tmp_path / "metrics.json", tmp_path / "gate.json")
    assert decision["champion"] == version and decision["passed"] is False
    assert [r["task"] for r in decision["rules"] if not r["passed"]] == ["halflife"]
    unchecked = run_gate(cfg, tmp_path / "metrics.json", tmp_path / "gate.json", compare_champion=False)
    assert unchecked["passed"] is True
