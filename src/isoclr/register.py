"""The `register` stage: write the gated model to the registry as a new version and make it champion.

Only a model whose gate decision passed is registered; either way the stage writes a
registration record (JSON) that says which version was registered, or why none was.
A re-run with the same model, metrics and decision reuses the version it wrote before.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from isoclr import metrics, provenance, registry
from isoclr.artifacts import Paths
from isoclr.config import Config
from isoclr.errors import MissingInputError

NOT_REGISTERED = "not registered: the gate did not pass"


@dataclass(frozen=True)
class RegisterResult:
    """What the stage did: the version registered and made champion, or the reason nothing was."""

    registered: bool
    registry: str
    version: str | None = None
    note: str = ""  # registered: a new version, or an earlier one reused
    reason: str = ""  # not registered: why

    def as_record(self) -> dict:
        """The registration record, as written to ``Paths.registration``."""
        if not self.registered:
            return {"registered": False, "reason": self.reason, "registry": self.registry}
        return {
            "registered": True,
            "version": self.version,
            "champion": self.version,
            "registry": self.registry,
            "note": self.note,
        }

    def record(self, meter: metrics.StageRun) -> None:
        meter.set("isoclr_model_registered", int(self.registered))

    def summary(self) -> str:
        return json.dumps(self.as_record(), indent=2) if self.registered else NOT_REGISTERED


def _failed_rules(decision: dict) -> str:
    rules = decision.get("rules", [])
    failed = [f"{r.get('task')} {r.get('metric')}: {r.get('reason')}" for r in rules if not r.get("passed")]
    return "; ".join(failed or ["no rule passed"])


def _decide(uri: str, model: Path, metrics_path: Path, decision_path: Path, cfg: Config) -> RegisterResult:
    decision = json.loads(decision_path.read_text())  # the runner has checked it is there
    if decision.get("passed") is not True:
        return RegisterResult(False, uri, reason=f"not registered: gate failed ({_failed_rules(decision)})")
    if not metrics_path.is_file():
        raise MissingInputError(f"{metrics_path} does not exist: run the probe stage first")
    scores = json.loads(metrics_path.read_text())
    attachments = {"metrics": metrics_path, "decision": decision_path}
    version = registry.registered_version(uri, model, attachments)
    if version is not None:
        note = "same model, metrics and decision already registered: version reused"
    else:
        metadata = {
            "provenance": provenance.collect(),
            "config": cfg.to_dict(),
            "metrics": scores,
            "decision": decision,
        }
        version, note = registry.register(uri, model, attachments, metadata), "new version"
    registry.set_champion(uri, version)
    return RegisterResult(True, uri, version=version, note=note)


def run(cfg: Config, paths: Paths) -> RegisterResult:
    """Register ``paths.model`` (with the probe metrics and the gate decision) if the gate passed.

    Reads ``paths.model``, ``paths.probe_metrics`` and ``paths.decision``; writes ``paths.registration``
    either way.
    """
    result = _decide(cfg.registry.uri, Path(paths.model), Path(paths.probe_metrics), Path(paths.decision), cfg)
    out = Path(paths.registration)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result.as_record(), indent=2) + "\n")
    return result
