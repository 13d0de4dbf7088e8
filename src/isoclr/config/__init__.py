"""The one configuration: params.yaml loaded into typed, validated models.

The models below are the one source of defaults. params.yaml spells every setting out so that
``dvc params diff`` and ``dvc exp run -S`` see it, and a test holds its values equal to these
defaults: a run changes params.yaml, a new default changes this module (and params.yaml with it).

The CLI, the DVC stages and the Kubeflow components all call :func:`load`
(or :meth:`Config.model_validate` on a dict a pipeline parameter carries), so a
value is defined once and checked once.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ConfigDict, Field, model_validator

from isoclr.config.base import Strict
from isoclr.config.data import (
    Annotation,
    DataConfig,
    EncodeConfig,
    SplitFractions,
    SplitsConfig,
    ValidateConfig,
)
from isoclr.config.finetune import FinetuneConfig
from isoclr.config.latent import LATENT_LABELS, LatentConfig
from isoclr.config.model import MAMBA_PRESETS, MODEL_PRESETS, MambaConfig, ModelConfig
from isoclr.config.probe import (
    CLASSIFICATION_METRICS,
    GATEABLE_METRICS,
    PRIMARY_METRIC,
    REGRESSION_METRICS,
    GateConfig,
    GateRule,
    ProbeConfig,
    ProbeTask,
)
from isoclr.config.services import GPU_COUNTS, KubeflowConfig, MetricsConfig, RegistryConfig, Toleration
from isoclr.config.train import MAX_COMPILED_LENGTHS, TrainConfig
from isoclr.errors import ConfigError

__all__ = [
    "CLASSIFICATION_METRICS",
    "GATEABLE_METRICS",
    "GPU_COUNTS",
    "LATENT_LABELS",
    "MAMBA_PRESETS",
    "MAX_COMPILED_LENGTHS",
    "MODEL_PRESETS",
    "PRIMARY_METRIC",
    "REGRESSION_METRICS",
    "Annotation",
    "Config",
    "DataConfig",
    "EncodeConfig",
    "FinetuneConfig",
    "GateConfig",
    "GateRule",
    "KubeflowConfig",
    "LatentConfig",
    "MambaConfig",
    "MetricsConfig",
    "ModelConfig",
    "ProbeConfig",
    "ProbeTask",
    "RegistryConfig",
    "SplitFractions",
    "SplitsConfig",
    "Toleration",
    "TrainConfig",
    "ValidateConfig",
    "load",
]


class Config(Strict):
    data: DataConfig
    validate_: ValidateConfig = Field(ValidateConfig(), alias="validate")
    encode: EncodeConfig = EncodeConfig()
    splits: SplitsConfig = SplitsConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    latent: LatentConfig = LatentConfig()
    probe: ProbeConfig
    gate: GateConfig
    finetune: FinetuneConfig = FinetuneConfig()
    registry: RegistryConfig = RegistryConfig()
    metrics: MetricsConfig = MetricsConfig()
    kubeflow: KubeflowConfig = KubeflowConfig()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, protected_namespaces=())

    @model_validator(mode="after")
    def _gate_tasks_exist(self) -> Config:
        known = {t.name for t in self.probe.tasks}
        unknown = [r.task for r in self.gate.rules if r.task not in known]
        if unknown:
            raise ValueError(f"gate rules name tasks not declared under probe.tasks: {unknown}")
        types = {t.name: t.type for t in self.probe.tasks}
        for rule in self.gate.rules:
            allowed = REGRESSION_METRICS if types[rule.task] == "regression" else CLASSIFICATION_METRICS
            if rule.metric not in allowed:
                raise ValueError(
                    f"gate rule on {rule.task!r}: {rule.metric} is not a metric of a {types[rule.task]} task {allowed}"
                )
        return self

    @model_validator(mode="after")
    def _finetune_tasks_are_regression(self) -> Config:
        types = {t.name: t.type for t in self.probe.tasks}
        unknown = [name for name in self.finetune.tasks if name not in types]
        if unknown:
            raise ValueError(f"finetune.tasks names tasks not declared under probe.tasks: {unknown}")
        other = [f"{name} ({types[name]})" for name in self.finetune.tasks if types[name] != "regression"]
        if other:
            raise ValueError(f"finetune.tasks must be regression tasks: {other}")
        return self

    def to_dict(self) -> dict:
        """Plain data as params.yaml spells it, unset options left out (kfp rejects nulls)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def load(path: str | Path = "params.yaml") -> Config:
    """Read and validate params.yaml; errors name the file and the offending key."""
    path = Path(path)
    with path.open() as fh:
        raw = yaml.safe_load(fh)
    try:
        return Config.model_validate(raw)
    except ValueError as err:
        raise ConfigError(f"{path}: invalid configuration\n{err}") from err
