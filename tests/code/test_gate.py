"""Gate decisions: pass; fail on a threshold, on beating random init, on regression vs the champion; fail closed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from isoclr import stage
from isoclr.artifacts import Paths
from isoclr.config import Config, GateConfig, GateRule
from isoclr.errors import MissingInputError
from isoclr.gate import UNKNOWN, GateResult, decide, markdown
from isoclr.metrics import StageRun
from tests.conftest import tiny_params

GATE = GateConfig(
    rules=[GateRule(task="halflife", min=0.05), GateRule(task="mrl", metric="spearman_r", min=0.1)],
    max_regression=0.02,
    min_gain_over_random_init=0.0,
)
CHAMPION = "v1"


def task_metrics(
    value: float,
    vs_random: float = 0.1,
    vs_champion: float | None = None,
    metric: str = "pearson_r",
    champion: str = CHAMPION,
) -> dict:
    """One task's entries as isoclr.probe writes them (paired differences as isoclr_minus_<baseline>)."""
    out = {
        "isoclr": {metric: value, f"{metric}_ci95": [value - 0.05, value + 0.05]},
        "random_init": {metric: value - vs_random},
        "kmer": {metric: 0.9},
        "isoclr_minus_random_init": {metric: vs_random, f"{metric}_ci95": [vs_random - 0.03, vs_random + 0.03]},
    }
    if vs_champion is not None:
        out["champion"] = {metric: value - vs_champion, "version": champion}
        out["isoclr_minus_champion"] = {metric: vs_champion, f"{metric}_ci95": [vs_champion - 0.01, vs_champion + 0.01]}
    return out


def metrics(halflife: float = 0.3, mrl: float = 0.4, **paired) -> dict:
    return {"halflife": task_metrics(halflife, **paired), "mrl": task_metrics(mrl, metric="spearman_r", **paired)}


def failed(decision: dict) -> list[dict]:
    return [r for r in decision["rules"] if not r["passed"]]


def test_all_rules_met_passes_and_lists_every_rule_with_its_number():
    decision = decide(GATE, metrics(vs_champion=0.0), CHAMPION)
    assert decision["passed"] is True
    assert [(r["kind"], r["task"]) for r in decision["rules"]] == [
        ("threshold", "halflife"),
        ("beats_random_init", "halflife"),
        ("no_regression", "halflife"),
        ("threshold", "mrl"),
        ("beats_random_init", "mrl"),
        ("no_regression", "mrl"),
    ]
    threshold, vs_random, vs_champion = decision["rules"][:3]
    assert threshold | {"reason": None} == {
        "kind": "threshold",
        "task": "halflife",
        "metric": "pearson_r",
        "value": 0.3,
        "min": 0.05,
        "ci95": [0.25, 0.35],
        "passed": True,
        "reason": None,
    }
    assert vs_random["value"] == 0.1 and vs_random["min"] == 0.0 and vs_random["ci95"] == [0.07, 0.13]
    assert vs_champion["value"] == 0.0 and vs_champion["min"] == -0.02 and CHAMPION in vs_champion["reason"]
    table = markdown(decision | {"champion": CHAMPION})
    assert table.startswith("# Gate: passed") and table.count("| PASS |") == 6


def test_first_model_passes_without_a_champion():
    decision = decide(GATE, metrics(), None)
    assert decision["passed"] is True
    assert [r["reason"] for r in decision["rules"] if r["kind"] == "no_regression"] == [
        "no champion yet: nothing to regress from"
    ] * 2


def test_one_metric_below_its_threshold_fails():
    decision = decide(GATE, metrics(mrl=0.05), None)
    assert decision["passed"] is False
    (rule,) = failed(decision)
    assert (rule["kind"], rule["task"]) == ("threshold", "mrl") and "0.0500 < min 0.1" in rule["reason"]


def test_regression_against_the_champion_beyond_the_margin_fails():
    within_margin = decide(GATE, metrics(vs_champion=-0.015), CHAMPION)
    assert within_margin["passed"] is True
    worse = decide(GATE, metrics(vs_champion=-0.05), CHAMPION)
    assert worse["passed"] is False
    assert {(r["kind"], r["task"]) for r in failed(worse)} == {("no_regression", "halflife"), ("no_regression", "mrl")}
    assert "-0.0500 < (regression) -0.02" in failed(worse)[0]["reason"]


def test_not_beating_random_init_fails():
    decision = decide(GATE, metrics(vs_random=-0.01), None)
    assert decision["passed"] is False
    assert {r["kind"] for r in failed(decision)} == {"beats_random_init"}
    tie = decide(GATE, metrics(vs_random=0.0), None)  # equal is not better
    assert tie["passed"] is False


@pytest.mark.parametrize(
    "broken, reason",
    [
        (lambda m: m.pop("mrl"), "metric missing"),
        (lambda m: m["halflife"].pop("isoclr"), "metric missing"),
        (lambda m: m["halflife"]["isoclr"].update(pearson_r=None), "metric missing"),
        (lambda m: m["halflife"]["isoclr"].update(pearson_r=float("nan")), "metric missing"),
        (lambda m: m["halflife"].pop("isoclr_minus_random_init"), "metric missing"),
        (lambda m: m["halflife"].pop("isoclr_minus_champion"), "metric missing"),
        (lambda m: m["halflife"]["champion"].update(version="v0"), "was not probed"),
    ],
)
def test_a_missing_number_fails_closed_with_a_reason(broken, reason):
    m = metrics(vs_champion=0.0)
    broken(m)
    decision = decide(GATE, m, CHAMPION)
    assert decision["passed"] is False
    assert any(reason in r["reason"] for r in failed(decision))


def test_a_baseline_value_is_not_the_models():
    decision = decide(GATE, {"halflife": {"kmer": {"pearson_r": 0.9}}, "mrl": metrics()["mrl"]}, None)
    assert decision["passed"] is False
    assert failed(decision)[0]["reason"].startswith("metric missing: metrics.json has no finite halflife.isoclr")


def test_unreadable_champion_fails_closed():
    decision = decide(GATE, metrics(vs_champion=0.0), UNKNOWN)
    assert decision["passed"] is False
    assert {r["kind"] for r in failed(decision)} == {"no_regression"}


def test_no_rules_never_passes():
    assert decide(GATE.model_copy(update={"rules": []}), metrics(), None)["passed"] is False


def _cfg(uri: str) -> Config:
    cfg = Config.model_validate({**tiny_params(), "registry": {"uri": uri}})
    return cfg.model_copy(update={"gate": GATE})


def gate_stage(cfg: Config, root: Path, scores: dict | None, **options) -> GateResult:
    """The gate stage through the runner, on a hand-made metrics.json (None: no metrics file) under ``root``."""
    paths = Paths.under(root)
    if scores is not None:
        paths.probe.mkdir(parents=True, exist_ok=True)
        paths.probe_metrics.write_text(json.dumps(scores))
    return stage.run("gate", cfg, paths, **options)


def test_the_gate_stage_writes_the_decision_and_fails_closed_on_missing_input(tmp_path):
    cfg = _cfg(f"file://{tmp_path / 'registry'}")
    result = gate_stage(cfg, tmp_path, {"halflife": task_metrics(0.2)}, champion_version="")  # no champion yet
    decision = result.decision
    assert json.loads(Paths.under(tmp_path).decision.read_text()) == decision
    assert decision["passed"] is False and result.passed is False  # mrl is missing
    assert decision["champion"] is None and decision["model"] == "isoclr"
    assert decision["settings"] == {"max_regression": 0.02, "min_gain_over_random_init": 0.0}
    assert (
        result.failed_rules()[0] == "threshold mrl spearman_r: metric missing: metrics.json has no finite "
        "mrl.isoclr.spearman_r"
    )
    assert result.markdown() == markdown(decision)
    lines = result.summary().splitlines()
    assert lines[0] == "PASS  threshold         halflife pearson_r: 0.2000 >= min 0.05"
    assert lines[-1] == "gate: failed" and len(lines) == len(decision["rules"]) + 1
    (tmp_path / "empty" / "probe").mkdir(parents=True)  # a probe folder without its metrics.json
    missing = gate_stage(cfg, tmp_path / "empty", None, champion_version="")
    assert missing.passed is False and "does not exist" in missing.decision["rules"][0]["reason"]
    with pytest.raises(MissingInputError, match="run `isoclr probe` first"):
        stage.run("gate", cfg, Paths.under(tmp_path / "nothing"))


def test_the_result_records_the_verdict_and_each_rule(tmp_path):
    cfg = _cfg(f"file://{tmp_path / 'registry'}")
    scores = {"halflife": task_metrics(0.2), "mrl": task_metrics(0.05, metric="spearman_r")}
    result = gate_stage(cfg, tmp_path, scores, champion_version="")
    meter = StageRun(cfg.metrics, "gate")
    result.record(meter)

    def rule(kind: str, task: str, metric: str) -> float | None:
        labels = {"kind": kind, "task": task, "metric": metric}
        return meter.registry.get_sample_value("isoclr_gate_rule_passed", labels)

    assert meter.registry.get_sample_value("isoclr_gate_passed") == 0
    assert rule("threshold", "halflife", "pearson_r") == 1 and rule("threshold", "mrl", "spearman_r") == 0
    assert rule("beats_random_init", "mrl", "spearman_r") == 1 and rule("no_regression", "mrl", "spearman_r") == 1


def test_the_gate_holds_the_model_to_the_registry_champion(tmp_path):
    from isoclr.registry import register, set_champion

    uri = f"file://{tmp_path / 'registry'}"
    model = tmp_path / "model"
    model.mkdir()
    (model / "encoder.pt").write_bytes(b"w")
    set_champion(uri, version := register(uri, model, {}, {"metrics": {}}))
    cfg = _cfg(uri)

    decision = gate_stage(cfg, tmp_path, metrics(vs_champion=-0.1, champion=version)).decision
    assert decision["champion"] == version and decision["passed"] is False
    assert {r["kind"] for r in failed(decision)} == {"no_regression"}

    assert gate_stage(cfg, tmp_path, metrics(vs_champion=0.01, champion=version)).passed is True
    # metrics probed before a champion existed: the champion is not compared, so the gate fails closed
    stale = gate_stage(cfg, tmp_path, metrics()).decision
    assert stale["passed"] is False and "rerun the probe stage" in failed(stale)[0]["reason"]
    unchecked = gate_stage(cfg, tmp_path, metrics(), compare_champion=False).decision
    assert unchecked["passed"] is True
    assert {r["reason"] for r in unchecked["rules"] if r["kind"] == "no_regression"} == {
        "champion comparison switched off"
    }


def test_a_champion_version_passed_in_replaces_reading_the_registry(tmp_path):
    from isoclr.registry import POINTER

    (tmp_path / "registry").mkdir()
    (tmp_path / "registry" / POINTER).write_text("{not json")  # reading the pointer would fail the gate
    cfg = _cfg(f"file://{tmp_path / 'registry'}")
    passed = gate_stage(cfg, tmp_path, metrics(vs_champion=0.01, champion="v7"), champion_version="v7")
    assert passed.passed is True and passed.decision["champion"] == "v7"
    moved = gate_stage(cfg, tmp_path, metrics(vs_champion=0.01, champion="v7"), champion_version="v8")
    assert moved.passed is False and "champion v8 was not probed" in moved.failed_rules()[0]
    first = gate_stage(cfg, tmp_path, metrics(), champion_version="")  # "": no champion yet
    assert first.passed is True and first.decision["champion"] is None


def test_unreadable_registry_fails_closed(tmp_path):
    from isoclr.registry import POINTER

    (tmp_path / "registry").mkdir()
    (tmp_path / "registry" / POINTER).write_text('{"version": "ghost"}')  # points at no version
    cfg = _cfg(f"file://{tmp_path / 'registry'}")
    decision = gate_stage(cfg, tmp_path, metrics()).decision
    assert decision["passed"] is False
    assert any("champion unreadable" in r["reason"] for r in failed(decision))


def test_a_gate_metric_must_fit_its_task_type():
    params = tiny_params()
    params["gate"]["rules"].append({"task": "coding", "metric": "pearson_r", "min": 0.5})
    with pytest.raises(ValueError, match="pearson_r is not a metric of a classification task"):
        Config.model_validate(params)
    params["gate"]["rules"][-1]["metric"] = "auroc"
    assert Config.model_validate(params).gate.rules[-1].metric == "auroc"


def test_a_rule_on_a_multilabel_task_judges_its_macro_mean():
    gate = GateConfig(rules=[GateRule(task="go_mf", metric="auroc", min=0.6)])
    entry = task_metrics(0.65, vs_random=0.04, metric="auroc")
    entry["isoclr"]["terms"] = {"GO:1": {"auroc": 0.2, "seeds": 10}}  # per-term values do not stand in for the macro
    decision = decide(gate, {"go_mf": entry}, None)
    assert decision["passed"] is True and decision["rules"][0]["value"] == 0.65
    low = decide(gate, {"go_mf": task_metrics(0.55, metric="auroc")}, None)
    assert [r["kind"] for r in failed(low)] == ["threshold"]
    untrained = decide(gate, {"go_mf": task_metrics(0.65, vs_random=-0.01, metric="auroc")}, None)
    assert [r["kind"] for r in failed(untrained)] == ["beats_random_init"]
    missing = decide(gate, {"go_mf": {"isoclr": {"auroc": None}}}, None)
    assert failed(missing)[0]["reason"].startswith("metric missing")


def test_a_multilabel_rule_takes_auroc_or_auprc_only():
    params = tiny_params()
    params["probe"]["tasks"].append({"name": "go_test", "source": "go", "join": "gene_id", "type": "multilabel"})
    params["gate"]["rules"] = [{"task": "go_test", "metric": "auprc", "min": 0.3}]
    assert Config.model_validate(params).gate.rules[0].metric == "auprc"
    params["gate"]["rules"] = [{"task": "go_test", "metric": "pearson_r", "min": 0.3}]
    with pytest.raises(ValueError, match="not a metric of a multilabel task"):
        Config.model_validate(params)
