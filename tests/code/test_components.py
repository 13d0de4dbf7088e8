"""Components called directly (`component.python_func`) with artifacts on tmp_path: no cluster needed."""

import json

import yaml
from kfp import dsl

from components.gate.component import gate
from components.register.component import register
from isoclr.registry import champion
from tests.conftest import ROOT


def _params(min_halflife: float) -> dict:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["gate"]["rules"] = [{"task": "halflife", "metric": "pearson_r", "min": min_halflife}]
    return params


def _artifact(kind, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    return kind(name=path.name, uri=str(path), metadata={})


def _results(tmp_path, r: float):
    results = _artifact(dsl.Dataset, tmp_path / "results")
    (tmp_path / "results").mkdir(exist_ok=True)
    (tmp_path / "results" / "metrics.json").write_text(json.dumps({"halflife": {"isoclr": {"pearson_r": r}}}))
    return results


def test_gate_component_returns_the_verdict_and_writes_the_decision(tmp_path):
    decision = _artifact(dsl.Artifact, tmp_path / "decision.json")
    params = {**_params(0.5), "registry": {"uri": f"file://{tmp_path / 'registry'}"}}
    assert gate.python_func(params=params, results=_results(tmp_path, 0.6), decision=decision) == "passed"
    assert json.loads((tmp_path / "decision.json").read_text())["passed"] is True
    assert decision.metadata["passed"] is True
    assert gate.python_func(params={**params, **_params(0.7)}, results=_results(tmp_path, 0.6), decision=decision) == "failed"


def test_register_component_writes_a_version_and_champion(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    (model / "encoder.pt").write_bytes(b"weights")
    (tmp_path / "decision.json").write_text(json.dumps({"passed": True, "rules": []}))
    registry = f"file://{tmp_path / 'registry'}"
    version = register.python_func(
        params=_params(0.0),
        registry_uri=registry,
        model=_artifact(dsl.Model, model),
        results=_results(tmp_path, 0.6),
        decision=_artifact(dsl.Artifact, tmp_path / "decision.json"),
        record=_artifact(dsl.Artifact, tmp_path / "record.json"),
    )
    assert version and champion(registry) == version
