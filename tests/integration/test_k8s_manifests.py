"""k8s/: every overlay builds with `kubectl kustomize`, passes `kubernetes-validate --strict`, and its
custom resources (TrainJob, PodMonitor) pass the CRD schemas shipped in k8s/schemas/."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from isoclr.config import load
from tests.conftest import ROOT
from tests.integration.crd import FILES, SCHEMAS, errors

pytestmark = pytest.mark.integration
OVERLAYS = sorted(p.name for p in (ROOT / "k8s" / "overlays").iterdir())
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(BIN)) or shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed: pip install -e '.[dev]' installs it")
    return path


def _build(overlay: str) -> str:
    # params.yaml (two levels up) feeds the ConfigMap, so files outside the kustomization are allowed.
    cmd = [
        _tool("kubectl"),
        "kustomize",
        "--load-restrictor",
        "LoadRestrictionsNone",
        str(ROOT / "k8s" / "overlays" / overlay),
    ]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module", params=OVERLAYS)
def built(request, tmp_path_factory) -> tuple[str, Path, list[dict]]:
    text = _build(request.param)
    out = tmp_path_factory.mktemp(request.param) / "all.yaml"
    out.write_text(text)
    return request.param, out, [d for d in yaml.safe_load_all(text) if d]


def test_there_are_dev_and_prod_overlays():
    assert OVERLAYS == ["dev", "prod"]


def test_builtin_kinds_pass_kubernetes_validate_strict(built):
    _, path, _ = built
    result = subprocess.run(
        [_tool("kubernetes-validate"), "--strict", "--quiet", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ERROR" not in result.stdout


def test_custom_resources_pass_their_shipped_crd_schemas(built):
    _, _, docs = built
    custom = [d for d in docs if (d["apiVersion"], d["kind"]) in FILES]
    assert {d["kind"] for d in custom} == {"TrainJob", "PodMonitor"}
    for doc in custom:
        assert errors(doc) == [], doc["kind"]
    # Every apiVersion in the output is either built in (kubernetes-validate knows it) or shipped here.
    builtin = {"v1", "apps/v1", "rbac.authorization.k8s.io/v1"}
    assert {d["apiVersion"] for d in docs} <= builtin | {a for a, _ in FILES}


def test_the_reference_torch_distributed_runtime_passes_its_schema():
    runtime = yaml.safe_load((SCHEMAS / "torch-distributed-runtime.yaml").read_text())
    assert errors(runtime) == []


def test_overlays_hold_what_the_pipeline_names(built):
    overlay, _, docs = built
    kf = load(ROOT / "params.yaml").kubeflow
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    [namespace] = by_kind["Namespace"]
    assert {
        d["metadata"].get("namespace")
        for d in docs
        if d["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume")
    } == {namespace["metadata"]["name"]}
    [sa] = by_kind["ServiceAccount"]
    assert sa["metadata"]["name"] == kf.service_account
    assert sa["metadata"]["annotations"]["iam.gke.io/gcp-service-account"].endswith(".iam.gserviceaccount.com")
    assert "PROJECT_ID" not in sa["metadata"]["annotations"]["iam.gke.io/gcp-service-account"], (
        f"{overlay} must name its GCP project"
    )
    assert not by_kind.get("Secret"), "no key files: Workload Identity only"
    pvcs = {p["metadata"]["name"]: p for p in by_kind["PersistentVolumeClaim"]}
    assert pvcs[kf.checkpoints_pvc]["spec"]["accessModes"] == ["ReadWriteMany"]
    assert kf.data_pvc in pvcs
    # The launcher's service account may create and follow TrainJobs.
    [role] = by_kind["Role"]
    trainjobs = next(r for r in role["rules"] if "trainjobs" in r["resources"])
    assert {"create", "get", "list", "watch"} <= set(trainjobs["verbs"])
    [binding] = by_kind["RoleBinding"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": kf.service_account, "namespace": namespace["metadata"]["name"]}
    ]
    # Pushgateway: Deployment, Service and the PodMonitor that selects its pods.
    [deployment] = [d for d in by_kind["Deployment"] if d["metadata"]["name"] == "pushgateway"]
    [monitor] = by_kind["PodMonitor"]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items()
        <= deployment["spec"]["template"]["metadata"]["labels"].items()
    )
    assert monitor["spec"]["podMetricsEndpoints"][0]["honorLabels"] is True
    assert [s["metadata"]["name"] for s in by_kind["Service"]] == ["pushgateway"]
    # The TrainJob template schedules onto the GPU pool like the pipeline's own TrainJobs.
    [job] = by_kind["TrainJob"]
    assert job["spec"]["runtimeRef"]["name"] == kf.training_runtime and job["spec"]["suspend"] is True
    pod = job["spec"]["runtimePatches"][0]["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"][0]["template"][
        "spec"
    ]["template"]["spec"]
    assert pod["serviceAccountName"] == kf.service_account
    assert kf.gpu_node_label in pod["nodeSelector"]
    assert pod["tolerations"] == [t.model_dump(exclude_none=True) for t in kf.tolerations]
    configmaps = [c["metadata"]["name"] for c in by_kind["ConfigMap"]]
    assert any(name.startswith("isoclr-params") for name in configmaps)
    assert pod["volumes"][1]["configMap"]["name"] in configmaps  # kustomize rewrote the hashed name
