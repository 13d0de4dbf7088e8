"""Validate custom resources against the CRD schemas shipped in k8s/schemas/, strictly.

A CRD's openAPIV3Schema lets unknown fields through (the API server prunes
them silently), so, like `kubectl apply --validate=strict`, every object schema
that lists its properties is closed here unless it preserves unknown fields.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import jsonschema

SCHEMAS = Path(__file__).resolve().parents[2] / "k8s" / "schemas"
FILES = {
    ("trainer.kubeflow.org/v1alpha1", "TrainJob"): "trainjob-trainer-v1alpha1.json",
    ("trainer.kubeflow.org/v1alpha1", "ClusterTrainingRuntime"): "clustertrainingruntime-trainer-v1alpha1.json",
    ("monitoring.coreos.com/v1", "PodMonitor"): "podmonitor-monitoring-v1.json",
}


def _close(schema):
    if isinstance(schema, dict):
        if (
            "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema = {**schema, "additionalProperties": False}
        return {k: _close(v) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_close(v) for v in schema]
    return schema


@cache
def validator(api_version: str, kind: str) -> jsonschema.Validator:
    schema = json.loads((SCHEMAS / FILES[(api_version, kind)]).read_text())
    schema.pop("x-source", None)
    # metadata is checked by the API server, not by the CRD schema.
    schema["properties"]["metadata"] = {"type": "object"}
    return jsonschema.Draft7Validator(_close(schema))


def errors(obj: dict) -> list[str]:
    """Every schema violation of ``obj`` (apiVersion and kind pick the schema), as path: message."""
    found = validator(obj["apiVersion"], obj["kind"]).iter_errors(obj)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in found]
