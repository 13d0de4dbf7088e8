"""params.yaml and the defaults of isoclr.config are one set of values, not two that drift."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel

from isoclr import config

ROOT = Path(__file__).resolve().parents[2]
SECTIONS = {
    "validate": config.ValidateConfig,
    "encode": config.EncodeConfig,
    "splits": config.SplitsConfig,
    "model": config.ModelConfig,
    "train": config.TrainConfig,
    "latent": config.LatentConfig,
    "probe": config.ProbeConfig,
    "gate": config.GateConfig,
    "finetune": config.FinetuneConfig,
    "registry": config.RegistryConfig,
    "metrics": config.MetricsConfig,
    "kubeflow": config.KubeflowConfig,
}


def _plain(value):
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def disagreements(raw: dict) -> list[str]:
    found = []
    for section, model in SECTIONS.items():
        for key, value in raw.get(section, {}).items():
            field = model.model_fields[key]
            if field.is_required():
                continue  # data, not a default: probe tasks, gate rules
            default = _plain(field.get_default(call_default_factory=True))
            if default != value:
                found.append(f"{section}.{key}: params.yaml {value!r}, isoclr.config {default!r}")
    return found


def test_params_yaml_states_the_code_defaults():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    assert disagreements(raw) == []


def test_a_drifted_value_is_caught():
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["train"]["steps"] += 1
    assert disagreements(raw) == [
        f"train.steps: params.yaml {raw['train']['steps']}, isoclr.config {raw['train']['steps'] - 1}"
    ]
