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
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from isoclr.errors import ConfigError


class _Strict(BaseModel):
    # A typo in params.yaml must fail loudly, not be ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Annotation(_Strict):
    """One annotation set: a GENCODE transcript FASTA, a GTF plus transcript FASTA, or a GTF plus genome FASTA."""

    name: str
    format: Literal["gencode_fasta", "gtf_transcript_fasta", "gtf_genome_fasta"]
    fasta: str | None = None  # transcript FASTA (gencode_fasta, gtf_transcript_fasta)
    gtf: str | None = None
    genome: str | None = None  # genome FASTA, plain, gzip or bgzip (gtf_genome_fasta; isoclr.ingest.genome)
    species: str
    assembly: str

    @model_validator(mode="after")
    def _files_when_needed(self) -> Annotation:
        needs = {
            "gencode_fasta": ("fasta",),
            "gtf_transcript_fasta": ("gtf", "fasta"),
            "gtf_genome_fasta": ("gtf", "genome"),
        }[self.format]
        missing = [key for key in needs if not getattr(self, key)]
        if missing:
            raise ValueError(f"annotation {self.name!r}: format {self.format} needs a {' and a '.join(missing)} file")
        return self

    def files(self) -> list[str]:
        """The input files of this set, in the order the reports name them."""
        return [f for f in (self.gtf, self.genome, self.fasta) if f]


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


class EncodeConfig(_Strict):
    # The track store is written in shards of at most this many bytes (1 byte per nucleotide).
    shard_bytes: int = Field(1 << 28, gt=0)


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


# Published encoder sizes, selected with ``model.size``; keys given beside
# ``size`` override the preset. "small": ~0.87M parameters, 256-d; "medium": ~7.2M, 512-d.
MODEL_PRESETS: dict[str, dict] = {
    "small": {
        "stem_filters": 64,
        "stem_kernel": 7,
        "stage_filters": [64, 128, 128, 256],
        "stage_blocks": [1, 1, 1, 1],
        "dilations": [1, 2, 4, 8],
        "kernel_size": 5,
        "projection_dims": [512, 512, 128],
    },
    "medium": {
        "stem_filters": 64,
        "stem_kernel": 7,
        "stage_filters": [64, 128, 256, 512],
        "stage_blocks": [3, 4, 6, 3],
        "dilations": [1, 2, 4, 8],
        "kernel_size": 3,
        "projection_dims": [2048, 2048, 512],
    },
}


# Orthrus's Mamba sizes, selected with ``model.mamba.size``: d_model 256 x 3 layers, and 512 x 4
# (x 6 with ``n_layers: 6``).
MAMBA_PRESETS: dict[str, dict] = {
    "mamba_small": {"d_model": 256, "n_layers": 3},
    "mamba_base": {"d_model": 512, "n_layers": 4},
}


class MambaConfig(_Strict):
    """The Mamba (selective state-space) encoder of ``model.arch: mamba`` (isoclr.mamba)."""

    size: Literal["mamba_small", "mamba_base"] | None = None  # preset: fills d_model / n_layers not given
    d_model: int = Field(256, gt=0)
    n_layers: int = Field(3, gt=0)
    d_state: int = Field(16, gt=0)
    d_conv: int = Field(4, gt=0)
    expand: int = Field(2, gt=0)
    bidirectional: bool = False  # a second scan over each sequence reversed within its own length

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data):
        if isinstance(data, dict) and data.get("size") is not None:
            if data["size"] not in MAMBA_PRESETS:
                raise ValueError(f"model.mamba.size must be one of {sorted(MAMBA_PRESETS)}, got {data['size']!r}")
            data = {**MAMBA_PRESETS[data["size"]], **data}
        return data

    def encoder_arguments(self) -> dict:
        return self.model_dump(exclude={"size"})


class ModelConfig(_Strict):
    """The encoder, described as data: the dilated residual CNN (stem, conv tower) or Mamba, and the
    projection head."""

    # cnn: the dilated residual CNN below; mamba: the Mamba encoder of ``mamba``
    arch: Literal["cnn", "mamba"] = "cnn"
    mamba: MambaConfig = MambaConfig()
    # preset: fills the architecture keys below that are not given explicitly
    size: Literal["small", "medium"] | None = None
    # stem
    stem_filters: int = Field(32, gt=0)
    stem_kernel: int = Field(7, gt=0)
    # conv tower: one entry per stage
    stage_filters: list[int] = [32, 64, 64, 128]
    stage_blocks: list[int] = [1, 1, 1, 1]
    dilations: list[int] = [1, 2, 4, 8]
    kernel_size: int = Field(5, gt=0)
    # projection head (training only)
    projection_dims: list[int] = Field([256, 128], min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data):
        if isinstance(data, dict) and data.get("size") is not None:
            if data["size"] not in MODEL_PRESETS:
                raise ValueError(f"model.size must be one of {sorted(MODEL_PRESETS)}, got {data['size']!r}")
            data = {**MODEL_PRESETS[data["size"]], **data}
        return data

    @model_validator(mode="after")
    def _stages_agree(self) -> ModelConfig:
        n = len(self.stage_filters)
        if not (len(self.stage_blocks) == len(self.dilations) == n) or n == 0:
            raise ValueError("stage_filters, stage_blocks and dilations need one entry per stage")
        if self.kernel_size % 2 == 0 or self.stem_kernel % 2 == 0:
            raise ValueError("kernel sizes must be odd so padding keeps the length")
        return self


# train.compile: the most padded lengths (each one a compile) a run may meet.
MAX_COMPILED_LENGTHS = 8


class TrainConfig(_Strict):
    """Contrastive training: batches, loss, optimiser, checkpoints and GPU options.

    Under DDP ``batch_genes`` is per rank; the loss sees the ``world_size * batch_genes``
    pairs of all ranks (negatives gathered across ranks).
    """

    steps: int = Field(150, gt=0)
    batch_genes: int = Field(32, ge=2)
    learning_rate: float = Field(2e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    warmup_steps: int = Field(10, ge=0)
    temperature: float = Field(0.1, gt=0)
    loss: Literal["dcl", "ntxent"] = "dcl"
    positive_weight: bool = False  # weight each pair by log(n_isoforms + 0.4) / 0.802 of its gene
    mask_prob: float = Field(0.15, ge=0, lt=1)
    paralog_share: float = Field(0.2, ge=0, le=1)
    max_length: int = Field(2048, gt=0)
    bucket_batches: int = Field(1, ge=1)  # batches drawn at once and sorted by length; 1 = no bucketing
    pad_multiple: int = Field(1, ge=1)  # round each batch's padded length up (fewer shapes for compile/cuDNN)
    grad_clip: float = Field(1.0, gt=0)
    seed: int = 0
    checkpoint_every: int = Field(50, ge=0)  # steps between resumable checkpoints; 0 = none
    loader_workers: int = Field(0, ge=0)  # DataLoader worker processes building batches
    precision: Literal["fp32", "bf16"] = "bf16"  # autocast dtype on GPU; CPU always runs fp32
    compile: bool = False  # torch.compile the model on GPU; ignored on CPU

    @property
    def padded_lengths(self) -> int:
        """How many padded batch lengths training can meet: views are at most ``max_length``, rounded up
        to a multiple of ``pad_multiple``."""
        return -(-self.max_length // self.pad_multiple)

    @model_validator(mode="after")
    def _compiles_few_lengths(self) -> TrainConfig:
        # The encoder's masked max-pool pins a compiled graph to its padded length: every length
        # is a compile of its own (~30 s for small on an H100, benchmarks/gpu_train.py).
        if self.compile and self.padded_lengths > MAX_COMPILED_LENGTHS:
            raise ValueError(
                f"train.compile with max_length {self.max_length} and pad_multiple {self.pad_multiple} "
                f"compiles up to {self.padded_lengths} padded lengths; at most {MAX_COMPILED_LENGTHS} are "
                f"allowed: set pad_multiple >= {-(-self.max_length // MAX_COMPILED_LENGTHS)}"
            )
        return self


class ProbeTask(_Strict):
    """A label set declared as data: adding a task needs no code.

    ``join`` says how ``id_column`` finds the sequence to embed: ``transcript_id``
    and ``gene_id`` (Ensembl versions ignored) and ``gene_name`` (symbol) pick an
    annotation transcript (for a gene, the longest isoform); ``sequence`` means the
    label file carries the sequence itself (a 50-nt UTR, a 3'UTR fragment), whose
    CDS and splice tracks are then empty. ``source: annotation`` reads labels from a
    column of the validated transcripts table (e.g. ``biotype``) instead of a file.
    """

    name: str
    source: Literal["file", "annotation"] = "file"
    file: str | None = None
    sep: str = ","
    header: list[str] | None = None  # column names for a file without a header row
    join: Literal["transcript_id", "gene_id", "gene_name", "sequence"]
    id_column: str
    target: str
    type: Literal["regression", "classification"] = "regression"
    # classification: values of ``target`` that are the positive class, and those that are
    # the negative class (default: every other value); rows in neither are dropped and counted.
    positive: list[str] | None = None
    negative: list[str] | None = None
    group_by: str = "homology"  # homology | none (random split) | prefix<N> | a column of the label file
    # annotation: CDS / splice tracks as the annotation has them; sequence: left empty, so a
    # label the annotation gives away (a CDS means coding) cannot leak through the tracks.
    tracks: Literal["annotation", "sequence"] = "annotation"
    max_rows: int | None = Field(None, gt=0)
    about: str | None = None  # one line for the report: what the task measures and why it is here

    @model_validator(mode="after")
    def _consistent(self) -> ProbeTask:
        if self.source == "file" and not self.file:
            raise ValueError(f"probe task {self.name!r}: source file needs a file")
        if self.source == "annotation" and (self.file or self.join != "transcript_id"):
            raise ValueError(f"probe task {self.name!r}: source annotation takes no file and joins by transcript_id")
        if self.type == "classification" and not self.positive:
            raise ValueError(f"probe task {self.name!r}: a classification task needs the positive target values")
        if self.type == "regression" and (self.positive or self.negative):
            raise ValueError(f"probe task {self.name!r}: positive/negative are for classification tasks")
        if self.group_by == "homology" and self.join == "sequence":
            raise ValueError(
                f"probe task {self.name!r}: group_by homology needs an annotation join; "
                "use none, prefix<N> or a column of the label file"
            )
        return self


REGRESSION_METRICS = ("pearson_r", "spearman_r", "mse")
CLASSIFICATION_METRICS = ("auroc", "auprc")
# The metric a task is summarised by (curves, plots).
PRIMARY_METRIC = {"regression": "pearson_r", "classification": "auroc"}
# Metrics where larger is better: the ones a gate can hold a model to.
GATEABLE_METRICS = Literal["pearson_r", "spearman_r", "auroc", "auprc"]


class ProbeConfig(_Strict):
    seeds: int = Field(10, ge=2)
    # Ridge penalty grid (logistic regression uses C = 1 / alpha). Features are standardised,
    # so the useful penalty grows with the number of rows: see params.yaml for the range.
    alphas: list[float] = Field([10.0**e for e in range(-4, 6)], min_length=1)
    fractions: SplitFractions = SplitFractions()
    # Low-data curve: shares of the train split used to fit (1 = all of it).
    train_fractions: list[float] = Field([1.0, 0.1, 0.01, 0.005], min_length=1)
    min_train_rows: int = Field(20, ge=2)  # a low-data point with fewer train rows is skipped (and reported)
    kmer_k: int = Field(4, ge=1, le=8)
    embed_batch_size: int = Field(64, gt=0)
    compare_champion: bool = True  # also probe the registry's champion on the same splits (paired)
    tasks: list[ProbeTask] = Field(min_length=1)

    @field_validator("tasks")
    @classmethod
    def _unique_names(cls, tasks: list[ProbeTask]) -> list[ProbeTask]:
        names = [t.name for t in tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"probe task names must be unique: {names}")
        return tasks

    @field_validator("alphas")
    @classmethod
    def _positive_alphas(cls, alphas: list[float]) -> list[float]:
        if any(a <= 0 for a in alphas):
            raise ValueError(f"probe alphas must be positive: {alphas}")
        return sorted(alphas)

    @field_validator("train_fractions")
    @classmethod
    def _fractions(cls, fractions: list[float]) -> list[float]:
        if any(not 0 < f <= 1 for f in fractions) or 1.0 not in fractions:
            raise ValueError(f"train_fractions must lie in (0, 1] and include 1: {fractions}")
        return sorted(set(fractions), reverse=True)


class GateRule(_Strict):
    task: str
    metric: GATEABLE_METRICS = "pearson_r"
    min: float


class GateConfig(_Strict):
    rules: list[GateRule] = Field(min_length=1)
    # The candidate may fall at most this far below the champion (mean paired difference over the
    # probe seeds, same splits), in the rule's metric.
    max_regression: float = Field(0.02, ge=0)
    # The candidate must beat the same architecture randomly initialised by more than this
    # (mean paired difference over the probe seeds, same splits).
    min_gain_over_random_init: float = 0.0


class RegistryConfig(_Strict):
    """Where models are registered: ``file://folder`` or ``gs://bucket/prefix`` (see isoclr.registry)."""

    uri: str = "file://registry"

    @field_validator("uri")
    @classmethod
    def _known_scheme(cls, uri: str) -> str:
        scheme = uri.split("://", 1)[0] if "://" in uri else ""
        if scheme not in ("", "file", "gs"):
            raise ValueError(f"registry.uri {uri!r}: use file://PATH or gs://BUCKET/PREFIX")
        if scheme == "gs" and not uri[len("gs://") :].split("/", 1)[0]:
            raise ValueError(f"registry.uri {uri!r}: a gs:// URI needs a bucket, gs://BUCKET/PREFIX")
        return uri


class MetricsConfig(_Strict):
    """Prometheus metrics of every stage (see docs/metrics.md); nothing is pushed or served unless set."""

    pushgateway_url: str | None = None  # e.g. http://pushgateway.monitoring:9091
    job: str = Field("isoclr", min_length=1)  # the Pushgateway job; grouping is run_id + stage
    push_every_steps: int = Field(25, gt=0)  # training pushes its progress this often
    http_port: int | None = Field(None, ge=0, le=65535)  # serve /metrics here while training (0: any free port)
    push_timeout_seconds: float = Field(5.0, gt=0)


# Kubernetes accepts these GPU counts per pod on the node pools we schedule onto.
GPU_COUNTS = (1, 2, 4, 8, 16)


class Toleration(_Strict):
    """A pod toleration, as Kubernetes spells it (GKE taints GPU nodes ``nvidia.com/gpu=present:NoSchedule``)."""

    key: str
    operator: Literal["Equal", "Exists"] = "Exists"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = "NoSchedule"


class KubeflowConfig(_Strict):
    """Where and how the Kubeflow pipeline runs on the cluster (k8s/ creates what it names).

    One GPU trains inside the pipeline's own pod; more GPUs launch a Kubeflow
    Trainer TrainJob of ``gpu_count / gpus_per_node`` nodes running the same
    ``isoclr train`` under torchrun.
    """

    host: str = "http://localhost:8080"  # KFP API, e.g. `kubectl port-forward -n kubeflow svc/ml-pipeline-ui 8080:80`
    namespace: str = "isoclr"  # Kubeflow profile namespace the runs and TrainJobs live in
    experiment: str = "isoclr"
    service_account: str = "isoclr-pipeline"  # bound to a GCP service account by Workload Identity
    pipeline_root: str | None = None  # artifact root, e.g. gs://bucket/pipeline-root (default: the cluster's)
    gpu_count: int = 1
    gpus_per_node: int = 8
    gpu_type: str = "nvidia-l4"  # GKE accelerator label value of the GPU node pool
    gpu_resource: str = "nvidia.com/gpu"
    gpu_node_label: str = "cloud.google.com/gke-accelerator"
    tolerations: list[Toleration] = [Toleration(key="nvidia.com/gpu")]
    cpu: str = "8"  # per training pod (request and limit)
    memory: str = "32Gi"
    checkpoints_pvc: str = "isoclr-checkpoints"  # ReadWriteMany: the pipeline pod and TrainJob nodes share it
    checkpoints_mount: str = "/mnt/isoclr"
    data_pvc: str = "isoclr-data"  # the data bucket through the GCS FUSE CSI driver
    data_mount: str = "/gcs/isoclr-data"
    data_repo: str = "https://github.com/isoclr/isoclr.git"  # git repo whose DVC revisions `data_version` may name
    training_runtime: str = "torch-distributed"  # Kubeflow Trainer ClusterTrainingRuntime
    trainjob_timeout_s: int = Field(7 * 24 * 3600, gt=0)
    poll_interval_s: int = Field(30, gt=0)
    retries: int = Field(2, ge=0)  # for the transient steps (data fetch, TrainJob launch, registration)
    schedule_cron: str = "0 0 3 * * 1"  # KFP cron has 6 fields, seconds first: Mondays 03:00

    @field_validator("gpu_count", "gpus_per_node")
    @classmethod
    def _gpu_count(cls, value: int) -> int:
        if value not in GPU_COUNTS:
            raise ValueError(f"GPU counts must be one of {GPU_COUNTS}, got {value}")
        return value


class Config(_Strict):
    data: DataConfig
    validate_: ValidateConfig = Field(ValidateConfig(), alias="validate")
    encode: EncodeConfig = EncodeConfig()
    splits: SplitsConfig = SplitsConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    probe: ProbeConfig
    gate: GateConfig
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
