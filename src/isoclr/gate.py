"""The `gate` stage: may this model be registered?

Two kinds of rule, both failing closed (a value that is missing or not a
number fails, with the reason written down):

* ``threshold``: every rule under ``gate.rules`` in params.yaml — the model's
  mean over seeds must reach ``min``;
* ``no_regression`` (DESIGN §1): when the registry has a champion, the
  candidate's mean must not fall below the lower bound of the champion's 95%
  CI for the same task and metric. Comparing with the CI rather than the mean
  keeps seed noise from failing a retrain of an unchanged model half the time.

A failed gate is a result, not an error: the decision file says which rule
failed and why, and the register stage reads it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from isoclr.config import Config, GateConfig

MODEL = "isoclr"  # the model the gate judges; the baselines are reported, not gated


def _value(metrics: dict, task: str, metric: str, model: str) -> float | None:
    """The model's mean for (task, metric), or None where metrics.json lacks it."""
    value = metrics.get(task, {}).get(model, {}).get(metric)
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def decide(gate_cfg: GateConfig, metrics: dict, champion: dict | None = None, model: str = MODEL) -> dict:
    """Apply the gate rules to probe metrics.

    Args:
        metrics: metrics.json of the probe stage, ``{task: {model: {metric: mean, metric_ci95: [lo, hi]}}}``.
        champion: ``{"version": id, "metrics": <its metrics.json>}`` to check for regressions, or None.
    Returns:
        ``{"passed": bool, "rules": [{"task", "metric", "min", "value", "passed", "reason", "kind"}]}``;
        passed only if there is at least one rule and every rule passed.
    """
    rules = []
    for rule in gate_cfg.rules:
        value = _value(metrics, rule.task, rule.metric, model)
        record = {"kind": "threshold", "task": rule.task, "metric": rule.metric, "min": rule.min, "value": value}
        if value is None:
            record.update(passed=False, reason="metric missing")
        elif not math.isfinite(value):
            record.update(value=None, passed=False, reason="metric is not a number (could not be computed)")
        elif value >= rule.min:
            record.update(passed=True, reason=f"{value:.4f} >= min {rule.min:g}")
        else:
            record.update(passed=False, reason=f"{value:.4f} < min {rule.min:g}")
        rules.append(record)
        if champion is not None:
            rules.append(_no_regression(rule.task, rule.metric, value, champion, model))
    return {"passed": bool(rules) and all(r["passed"] for r in rules), "rules": rules}


def _no_regression(task: str, metric: str, value: float | None, champion: dict, model: str) -> dict:
    version = champion.get("version")
    ci = champion.get("metrics", {}).get(task, {}).get(model, {}).get(f"{metric}_ci95") or [None, None]
    floor = ci[0]
    record = {"kind": "no_regression", "task": task, "metric": metric, "min": floor, "value": value}
    if floor is None or not math.isfinite(float(floor)):
        # The champion was never measured on this (a task added since): nothing to regress from.
        record.update(passed=True, reason=f"champion {version} has no CI for this metric: not compared")
    elif value is None or not math.isfinite(value):
        record.update(passed=False, reason="metric missing")
    elif value >= floor:
        record.update(passed=True, reason=f"{value:.4f} >= champion {version} CI lower bound {floor:.4f}")
    else:
        record.update(passed=False, reason=f"regression: {value:.4f} < champion {version} CI lower bound {floor:.4f}")
    return record


def champion_metrics(uri: str) -> dict | None:
    """The current champion's id and probe metrics from the registry; None when there is no champion."""
    from isoclr import registry

    version = registry.champion(uri)
    if version is None:
        return None
    metadata = registry.version_metadata(uri, version)
    return {"version": version, "metrics": metadata.get("metrics", {})}


def run_gate(cfg: Config, metrics_path: Path, decision_path: Path, compare_champion: bool = True) -> dict:
    """Read metrics.json, decide, write the decision JSON; returns the decision.

    With ``compare_champion`` the champion of ``cfg.registry.uri`` is read too;
    a registry that cannot be read fails the gate (closed) with the reason.
    """
    metrics_path = Path(metrics_path)
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    champion = None
    champion_error = None
    if compare_champion:
        from isoclr.registry import RegistryError

        try:
            champion = champion_metrics(cfg.registry.uri)
        except RegistryError as err:
            champion_error = str(err)
    decision = decide(cfg.gate, metrics, champion)
    if not metrics_path.exists():
        decision["rules"].insert(
            0, {"kind": "input", "task": "*", "metric": "*", "min": None, "value": None, "passed": False,
                "reason": f"metrics file {metrics_path} does not exist"},
        )
        decision["passed"] = False
    if champion_error is not None:
        decision["rules"].append(
            {"kind": "no_regression", "task": "*", "metric": "*", "min": None, "value": None, "passed": False,
             "reason": f"champion unreadable: {champion_error}"}
        )
        decision["passed"] = False
    decision.update(model=MODEL, metrics_file=str(metrics_path), champion=champion and champion["version"])
    decision_path = Path(decision_path)
    decision_path.parent.mkdir(parents=True, exist_ok=True)
    decision_path.write_text(json.dumps(decision, indent=2) + "\n")
    return decision
