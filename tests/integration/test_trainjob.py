"""The TrainJob the training launcher submits, built by the Kubeflow SDK, checked against the CRD schema.

The SDK's TrainerClient talks to a local server that answers the Kubernetes API
routes it uses (the torch-distributed runtime, the TrainJob list and create).
"""

from __future__ import annotations

import pytest
import yaml

from isoclr.config import load
from isoclr.kubeflow import RUN_LABEL, launch_trainjob, train_command, trainer_client, trainjob_name, trainjob_shape
from tests.conftest import ROOT
from tests.integration.crd import SCHEMAS, errors
from tests.integration.fake_api import serve

pytestmark = pytest.mark.filterwarnings("ignore::pydantic.PydanticDeprecatedSince20")

GROUP = "/apis/trainer.kubeflow.org/v1alpha1"
IMAGE = "ghcr.io/isoclr/isoclr:test"


@pytest.fixture
def k8s_api():
    runtime = yaml.safe_load((SCHEMAS / "torch-distributed-runtime.yaml").read_text())
    ns = load(ROOT / "params.yaml").kubeflow.namespace
    api, server = serve(
        {
            ("GET", "/api/v1/namespaces/kubeflow-system/configmaps/kubeflow-trainer-public"): (
                200,
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": "kubeflow-trainer-public"},
                    "data": {"kubeflow_trainer_version": "v2.3.0"},
                },
            ),
            ("GET", f"{GROUP}/clustertrainingruntimes/torch-distributed"): (200, runtime),
            ("GET", f"{GROUP}/namespaces/{ns}/trainjobs"): (
                200,
                {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJobList", "items": []},
            ),
            ("POST", f"{GROUP}/namespaces/{ns}/trainjobs"): lambda r: (201, r.body),
        }
    )
    yield api
    server.shutdown()


def _submitted(k8s_api, gpu_count: int) -> dict:
    kf = load(ROOT / "params.yaml").kubeflow
    client = trainer_client(kf.namespace, host=k8s_api.url)
    name = launch_trainjob(
        client,
        kf,
        image=IMAGE,
        gpu_count=gpu_count,
        gpu_type="nvidia-tesla-a100",
        run_id="Run-42",
        run_dir="/mnt/isoclr/runs/run-42",
    )
    [post] = [r for r in k8s_api.requests if r.method == "POST"]
    assert post.body["metadata"]["name"] == name == trainjob_name("Run-42")
    return post.body


@pytest.mark.parametrize("gpu_count", [2, 16])
def test_the_sdk_builds_a_trainjob_the_crd_schema_accepts(k8s_api, gpu_count):
    job = _submitted(k8s_api, gpu_count)
    assert errors(job) == []
    assert job["apiVersion"] == "trainer.kubeflow.org/v1alpha1" and job["kind"] == "TrainJob"
    assert job["spec"]["runtimeRef"] == {"kind": "ClusterTrainingRuntime", "name": "torch-distributed"}


def test_the_schema_check_catches_a_misspelt_or_misplaced_field(k8s_api):
    job = _submitted(k8s_api, 2)
    job["spec"]["trainer"]["numNode"] = 2
    pod = job["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0]["template"][
        "spec"
    ]["template"]["spec"]
    pod["tolerations"][0]["effect"] = 3
    found = errors(job)
    assert any("numNode" in e for e in found) and any("tolerations/0/effect" in e for e in found), found


def test_the_trainjob_runs_isoclr_train_under_torchrun_on_the_gpu_pool(k8s_api):
    kf = load(ROOT / "params.yaml").kubeflow
    job = _submitted(k8s_api, 16)
    trainer = job["spec"]["trainer"]
    nodes, per_node = trainjob_shape(16, kf.gpus_per_node)
    assert (trainer["numNodes"], nodes, per_node) == (2, 2, 8)
    assert (
        trainer["resourcesPerNode"]["limits"]["nvidia.com/gpu"]
        == trainer["resourcesPerNode"]["requests"]["nvidia.com/gpu"]
        == 8
    )
    assert trainer["image"] == IMAGE
    assert trainer["command"] == train_command("/mnt/isoclr/runs/run-42")
    assert trainer["command"][:4] == ["torchrun", "-m", "isoclr.cli", "train"]
    [patch] = job["spec"]["runtimePatches"]
    [node] = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    pod = node["template"]["spec"]["template"]
    assert pod["metadata"]["labels"][RUN_LABEL] == "Run-42"
    spec = pod["spec"]
    assert spec["serviceAccountName"] == kf.service_account
    assert spec["nodeSelector"] == {kf.gpu_node_label: "nvidia-tesla-a100"}
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert spec["volumes"] == [{"name": "checkpoints", "persistentVolumeClaim": {"claimName": kf.checkpoints_pvc}}]
    assert spec["containers"][0]["volumeMounts"][0]["mountPath"] == kf.checkpoints_mount


def test_a_retried_launcher_follows_the_job_it_started(k8s_api):
    kf = load(ROOT / "params.yaml").kubeflow
    _submitted(k8s_api, 2)
    k8s_api.routes[("POST", f"{GROUP}/namespaces/{kf.namespace}/trainjobs")] = (
        409,
        {"kind": "Status", "code": 409, "reason": "AlreadyExists"},
    )
    client = trainer_client(kf.namespace, host=k8s_api.url)
    name = launch_trainjob(
        client, kf, image=IMAGE, gpu_count=2, gpu_type="nvidia-l4", run_id="Run-42", run_dir="/mnt/isoclr/runs/run-42"
    )
    assert name == trainjob_name("Run-42")
    k8s_api.routes[("POST", f"{GROUP}/namespaces/{kf.namespace}/trainjobs")] = (
        403,
        {"kind": "Status", "code": 403, "reason": "Forbidden"},
    )
    with pytest.raises(RuntimeError, match="Failed to create TrainJob"):
        launch_trainjob(
            client,
            kf,
            image=IMAGE,
            gpu_count=2,
            gpu_type="nvidia-l4",
            run_id="Run-42",
            run_dir="/mnt/isoclr/runs/run-42",
        )


def test_gpu_counts_outside_the_allowed_set_are_refused():
    with pytest.raises(ValueError, match="gpu_count"):
        trainjob_shape(3, 8)
    assert trainjob_shape(4, 8) == (1, 4)


class _Job:
    """What the Kubeflow SDK's TrainerClient answers about one TrainJob, scripted."""

    def __init__(self, final: str):
        self.final, self.calls = final, []

    def wait_for_job_status(self, name, status=frozenset({"Complete"}), timeout=600, polling_interval=2):
        self.calls.append(set(status))
        if status == {"Complete"} and self.final == "Failed":
            raise RuntimeError(f"TrainJob {name} is Failed")
        return type("TrainJob", (), {"status": "Complete"})()

    def get_job_logs(self, name, follow=False):
        assert follow
        yield from ["step 1 loss 4.1", "step 2 loss 3.9"]

    def get_job_events(self, name):
        return [
            type("Event", (), {"event_time": "t0", "reason": "BackoffLimitExceeded", "message": "node-0 OOMKilled"})()
        ]


def test_following_a_trainjob_streams_its_log_and_surfaces_a_failure_with_its_events():
    from isoclr.kubeflow import follow_trainjob

    kf = load(ROOT / "params.yaml").kubeflow
    lines = []
    assert follow_trainjob(_Job("Complete"), "isoclr-x", kf, echo=lines.append) == "Complete"
    assert lines == ["step 1 loss 4.1", "step 2 loss 3.9"]
    with pytest.raises(RuntimeError, match="OOMKilled"):
        follow_trainjob(_Job("Failed"), "isoclr-x", kf, echo=lines.append)


def test_torchrun_and_isoclr_train_both_accept_the_trainjob_command(tmp_path):
    """The command parses as torchrun's (module mode) and its script arguments as `isoclr train`'s."""
    import typer.main
    from torch.distributed.run import get_args_parser

    from isoclr.cli import app

    (tmp_path / "params.yaml").write_text((ROOT / "params.yaml").read_text())
    command = train_command(str(tmp_path))
    launcher = get_args_parser().parse_args(command[1:])
    assert launcher.module and launcher.training_script == "isoclr.cli"
    assert launcher.training_script_args[0] == "train"
    train = typer.main.get_command(app).commands["train"]
    ctx = train.make_context("train", list(launcher.training_script_args[1:]))
    assert ctx.params["model_dir"] == tmp_path / "model" and ctx.params["resume"] is True
    assert (
        ctx.params["tracks"] == tmp_path / "tracks" and ctx.params["no_tracks"] is False
    )  # staged by train_distributed
    template = yaml.safe_load((ROOT / "k8s" / "base" / "trainjob-template.yaml").read_text())
    assert get_args_parser().parse_args(template["spec"]["trainer"]["command"][1:]).training_script == "isoclr.cli"
