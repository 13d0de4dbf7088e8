"""Where models, metrics and pipeline runs go: registry, Prometheus, Kubeflow."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from isoclr.config.base import Strict


class RegistryConfig(Strict):
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


class MetricsConfig(Strict):
    """Prometheus metrics of every stage (see docs/metrics.md); nothing is pushed or served unless set."""

    pushgateway_url: str | None = None  # e.g. http://pushgateway.monitoring:9091
    job: str = Field("isoclr", min_length=1)  # the Pushgateway job; grouping is run_id + stage
    push_every_steps: int = Field(25, gt=0)  # training pushes its progress this often
    http_port: int | None = Field(None, ge=0, le=65535)  # serve /metrics here while training (0: any free port)
    push_timeout_seconds: float = Field(5.0, gt=0)


# Kubernetes accepts these GPU counts per pod on the node pools we schedule onto.
GPU_COUNTS = (1, 2, 4, 8, 16)


class Toleration(Strict):
    """A pod toleration, as Kubernetes spells it (GKE taints GPU nodes ``nvidia.com/gpu=present:NoSchedule``)."""

    key: str
    operator: Literal["Equal", "Exists"] = "Exists"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = "NoSchedule"


class KubeflowConfig(Strict):
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
