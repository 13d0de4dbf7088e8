"""The Kubeflow side of the pipeline: run parameters, data versions, TrainJobs and the KFP API.

The pipeline (``pipelines/isoclr_pipeline.py``) and its components stay thin;
what they decide lives here so it is tested without a cluster:

- :func:`effective_params` folds the pipeline's scalar run parameters (model
  size, steps, gate thresholds, registry, Pushgateway) into the one validated
  configuration every step reads;
- :func:`resolve_data` turns a data version (DVC revision or ``gs://`` path)
  into a folder the pods read;
- :func:`trainjob_options` / :func:`launch_trainjob` build and submit a Kubeflow
  Trainer v2 TrainJob (``trainer.kubeflow.org/v1alpha1``, ``torch-distributed``
  runtime) through the Kubeflow SDK's ``TrainerClient``, running the same
  ``isoclr train`` under torchrun, and :func:`follow_trainjob` waits for it
  with its logs in the calling pod's log;
- :func:`submit` / :func:`schedule` send the compiled pipeline to the KFP API
  through ``kfp.Client`` (one run, or a recurring run).
"""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path, PurePosixPath

import yaml

from isoclr.artifacts import Paths
from isoclr.config import GPU_COUNTS, MODEL_PRESETS, Config, GateRule, KubeflowConfig
from isoclr.errors import ConfigError, IsoclrError


class TrainJobError(IsoclrError, RuntimeError):
    """The Kubeflow Trainer TrainJob failed; the message carries its events."""


# The torch-distributed runtime names its trainer replicated job and container "node".
TRAINER_NODE = "node"
# Labels that find the TrainJobs and pods of one pipeline run.
APP_LABEL = "app.kubernetes.io/name"
RUN_LABEL = "isoclr.io/pipeline-run"
CHECKPOINT_VOLUME = "checkpoints"
# Model sizes the pipeline's `model_size` accepts; "" keeps the model block of `params`.
MODEL_SIZES = ("", *MODEL_PRESETS)
# The API server's answer to creating an object that exists.
HTTP_CONFLICT = 409
# Marks a data version fetched in full.
COMPLETE = ".complete"


def effective_params(
    params: dict,
    *,
    model_size: str = "",
    train_steps: int = 0,
    gate_rules: list | None = None,
    registry_uri: str = "",
    pushgateway_url: str = "",
) -> dict:
    """``params`` with the run's scalar overrides applied, validated as a :class:`Config`.

    Empty / zero overrides keep what ``params`` says, so a run started with the
    defaults does exactly what params.yaml does. A ``model_size`` replaces the
    whole model block by that preset (``model.size``).
    """
    out = copy.deepcopy(params)
    if model_size not in MODEL_SIZES:
        raise ConfigError(f"model_size must be one of {MODEL_SIZES}, got {model_size!r}")
    if model_size:
        out["model"] = {"size": model_size}
    if train_steps:
        out.setdefault("train", {})["steps"] = int(train_steps)
    if gate_rules:
        out.setdefault("gate", {})["rules"] = [
            GateRule.model_validate(rule).model_dump(mode="json") for rule in gate_rules
        ]
    if registry_uri:
        out.setdefault("registry", {})["uri"] = registry_uri
    if pushgateway_url:
        out.setdefault("metrics", {})["pushgateway_url"] = pushgateway_url
    return Config.model_validate(out).to_dict()


def resolve_data(data_version: str, cfg: Config, cache_root: Path, run: Callable = subprocess.run) -> Path:
    """The local folder holding the data of ``data_version``.

    - ``""``: ``data.dir`` of the configuration;
    - ``gs://bucket/prefix``: that prefix under ``kubeflow.data_mount`` (the
      bucket mounted by the GCS FUSE CSI driver; the pods never hold keys);
    - an existing folder: itself;
    - anything else is a DVC revision (tag, branch, commit) of
      ``kubeflow.data_repo``: ``dvc get`` fetches its ``data.dir`` once into
      ``cache_root/<rev>`` (on the checkpoints PVC in the cluster).
    """
    kf = cfg.kubeflow
    if not data_version:
        return Path(cfg.data.dir)
    if data_version.startswith("gs://"):
        bucket_and_prefix = data_version.removeprefix("gs://").strip("/")
        bucket, _, prefix = bucket_and_prefix.partition("/")
        mounted_bucket = PurePosixPath(kf.data_mount).name
        if bucket != mounted_bucket:
            raise ConfigError(f"{data_version}: only gs://{mounted_bucket} is mounted (at {kf.data_mount})")
        return Path(kf.data_mount) / prefix
    if Path(data_version).is_dir():
        return Path(data_version)
    target = Path(cache_root) / data_version
    if not (target / COMPLETE).exists():  # a fetch cut short is fetched again
        shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        run(["dvc", "get", kf.data_repo, cfg.data.dir, "--rev", data_version, "-o", str(target)], check=True)
        (target / COMPLETE).touch()
    return target


def plan_run(cfg: Config, *, data_version: str, gpu_type: str, run_id: str) -> dict:
    """What the run's later steps need: data folder, GPU node selector, and the run's folder on
    the checkpoints PVC ("" where the PVC is not mounted, as in kfp's local runner)."""
    mount = Path(cfg.kubeflow.checkpoints_mount)
    run_dir = str(mount / "runs" / run_id) if mount.is_dir() else ""
    cache = mount / "data" if mount.is_dir() else Path.cwd() / "data-versions"
    return {
        "data_dir": str(resolve_data(data_version, cfg, cache)),
        "node_selector": node_selector(cfg.kubeflow, gpu_type),
        "run_dir": run_dir,
    }


def node_selector(kf: KubeflowConfig, gpu_type: str) -> dict:
    """Pods of ``gpu_type`` land on the GPU node pool of that accelerator (GKE node label)."""
    return {kf.gpu_node_label: gpu_type or kf.gpu_type}


def trainjob_shape(gpu_count: int, gpus_per_node: int) -> tuple[int, int]:
    """(nodes, GPUs per node) for ``gpu_count`` GPUs on nodes of ``gpus_per_node``: fill nodes first."""
    if gpu_count not in GPU_COUNTS:
        raise ConfigError(f"gpu_count must be one of {GPU_COUNTS}, got {gpu_count}")
    per_node = min(gpu_count, gpus_per_node)
    return gpu_count // per_node, per_node


TRAINJOB_PARAMS = "params.yaml"


def trainjob_paths(run_dir: str) -> Paths:
    """Where a TrainJob's inputs and outputs live in ``run_dir`` on the checkpoints PVC (the usual names)."""
    return Paths.under(Path(run_dir))


def stage_trainjob_inputs(cfg: Config, run_dir: str, params: dict, transcripts: str, groups: str, tracks: str) -> Paths:
    """Copy a run's inputs onto the checkpoints PVC, where every TrainJob node reads them.

    The track store is copied once per run and moved into place whole: a retried launcher's earlier
    job may still be reading it.
    """
    if not run_dir:
        raise ConfigError(f"a TrainJob needs the checkpoints PVC mounted at {cfg.kubeflow.checkpoints_mount}")
    paths = trainjob_paths(run_dir)
    paths.transcripts.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(transcripts, paths.transcripts)
    shutil.copyfile(groups, paths.groups)
    if not paths.tracks.is_dir():
        partial = paths.tracks.with_name(f".{paths.tracks.name}.tmp")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(tracks, partial)
        os.replace(partial, paths.tracks)
    (Path(run_dir) / TRAINJOB_PARAMS).write_text(yaml.safe_dump(params, sort_keys=False))
    return paths


def train_command(run_dir: str) -> list[str]:
    """The TrainJob's command: ``isoclr train`` under torchrun, on files staged in ``run_dir``
    (transcripts, groups, the track store, params), checkpointing there so a restarted job resumes.

    The torch-distributed runtime sets ``PET_NNODES``, ``PET_NPROC_PER_NODE``,
    ``PET_NODE_RANK`` and the master address, which torchrun reads.
    """
    paths = trainjob_paths(run_dir)
    return [
        "torchrun",
        "-m",
        "isoclr.cli",
        "train",
        "--params", str(Path(run_dir) / TRAINJOB_PARAMS),
        "--transcripts", str(paths.transcripts),
        "--groups", str(paths.groups),
        "--tracks", str(paths.tracks),
        "--model-dir", str(paths.model),
        "--train-log", str(paths.train_log),  # torchrun would read --log as its own
        "--metrics", str(paths.train_summary),
        "--checkpoint-dir", str(paths.checkpoints),
        "--resume",
    ]  # fmt: skip


def trainjob_options(kf: KubeflowConfig, *, name: str, run_id: str, gpu_type: str, run_dir: str) -> list:
    """Kubeflow SDK options for the TrainJob: name, labels, command, and the pod patch
    (service account, GPU node pool, tolerations, checkpoints PVC) every node gets."""
    from kubeflow.trainer.options import (
        ContainerPatch,
        JobSetSpecPatch,
        JobSetTemplatePatch,
        JobSpecPatch,
        JobTemplatePatch,
        Labels,
        Name,
        PodSpecPatch,
        PodTemplatePatch,
        ReplicatedJobPatch,
        RuntimePatch,
        TrainerCommand,
        TrainingRuntimeSpecPatch,
    )

    pod = PodSpecPatch(
        service_account_name=kf.service_account,
        node_selector={kf.gpu_node_label: gpu_type},
        tolerations=[t.model_dump(exclude_none=True) for t in kf.tolerations],
        volumes=[{"name": CHECKPOINT_VOLUME, "persistentVolumeClaim": {"claimName": kf.checkpoints_pvc}}],
        containers=[
            ContainerPatch(
                name=TRAINER_NODE, volume_mounts=[{"name": CHECKPOINT_VOLUME, "mountPath": kf.checkpoints_mount}]
            )
        ],
    )
    node = ReplicatedJobPatch(
        name=TRAINER_NODE,
        template=JobTemplatePatch(
            spec=JobSpecPatch(template=PodTemplatePatch(metadata={"labels": {RUN_LABEL: run_id}}, spec=pod))
        ),
    )
    patch = RuntimePatch(
        training_runtime_spec=TrainingRuntimeSpecPatch(
            template=JobSetTemplatePatch(spec=JobSetSpecPatch(replicated_jobs=[node]))
        )
    )
    return [
        Name(name=name),
        Labels(labels={APP_LABEL: "isoclr", RUN_LABEL: run_id}),
        TrainerCommand(command=train_command(run_dir)),
        patch,
    ]


def trainjob_trainer(kf: KubeflowConfig, *, image: str, gpu_count: int):
    """The SDK's trainer for the job: the project image on ``nodes`` nodes of ``per_node`` GPUs."""
    from kubeflow.trainer import CustomTrainerContainer

    nodes, per_node = trainjob_shape(gpu_count, kf.gpus_per_node)
    return CustomTrainerContainer(
        image=image,
        num_nodes=nodes,
        resources_per_node={kf.gpu_resource: per_node, "cpu": kf.cpu, "memory": kf.memory},
        env={"PYTHONUNBUFFERED": "1"},
    )


def trainer_client(namespace: str, host: str | None = None):
    """A Kubeflow Trainer client for ``namespace``: the pod's in-cluster identity, or an API ``host``."""
    from kubeflow.common.types import KubernetesBackendConfig
    from kubeflow.trainer import TrainerClient
    from kubernetes import client

    configuration = None
    if host:
        configuration = client.Configuration()
        configuration.host = host
    return TrainerClient(
        backend_config=KubernetesBackendConfig(namespace=namespace, client_configuration=configuration)
    )


def launch_trainjob(
    client, kf: KubeflowConfig, *, image: str, gpu_count: int, gpu_type: str, run_id: str, run_dir: str
) -> str:
    """Create the TrainJob for one pipeline run; returns its name (``isoclr-<run id>``)."""
    name = trainjob_name(run_id)
    try:
        client.train(
            runtime=kf.training_runtime,
            trainer=trainjob_trainer(kf, image=image, gpu_count=gpu_count),
            options=trainjob_options(kf, name=name, run_id=run_id, gpu_type=gpu_type, run_dir=run_dir),
        )
    except RuntimeError as err:
        if getattr(err.__cause__, "status", None) != HTTP_CONFLICT:
            raise
        # A retried launcher follows the job its first attempt started.
    return name


def trainjob_name(run_id: str) -> str:
    """A DNS-1035 name for the run's TrainJob (JobSet adds suffixes, so keep it short)."""
    return ("isoclr-" + "".join(c for c in run_id.lower() if c.isalnum())[:20]).rstrip("-")


def follow_trainjob(client, name: str, kf: KubeflowConfig, echo: Callable[[str], None] = print) -> str:
    """Stream the first node's log, then wait for the TrainJob to finish; returns its status.

    A failed TrainJob raises with its events, so the kfp task fails with the reason.
    """
    client.wait_for_job_status(
        name,
        status={"Running", "Complete", "Failed"},
        timeout=kf.trainjob_timeout_s,
        polling_interval=kf.poll_interval_s,
    )
    for line in client.get_job_logs(name, follow=True):
        echo(line)
    try:
        job = client.wait_for_job_status(name, timeout=kf.trainjob_timeout_s, polling_interval=kf.poll_interval_s)
    except RuntimeError as err:
        events = "\n".join(f"  {e.event_time} {e.reason}: {e.message}" for e in _events(client, name))
        raise TrainJobError(f"TrainJob {name} failed: {err}\n{events}") from err
    return job.status


def _events(client, name: str) -> Iterable:
    try:
        return client.get_job_events(name)
    except Exception:  # noqa: BLE001 - the events only decorate the failure message
        return []


def kfp_client(host: str, namespace: str | None = None):
    """A ``kfp.Client`` for the KFP API at ``host`` (a port-forward or the Kubeflow gateway)."""
    import kfp

    return kfp.Client(host=host, namespace=namespace)


def submit(client, package: Path, cfg: Config, *, arguments: dict | None = None, run_name: str | None = None) -> str:
    """Start one run of the compiled pipeline; returns the run id."""
    result = client.create_run_from_pipeline_package(
        str(package),
        arguments=arguments or {},
        run_name=run_name,
        experiment_name=cfg.kubeflow.experiment,
        namespace=cfg.kubeflow.namespace,
        pipeline_root=cfg.kubeflow.pipeline_root,
        service_account=cfg.kubeflow.service_account,
    )
    return result.run_id


def schedule(
    client, package: Path, cfg: Config, *, name: str, cron: str | None = None, arguments: dict | None = None
) -> str:
    """Create the recurring retraining run: cron schedule, one run at a time, no catch-up, no cache; returns its id."""
    experiment = client.create_experiment(cfg.kubeflow.experiment, namespace=cfg.kubeflow.namespace)
    recurring = client.create_recurring_run(
        experiment_id=experiment.experiment_id,
        job_name=name,
        cron_expression=cron or cfg.kubeflow.schedule_cron,
        max_concurrency=1,
        no_catchup=True,
        params=arguments or {},
        pipeline_package_path=str(package),
        pipeline_root=cfg.kubeflow.pipeline_root,
        enable_caching=False,  # retraining is the point: fresh data under the same data version
        service_account=cfg.kubeflow.service_account,
    )
    return recurring.recurring_run_id
