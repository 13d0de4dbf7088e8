"""The `gate` stage: may this model be registered?

Three rules per gated (task, metric) in params.yaml, all failing closed (a value
that is missing or not a number fails, with the reason written down):

* ``threshold``: the model's mean over the probe seeds reaches ``min``;
* ``beats_random_init``: the model beats the same architecture randomly
  initialised — the mean paired difference (same splits, seed by seed) exceeds
  ``gate.min_gain_over_random_init``; pretraining that taught nothing fails here;
* ``no_regression``: when the registry has a champion, the probe
  stage scored it on the same splits; the mean paired difference model -
  champion must not fall below ``-gate.max_regression``. Pairing removes the
  split-to-split noise both share, so a small margin is safe where comparing two
  unpaired means would not be. A champion the probe did not score (registry
  unreadable, champion moved since) fails the rule: rerun the probe.

A failed gate is a result, not an error: the decision file lists every rule with
its number, bound, 95% CI and verdict, and the register stage reads it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from isoclr import champion as champions
from isoclr import scores
from isoclr.artifacts import Paths
from isoclr.config import Config, GateConfig
from isoclr.metrics import StageRun
from isoclr.scores import CANDIDATE, CHAMPION, RANDOM_INIT

# A champion whose id cannot be known (registry unreadable): distinct from "no champion" (None).
UNKNOWN = object()
# Champion comparison switched off by the caller (``compare_champion=False``).
NOT_COMPARED = object()


def _record(kind: str, task: str, metric: str, value, bound, passed: bool, reason: str, ci=None) -> dict:
    return {
        "kind": kind,
        "task": task,
        "metric": metric,
        "value": value,
        "min": bound,
        "ci95": ci,
        "passed": passed,
        "reason": reason,
    }


def _threshold(task: str, metric: str, floor: float, by_model: dict) -> dict:
    entry = by_model.get(CANDIDATE)
    value = scores.number(entry, metric)
    if value is None:
        return _record(
            "threshold",
            task,
            metric,
            None,
            floor,
            False,
            f"metric missing: metrics.json has no finite {task}.{CANDIDATE}.{metric}",
        )
    ok = value >= floor
    return _record(
        "threshold",
        task,
        metric,
        value,
        floor,
        ok,
        f"{value:.4f} {'>=' if ok else '<'} min {floor:g}",
        scores.ci(entry, metric),
    )


def _beats_random(task: str, metric: str, margin: float, by_model: dict) -> dict:
    entry = by_model.get(scores.paired_key(RANDOM_INIT))
    value = scores.number(entry, metric)
    if value is None:
        return _record(
            "beats_random_init",
            task,
            metric,
            None,
            margin,
            False,
            f"metric missing: no paired {CANDIDATE} - {RANDOM_INIT} difference for {task}.{metric}",
        )
    ok = value > margin
    return _record(
        "beats_random_init",
        task,
        metric,
        value,
        margin,
        ok,
        f"paired {CANDIDATE} - {RANDOM_INIT} = {value:+.4f} {'>' if ok else '<='} {margin:g}",
        scores.ci(entry, metric),
    )


def _no_regression(task: str, metric: str, margin: float, by_model: dict, champion) -> dict:
    floor = -margin
    if champion is None:
        return _record("no_regression", task, metric, None, floor, True, "no champion yet: nothing to regress from")
    if champion is NOT_COMPARED:
        return _record("no_regression", task, metric, None, floor, True, "champion comparison switched off")
    if champion is UNKNOWN:
        return _record("no_regression", task, metric, None, floor, False, "champion unknown: registry unreadable")
    probed = (by_model.get(CHAMPION) or {}).get(scores.VERSION)
    if probed != champion:
        return _record(
            "no_regression",
            task,
            metric,
            None,
            floor,
            False,
            f"champion {champion} was not probed on these splits (the probe scored "
            f"{probed or 'no champion'}): rerun the probe stage",
        )
    entry = by_model.get(scores.paired_key(CHAMPION))
    value = scores.number(entry, metric)
    if value is None:
        return _record(
            "no_regression",
            task,
            metric,
            None,
            floor,
            False,
            f"metric missing: no paired {CANDIDATE} - champion difference for {task}.{metric}",
        )
    ok = value >= floor
    verdict = ">=" if ok else "< (regression)"
    return _record(
        "no_regression",
        task,
        metric,
        value,
        floor,
        ok,
        f"paired {CANDIDATE} - champion {champion} = {value:+.4f} {verdict} -{margin:g}",
        scores.ci(entry, metric),
    )


def decide(gate: GateConfig, metrics: dict, champion=None) -> dict:
    """Apply every rule to the probe metrics; ``passed`` only if there are rules and all pass.

    Args:
        metrics: metrics.json of the probe stage
            (``{task: {model | isoclr_minus_<baseline>: {metric, metric_ci95}}}``).
        champion: the registry's champion version id; None when there is none,
            :data:`UNKNOWN` when the registry could not be read, :data:`NOT_COMPARED` when the
            comparison is switched off.
    """
    rules = []
    for rule in gate.rules:
        by_model = metrics.get(rule.task) or {}
        rules.append(_threshold(rule.task, rule.metric, rule.min, by_model))
        rules.append(_beats_random(rule.task, rule.metric, gate.min_gain_over_random_init, by_model))
        rules.append(_no_regression(rule.task, rule.metric, gate.max_regression, by_model, champion))
    return {"passed": bool(rules) and all(r["passed"] for r in rules), "rules": rules}


def markdown(decision: dict) -> str:
    """The decision as a Markdown table, for the Kubeflow UI and `isoclr summary`."""
    lines = [
        f"# Gate: {'passed' if decision['passed'] else 'FAILED'}",
        "",
        f"Model `{decision.get('model', CANDIDATE)}`; champion: {decision.get('champion') or 'none'}.",
        "",
        "| verdict | rule | task | metric | value | bound | 95% CI | reason |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in decision["rules"]:
        value = "n/a" if r.get("value") is None else f"{r['value']:.4f}"
        bound = "-" if r.get("min") is None else f"{r['min']:g}"
        ci = r.get("ci95") or [None, None]
        ci_text = "-" if None in ci else f"[{ci[0]:.4f}, {ci[1]:.4f}]"
        lines.append(
            f"| {'PASS' if r['passed'] else 'FAIL'} | {r['kind']} | {r['task']} | {r['metric']} | "
            f"{value} | {bound} | {ci_text} | {r['reason']} |"
        )
    return "\n".join(lines) + "\n"


def _champion(compare_champion: bool, given: champions.Given, uri: str):
    """(champion, error): the version the model is held to, or NOT_COMPARED / UNKNOWN (with the reason)."""
    if not compare_champion:
        return NOT_COMPARED, None
    try:
        return champions.chosen(given, uri), None
    except Exception as err:  # noqa: BLE001 - whatever the backend raises: the gate fails closed and says why
        return UNKNOWN, f"{type(err).__name__}: {err}"


@dataclass(frozen=True)
class GateResult:
    """The gate's decision (as written to the decision file)."""

    passed: bool
    decision: dict

    def failed_rules(self) -> list[str]:
        """One line per failed rule: kind, task, metric and the reason."""
        rules = self.decision["rules"]
        return [f"{r['kind']} {r['task']} {r['metric']}: {r['reason']}" for r in rules if not r["passed"]]

    def markdown(self) -> str:
        return markdown(self.decision)

    def record(self, meter: StageRun) -> None:
        """``isoclr_gate_passed``; ``isoclr_gate_rule_passed`` per (kind, task, metric), 0 if any such rule failed."""
        meter.set("isoclr_gate_passed", int(self.passed))
        verdicts: dict[tuple, int] = {}
        for rule in self.decision["rules"]:
            key = (rule["kind"], rule["task"], rule["metric"])
            verdicts[key] = min(verdicts.get(key, 1), int(bool(rule["passed"])))
        for (kind, task, metric), passed in verdicts.items():
            meter.set("isoclr_gate_rule_passed", passed, kind=kind, task=task, metric=metric)

    def summary(self) -> str:
        lines = [
            f"{'PASS' if r['passed'] else 'FAIL'}  {r['kind']:<17} {r['task']} {r['metric']}: {r['reason']}"
            for r in self.decision["rules"]
        ]
        return "\n".join([*lines, f"gate: {'passed' if self.passed else 'failed'}"])


def run(
    cfg: Config, paths: Paths, *, compare_champion: bool = True, champion_version: champions.Given = champions.RESOLVE
) -> GateResult:
    """Read ``paths.probe``'s metrics.json, decide, write the decision JSON to ``paths.decision``.

    With ``compare_champion`` the model is held to the champion: ``champion_version`` (a version
    id; None or "" for none) or, by default, the champion of ``cfg.registry.uri`` read now. A
    registry that cannot be read fails the gate (closed) with the reason.
    """
    metrics_path = Path(paths.probe_metrics)
    metrics = scores.read(metrics_path) if metrics_path.exists() else {}
    champion, champion_error = _champion(compare_champion, champion_version, cfg.registry.uri)
    decision = decide(cfg.gate, metrics, champion)
    if not metrics_path.exists():
        decision["rules"].insert(
            0, _record("input", "*", "*", None, None, False, f"metrics file {metrics_path} does not exist")
        )
        decision["passed"] = False
    if champion_error is not None:
        decision["rules"].append(
            _record("no_regression", "*", "*", None, None, False, f"champion unreadable: {champion_error}")
        )
        decision["passed"] = False
    decision.update(
        model=CANDIDATE,
        metrics_file=str(metrics_path),
        champion=None if champion in (UNKNOWN, NOT_COMPARED) else champion,
        settings={
            "max_regression": cfg.gate.max_regression,
            "min_gain_over_random_init": cfg.gate.min_gain_over_random_init,
        },
    )
    decision_path = Path(paths.decision)
    decision_path.parent.mkdir(parents=True, exist_ok=True)
    decision_path.write_text(json.dumps(decision, indent=2) + "\n")
    return GateResult(passed=decision["passed"], decision=decision)
