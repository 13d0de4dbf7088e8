"""The one configuration: params.yaml loaded into typed, validated models.

The CLI, the DVC stages and the Kubeflow components all call :func:`load`
(or :meth:`Config.model_validate` on a dict a pipeline parameter carries), so a
value is defined once and checked once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    # A typo in params.yaml must fail loudly, not be ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Annotation(_Strict):
    """One annotation set: a GENCODE transcript FASTA, or a GTF plus transcript FASTA."""

    name: str
    format: Literal["gencode_fasta", "gtf_transcript_fasta"]
    fasta: str
    gtf: str | None = None
    species: str
    assembly: str

    @model_validator(mode="after")
    def _gtf_when_needed(self) -> Annotation:
        if self.format == "gtf_transcript_fasta" and not self.gtf:
            raise ValueError(f"annotation {self.name!r}: format gtf_transcript_fasta needs a gtf file")
        return self


class DataConfig(_Strict):
    dir: str = "data"
    annotations: list[Annotation] = Field(min_length=1)
    paralogs: str

    def path(self, name: str, root: Path | None = None) -> Path:
        """A data file's path; ``root`` replaces ``dir`` (a kfp task gets data where it is mounted)."""
        return Path(root if root is not None else self.dir) / name


class ValidateConfig(_Strict):
    max_length: int = Field(12288, gt=0)
    min_transcripts: int = Field(100, ge=1)
    max_quarantine_fraction: float = Field(0.2, ge=0, le=1)


class SplitFractions(_Strict):
    train: float = Field(0.7, gt=0)
    val: float = Field(0.15, ge=0)
    test: float = Field(0.15, gt=0)

    @model_validator(mode="after")
    def _sum_to_one(self) -> SplitFractions:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"split fractions must sum to 1, got {total}")
        return self


class SplitsConfig(_Strict):
    fractions: SplitFractions = SplitFractions()
    seed: int = 0


class ModelConfig(_Strict):
    """Dilated residual CNN, described as data (stem, conv tower, projection head)."""

    # stem
    stem_filters: int = Field(32, gt=0)
    stem_kernel: int = Field(7, gt=0)
    # conv tower: one entry per stage
    stage_filters: list[int] = [32, 64, 64, 128]
    stage_blocks: list[int] = [1, 1, 1, 1]
    dilations: list[int] = [1, 2, 4, 8]
    kernel_size: int = Field(5, gt=0)
    # projection head (training only)
    projection_dims: list[int] = [256, 128]

    @model_validator(mode="after")
    def _stages_agree(self) -> ModelConfig:
        n = len(self.stage_filters)
        if not (len(self.stage_blocks) == len(self.dilations) == n) or n == 0:
            raise ValueError("stage_filters, stage_blocks and dilations need one entry per stage")
        if self.kernel_size % 2 == 0 or self.stem_kernel % 2 == 0:
            raise ValueError("kernel sizes must be odd so padding keeps the length")
        return self


class TrainConfig(_Strict):
    steps: int = Field(300, gt=0)
    batch_genes: int = Field(32, ge=2)
    learning_rate: float = Field(2e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    warmup_steps: int = Field(20, ge=0)
    temperature: float = Field(0.1, gt=0)
    loss: Literal["dcl", "ntxent"] = "dcl"
    mask_prob: float = Field(0.15, ge=0, lt=1)
    paralog_share: float = Field(0.2, ge=0, le=1)
    max_length: int = Field(4096, gt=0)
    grad_clip: float = Field(1.0, gt=0)
    seed: int = 0


class ProbeTask(_Strict):
    """A label set declared as data: adding a task needs no code."""

    name: str
    file: str
    sep: str = ","
    header: list[str] | None = None  # column names for a file without a header row
    join: Literal["gene_id", "sequence"]
    id_column: str
    target: str
    group_by: str = "homology"  # homology | prefix<N> | a column of the label file
    max_rows: int | None = Field(None, gt=0)


class ProbeConfig(_Strict):
    seeds: int = Field(5, ge=2)
    alphas: list[float] = [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0]
    fractions: SplitFractions = SplitFractions()
    kmer_k: int = Field(4, ge=1, le=8)
    embed_batch_size: int = Field(64, gt=0)
    tasks: list[ProbeTask] = Field(min_length=1)

    @field_validator("tasks")
    @classmethod
    def _unique_names(cls, tasks: list[ProbeTask]) -> list[ProbeTask]:
        names = [t.name for t in tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"probe task names must be unique: {names}")
        return tasks


class GateRule(_Strict):
    task: str
    metric: Literal["pearson_r", "spearman_r"] = "pearson_r"
    min: float


class GateConfig(_Strict):
    rules: list[GateRule] = Field(min_length=1)


class RegistryConfig(_Strict):
    uri: str = "file://registry"


class Config(_Strict):
    data: DataConfig
    validate_: ValidateConfig = Field(ValidateConfig(), alias="validate")
    splits: SplitsConfig = SplitsConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    probe: ProbeConfig
    gate: GateConfig
    registry: RegistryConfig = RegistryConfig()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, protected_namespaces=())

    @model_validator(mode="after")
    def _gate_tasks_exist(self) -> Config:
        known = {t.name for t in self.probe.tasks}
        unknown = [r.task for r in self.gate.rules if r.task not in known]
        if unknown:
            raise ValueError(f"gate rules name tasks not declared under probe.tasks: {unknown}")
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
        raise ValueError(f"{path}: invalid configuration\n{err}") from err
