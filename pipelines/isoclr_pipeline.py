"""The IsoCLR pipeline for Kubeflow Pipelines v2: the same DAG as dvc.yaml.

Defaults come from params.yaml at compile time; every value can be overridden
per run from the Kubeflow UI: `params` is the whole configuration, and the
scalar parameters (data version, model size, steps, GPUs, gate thresholds,
registry, Pushgateway) override its matching keys when set. One GPU trains in
the pipeline's own pod; more launch a Kubeflow Trainer TrainJob.
Run `python -m pipelines.isoclr_pipeline` to recompile the committed YAML.
(No `from __future__ import annotations` here: kfp reads the real annotations.)
"""

from pathlib import Path

from kfp import compiler, dsl, kubernetes
from kfp.dsl import Dataset, Input, Model

from components import IMAGE
from components.champion.component import champion
from components.classification_metrics.component import classification_metrics
from components.configure.component import configure
from components.encode.component import encode
from components.finetune.component import finetune
from components.gate.component import gate
from components.latent.component import latent
from components.pairs.component import pairs
from components.probe.component import probe
from components.reconstruct.component import reconstruct
from components.register.component import register
from components.train.component import train, train_distributed
from components.validate.component import validate
from isoclr.classification import classified_tasks
from isoclr.config import load
from isoclr.scores import CANDIDATE

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(__file__).with_name("isoclr_pipeline.yaml")
DEFAULTS = load(ROOT / "params.yaml")
KF = DEFAULTS.kubeflow
# GKE mounts a bucket through the GCS FUSE CSI driver only in pods that ask for it.
GCSFUSE_ANNOTATION = ("gke-gcsfuse/volumes", "true")


def _with_volumes(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """Mount the data bucket (GCS FUSE) and the checkpoints PVC, where data versions are cached."""
    kubernetes.mount_pvc(task, pvc_name=KF.data_pvc, mount_path=KF.data_mount)
    kubernetes.mount_pvc(task, pvc_name=KF.checkpoints_pvc, mount_path=KF.checkpoints_mount)
    return kubernetes.add_pod_annotation(task, *GCSFUSE_ANNOTATION)


def _on_one_gpu(task: dsl.PipelineTask, node_selector) -> dsl.PipelineTask:
    """One GPU of the pool the run asked for (``node_selector``: the configure task's output), with the
    training pod's CPU and memory."""
    task.set_accelerator_type(KF.gpu_resource).set_accelerator_limit(1)
    task.set_cpu_request(KF.cpu).set_cpu_limit(KF.cpu).set_memory_request(KF.memory).set_memory_limit(KF.memory)
    kubernetes.add_node_selector_json(task, node_selector)
    kubernetes.add_toleration_json(task, [t.model_dump(exclude_none=True) for t in KF.tolerations])
    return task


@dsl.pipeline(
    name="evaluate-and-register",
    description="Latent maps and kNN agreement, linear probes, gate, and registration when the gate passes.",
)
def evaluate_and_register(
    params: dict,
    data_dir: str,
    registry_uri: str,
    transcripts: Input[Dataset],
    groups: Input[Dataset],
    tracks: Input[Dataset],
    model: Input[Model],
    reconstruction: Input[Model],
):
    """Everything after training, as one sub-pipeline each training branch calls (kfp's local
    runner has no dsl.OneOf to join the branches' models)."""
    # Beside the probes: is gene function visible in the model's neighbourhoods beyond random init (maps in the UI).
    mapped = latent(
        params=params, data_dir=data_dir, transcripts=transcripts, groups=groups, tracks=tracks, model=model
    )
    _with_volumes(mapped.set_display_name("Latent maps and kNN agreement").set_caching_options(True))
    # The registry's champion is read once, uncached, and handed to the probe as an input: the probe
    # reads nothing else that moves, so its cache is safe.
    current = champion(registry_uri=registry_uri).set_display_name("Current champion").set_caching_options(False)
    current.set_retry(KF.retries)
    probed = probe(
        params=params,
        data_dir=data_dir,
        champion_version=current.output,
        transcripts=transcripts,
        groups=groups,
        tracks=tracks,
        model=model,
        reconstruction=reconstruction,
    )
    _with_volumes(probed.set_display_name("Linear probes").set_caching_options(True))
    # One ClassificationMetrics artifact (ROC curve, confusion matrix) per classification / multilabel task of
    # the compiled params: kfp fixes output counts at compile time, so the loop runs here, not in the pod.
    for task in classified_tasks(DEFAULTS.probe):
        classification_metrics(task=task, model=CANDIDATE, results=probed.outputs["results"]).set_display_name(
            f"ROC and confusion matrix: {task}"
        ).set_caching_options(True)
    # The gate compares with the registry's current champion: never from cache.
    decided = (
        gate(params=params, registry_uri=registry_uri, results=probed.outputs["results"])
        .set_display_name("Gate")
        .set_caching_options(False)
    )
    with dsl.If(decided.outputs["Output"] == "passed", name="gate-passed"):
        register(
            params=params,
            registry_uri=registry_uri,
            model=model,
            results=probed.outputs["results"],
            decision=decided.outputs["decision"],
        ).set_display_name("Register model").set_caching_options(False).set_retry(KF.retries)


@dsl.pipeline(
    name="isoclr",
    description="Validate annotation, pack the track store, build isoform/paralog pairs, train (and the "
    "reconstruction baseline), probe, gate and register an IsoCLR encoder.",
)
def isoclr_pipeline(
    params: dict = DEFAULTS.to_dict(),
    data_version: str = "",
    model_size: str = "",
    train_steps: int = DEFAULTS.train.steps,
    gpu_count: int = KF.gpu_count,
    gpu_type: str = KF.gpu_type,
    gate_rules: list = [rule.model_dump(mode="json") for rule in DEFAULTS.gate.rules],  # noqa: B006 -- kfp reads it
    registry_uri: str = DEFAULTS.registry.uri,
    pushgateway_url: str = DEFAULTS.metrics.pushgateway_url or "",
):
    """data_version: a DVC revision, a gs:// prefix, a folder, or "" for data.dir of params.
    model_size: "small" or "medium" preset, or "" for the model block of params.
    gpu_count: 1, 2, 4, 8 or 16; above 1 trains in a Kubeflow Trainer TrainJob.
    gpu_type: GKE accelerator of the GPU node pool (e.g. nvidia-l4, nvidia-tesla-a100)."""
    planned = configure(
        params=params,
        data_version=data_version,
        model_size=model_size,
        train_steps=train_steps,
        gpu_type=gpu_type,
        gate_rules=gate_rules,
        registry_uri=registry_uri,
        pushgateway_url=pushgateway_url,
        run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
    )
    _with_volumes(
        planned.set_display_name("Configuration and data version").set_caching_options(False).set_retry(KF.retries)
    )
    run_params, data_dir = planned.outputs["params"], planned.outputs["data_dir"]

    validated = validate(params=run_params, data_dir=data_dir)
    _with_volumes(validated.set_display_name("Validate annotation").set_caching_options(True))
    encoded = encode(params=run_params, transcripts=validated.outputs["transcripts"])
    encoded.set_display_name("Track store").set_caching_options(True)
    tracks = encoded.outputs["tracks"]
    grouped = pairs(params=run_params, data_dir=data_dir, transcripts=validated.outputs["transcripts"])
    _with_volumes(grouped.set_display_name("Isoform and paralog groups").set_caching_options(True))

    # The reconstruction baseline: one pod, placed as the one-GPU trainer; the same global batch as either branch.
    baseline = reconstruct(
        params=run_params,
        gpu_count=gpu_count,
        transcripts=validated.outputs["transcripts"],
        groups=grouped.outputs["groups"],
        tracks=tracks,
        checkpoint_dir=planned.outputs["run_dir"],
    )
    baseline.set_display_name("Reconstruction baseline (1 GPU)").set_caching_options(True).set_retry(KF.retries)
    _on_one_gpu(baseline, planned.outputs["node_selector"])
    kubernetes.mount_pvc(baseline, pvc_name=KF.checkpoints_pvc, mount_path=KF.checkpoints_mount)

    def evaluate(model) -> None:
        # Each training branch ends in the same evaluation (the local runner has no dsl.OneOf to join them).
        # Fine-tuning by train fraction (pretrained vs scratch) trains networks: one GPU, like single-GPU training.
        tuned = finetune(
            params=run_params,
            data_dir=data_dir,
            transcripts=validated.outputs["transcripts"],
            groups=grouped.outputs["groups"],
            tracks=tracks,
            model=model,
        )
        tuned.set_display_name("Fine-tuning by train fraction").set_caching_options(True)
        _with_volumes(_on_one_gpu(tuned, planned.outputs["node_selector"]))
        evaluate_and_register(
            params=run_params,
            data_dir=data_dir,
            registry_uri=registry_uri,
            transcripts=validated.outputs["transcripts"],
            groups=grouped.outputs["groups"],
            tracks=tracks,
            model=model,
            reconstruction=baseline.outputs["model"],
        ).set_display_name("Evaluate and register")

    with dsl.If(gpu_count == 1, name="one-gpu"):
        single = train(
            params=run_params,
            transcripts=validated.outputs["transcripts"],
            groups=grouped.outputs["groups"],
            tracks=tracks,
            checkpoint_dir=planned.outputs["run_dir"],
        )
        single.set_display_name("Contrastive training (1 GPU)").set_caching_options(True).set_retry(KF.retries)
        _on_one_gpu(single, planned.outputs["node_selector"])
        kubernetes.mount_pvc(single, pvc_name=KF.checkpoints_pvc, mount_path=KF.checkpoints_mount)
        evaluate(model=single.outputs["model"])
    with dsl.Else(name="trainjob"):
        several = train_distributed(
            params=run_params,
            gpu_count=gpu_count,
            gpu_type=gpu_type,
            run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            run_dir=planned.outputs["run_dir"],
            image=IMAGE,
            transcripts=validated.outputs["transcripts"],
            groups=grouped.outputs["groups"],
            tracks=tracks,
        )
        several.set_display_name("Contrastive training (Kubeflow Trainer TrainJob)").set_caching_options(
            True
        ).set_retry(KF.retries)
        kubernetes.mount_pvc(several, pvc_name=KF.checkpoints_pvc, mount_path=KF.checkpoints_mount)
        evaluate(model=several.outputs["model"])


def compile_pipeline(package_path: Path = PACKAGE) -> Path:
    compiler.Compiler().compile(isoclr_pipeline, str(package_path))
    return package_path


if __name__ == "__main__":
    print(compile_pipeline())
