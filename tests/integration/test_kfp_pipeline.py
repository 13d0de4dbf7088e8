"""The Kubeflow pipeline: committed YAML matches the code; the whole DAG runs in kfp's local runner."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import tiny_params


def test_compiled_yaml_matches_code(tmp_path):
    from pipelines.isoclr_pipeline import PACKAGE, compile_pipeline

    fresh = list(yaml.safe_load_all(compile_pipeline(tmp_path / "fresh.yaml").read_text()))
    committed = list(yaml.safe_load_all(PACKAGE.read_text()))
    assert fresh == committed, "pipelines/isoclr_pipeline.yaml is stale: run `make pipeline` and commit it"


def _compiled() -> tuple[dict, dict]:
    """The committed pipeline spec and its Kubernetes platform spec (kfp-kubernetes settings)."""
    from pipelines.isoclr_pipeline import PACKAGE

    spec, platform = yaml.safe_load_all(PACKAGE.read_text())
    return spec, platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def _tasks(spec: dict) -> dict:
    """Every task of the pipeline by name, whatever condition group holds it."""
    tasks = dict(spec["root"]["dag"]["tasks"])
    for component in spec["components"].values():
        tasks.update(component.get("dag", {}).get("tasks", {}))
    return tasks


def test_registration_runs_only_when_the_gate_passes_and_is_never_cached():
    spec, _ = _compiled()
    tasks = _tasks(spec)
    gate_condition = next(t for t in tasks.values() if "== 'passed'" in t.get("triggerPolicy", {}).get("condition", ""))
    register_group = spec["components"][gate_condition["componentRef"]["name"]]["dag"]["tasks"]
    assert "register" in register_group
    assert not tasks["register"].get("cachingOptions", {}).get("enableCache", False)
    assert tasks["register"]["retryPolicy"]["maxRetryCount"] >= 1


def test_run_parameters_default_to_params_yaml():
    from isoclr.config import load
    from tests.conftest import ROOT

    cfg = load(ROOT / "params.yaml")
    spec, _ = _compiled()
    inputs = {k: v.get("defaultValue") for k, v in spec["root"]["inputDefinitions"]["parameters"].items()}
    assert set(inputs) >= {
        "data_version",
        "model_size",
        "train_steps",
        "gpu_count",
        "gpu_type",
        "gate_rules",
        "registry_uri",
        "pushgateway_url",
    }
    assert inputs["params"] == cfg.to_dict()
    assert inputs["train_steps"] == cfg.train.steps
    assert inputs["gpu_count"] == cfg.kubeflow.gpu_count and inputs["gpu_type"] == cfg.kubeflow.gpu_type
    assert inputs["gate_rules"] == [r.model_dump(mode="json") for r in cfg.gate.rules]
    assert inputs["registry_uri"] == cfg.registry.uri and inputs["pushgateway_url"] == (
        cfg.metrics.pushgateway_url or ""
    )


def test_training_pod_asks_for_a_gpu_on_the_gpu_pool_with_its_service_account():
    from isoclr.config import load
    from tests.conftest import ROOT

    kf = load(ROOT / "params.yaml").kubeflow
    spec, k8s = _compiled()
    resources = spec["deploymentSpec"]["executors"]["exec-train"]["container"]["resources"]
    assert resources["accelerator"]["resourceType"] == kf.gpu_resource == "nvidia.com/gpu"
    assert resources["accelerator"]["resourceCount"] == "1"
    assert resources["resourceCpuLimit"] == kf.cpu and resources["resourceMemoryLimit"] == kf.memory
    train = k8s["exec-train"]
    # The node selector is the configure step's output, built from the run's gpu_type.
    assert (
        train["nodeSelector"]["nodeSelectorJson"]["componentInputParameter"]
        == "pipelinechannel--configure-node_selector"
    )
    assert train["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert {m["mountPath"] for m in train["pvcMount"]} == {kf.checkpoints_mount}
    # KFP sets the pods' service account per run (kfp.Client, tested in test_kfp_client); the TrainJob's
    # pods get the one in the kubeflow block of `params`, whose default is compiled in.
    params = spec["root"]["inputDefinitions"]["parameters"]["params"]["defaultValue"]
    assert params["kubeflow"]["service_account"] == kf.service_account == "isoclr-pipeline"
    assert k8s["exec-train-distributed"]["pvcMount"][0]["mountPath"] == kf.checkpoints_mount


def test_more_than_one_gpu_trains_in_a_trainjob_and_both_branches_evaluate_their_model():
    spec, _ = _compiled()
    tasks = _tasks(spec)
    branches = {}
    for task in tasks.values():
        condition = task.get("triggerPolicy", {}).get("condition", "")
        if "pipelinechannel--gpu_count" in condition:
            branches[condition] = spec["components"][task["componentRef"]["name"]]["dag"]["tasks"]
    one = next(t for c, t in branches.items() if c.endswith("== 1") and not c.startswith("!"))
    several = next(t for c, t in branches.items() if c.startswith("!"))
    assert "train" in one and "train-distributed" in several
    for group, trainer in ((one, "train"), (several, "train-distributed")):
        evaluate = next(t for name, t in group.items() if name.startswith("evaluate-and-register"))
        assert evaluate["inputs"]["artifacts"]["model"]["taskOutputArtifact"]["producerTask"] == trainer


def test_the_track_store_is_built_once_after_validate_and_read_by_both_trainers_and_the_probes():
    spec, _ = _compiled()
    tasks = _tasks(spec)
    encode = tasks["encode"]["inputs"]["artifacts"]["transcripts"]["taskOutputArtifact"]
    assert encode == {"outputArtifactKey": "transcripts", "producerTask": "validate"}
    assert [name for name in tasks if name.startswith("encode")] == ["encode"]
    # The branches' group takes encode's output; inside, every group and task passes it on by name.
    branches = spec["root"]["dag"]["tasks"]["condition-branches-1"]["inputs"]["artifacts"]
    assert branches["pipelinechannel--encode-tracks"]["taskOutputArtifact"] == {
        "outputArtifactKey": "tracks",
        "producerTask": "encode",
    }
    inner = {
        name: component["dag"]["tasks"]
        for name, component in spec["components"].items()
        if name.startswith("comp-condition")
    }
    passed_on = {"componentInputArtifact": "pipelinechannel--encode-tracks"}
    fed = {
        task["componentRef"]["name"]
        for group in inner.values()
        for task in group.values()
        if passed_on in task.get("inputs", {}).get("artifacts", {}).values()
    }
    assert fed >= {"comp-train", "comp-train-distributed", "comp-evaluate-and-register", "comp-evaluate-and-register-2"}
    for name in ("comp-evaluate-and-register", "comp-evaluate-and-register-2"):
        probe = spec["components"][name]["dag"]["tasks"]["probe"]
        assert probe["inputs"]["artifacts"]["tracks"] == {"componentInputArtifact": "tracks"}


def test_caching_is_explicit_and_display_names_are_human():
    spec, _ = _compiled()
    for name, task in _tasks(spec).items():
        if task["componentRef"]["name"].startswith(("comp-condition", "comp-evaluate-and-register")):
            continue
        assert "cachingOptions" in task or name in ("gate", "configure", "register"), name
        assert task.get("taskInfo", {}).get("name"), name
    tasks = _tasks(spec)
    for name in ("configure", "gate", "register"):
        assert not tasks[name].get("cachingOptions", {}).get("enableCache", False), name
    for name in ("configure", "train", "train-distributed", "register"):
        assert tasks[name]["retryPolicy"]["maxRetryCount"] >= 1, name
    assert tasks["train"]["taskInfo"]["name"] == "Contrastive training (1 GPU)"


@pytest.mark.slow
@pytest.mark.integration
def test_local_run_registers_a_model(tmp_path, sample_data, monkeypatch):
    import kfp.local

    from isoclr.config import Config
    from isoclr.registry import champion, list_versions
    from pipelines.isoclr_pipeline import isoclr_pipeline

    # Components run `python3` from PATH: make it this interpreter, with isoclr installed.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(tmp_path)
    kfp.local.init(runner=kfp.local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path / "kfp"))
    registry = f"file://{tmp_path / 'registry'}"
    params = tiny_params()
    # A 3-step model need not beat its random init: the test is about the pipeline, not the model.
    params["gate"]["min_gain_over_random_init"] = -1.0
    params = Config.model_validate(params).to_dict()  # kfp parameters take no nulls
    isoclr_pipeline(
        params=params,
        data_version=str(sample_data),
        train_steps=params["train"]["steps"],
        gate_rules=params["gate"]["rules"],
        registry_uri=registry,
    )
    versions = list_versions(registry)
    assert len(versions) == 1
    assert champion(registry) == versions[0]["version"]


def test_probe_is_cached_with_the_champion_as_an_input_read_by_an_uncached_task():
    spec, _ = _compiled()
    tasks = _tasks(spec)
    assert not tasks["champion"].get("cachingOptions", {}).get("enableCache", False)
    assert tasks["probe"]["cachingOptions"]["enableCache"] is True
    champion_input = tasks["probe"]["inputs"]["parameters"]["champion_version"]
    assert champion_input["taskOutputParameter"]["producerTask"] == "champion"
    assert "registry_uri" not in tasks["probe"]["inputs"]["parameters"]  # nothing else that moves


def test_each_classification_and_multilabel_task_gets_a_classification_metrics_task():
    from isoclr.classification import classified_tasks
    from isoclr.config import load
    from tests.conftest import ROOT

    expected = classified_tasks(load(ROOT / "params.yaml").probe)
    assert "go_mf" in expected and "coding" in expected and "halflife" not in expected
    spec, _ = _compiled()
    for name in ("comp-evaluate-and-register", "comp-evaluate-and-register-2"):
        tasks = spec["components"][name]["dag"]["tasks"]
        shown = [t for t in tasks.values() if t["componentRef"]["name"].startswith("comp-classification-metrics")]
        assert sorted(t["inputs"]["parameters"]["task"]["runtimeValue"]["constant"] for t in shown) == sorted(expected)
        for t in shown:
            assert t["inputs"]["artifacts"]["results"]["taskOutputArtifact"] == {
                "outputArtifactKey": "results",
                "producerTask": "probe",
            }
    outputs = spec["components"]["comp-classification-metrics"]["outputDefinitions"]["artifacts"]
    assert outputs["curves"]["artifactType"]["schemaTitle"] == "system.ClassificationMetrics"


def test_finetuning_follows_each_trainer_on_one_gpu_of_the_run_pool():
    from isoclr.config import load
    from tests.conftest import ROOT

    kf = load(ROOT / "params.yaml").kubeflow
    spec, k8s = _compiled()
    producers = set()
    for component in spec["components"].values():
        for name, task in component.get("dag", {}).get("tasks", {}).items():
            if task["componentRef"]["name"].startswith("comp-finetune"):
                producers.add(task["inputs"]["artifacts"]["model"]["taskOutputArtifact"]["producerTask"])
                assert task["cachingOptions"]["enableCache"] is True, name
    assert producers == {"train", "train-distributed"}
    for executor in ("exec-finetune", "exec-finetune-2"):
        resources = spec["deploymentSpec"]["executors"][executor]["container"]["resources"]
        assert resources["accelerator"]["resourceType"] == kf.gpu_resource
        assert resources["accelerator"]["resourceCount"] == "1"
        pod = k8s[executor]
        assert (
            pod["nodeSelector"]["nodeSelectorJson"]["componentInputParameter"]
            == "pipelinechannel--configure-node_selector"
        )
        assert {m["mountPath"] for m in pod["pvcMount"]} == {kf.data_mount, kf.checkpoints_mount}  # label files


def test_the_reconstruction_baseline_trains_once_on_a_gpu_and_both_branches_probe_it():
    spec, k8s = _compiled()
    executors = spec["deploymentSpec"]["executors"]
    assert executors["exec-reconstruct"]["container"]["resources"] == executors["exec-train"]["container"]["resources"]
    for key in ("tolerations", "pvcMount"):
        assert k8s["exec-reconstruct"][key] == k8s["exec-train"][key], key
    # The configure step's node selector, read directly here (train reads it through its condition group).
    selector = k8s["exec-reconstruct"]["nodeSelector"]["nodeSelectorJson"]["taskOutputParameter"]
    assert selector == {"outputParameterKey": "node_selector", "producerTask": "configure"}
    tasks = _tasks(spec)
    assert [name for name in tasks if name.startswith("reconstruct")] == ["reconstruct"]
    reconstruct = tasks["reconstruct"]
    assert reconstruct["taskInfo"]["name"] == "Reconstruction baseline (1 GPU)"
    assert reconstruct["cachingOptions"]["enableCache"] is True and reconstruct["retryPolicy"]["maxRetryCount"] >= 1
    assert reconstruct["inputs"]["parameters"]["gpu_count"] == {"componentInputParameter": "gpu_count"}
    assert reconstruct["inputs"]["artifacts"]["tracks"]["taskOutputArtifact"]["producerTask"] == "encode"
    evaluations = [
        task
        for component in spec["components"].values()
        for name, task in component.get("dag", {}).get("tasks", {}).items()
        if name.startswith("evaluate-and-register")
    ]
    assert len(evaluations) == 2  # one per training branch, both given the one reconstruction model
    for evaluate in evaluations:
        source = evaluate["inputs"]["artifacts"]["reconstruction"]["componentInputArtifact"]
        assert source == "pipelinechannel--reconstruct-model"
    for name in ("comp-evaluate-and-register", "comp-evaluate-and-register-2"):
        probe = spec["components"][name]["dag"]["tasks"]["probe"]
        assert probe["inputs"]["artifacts"]["reconstruction"] == {"componentInputArtifact": "reconstruction"}
