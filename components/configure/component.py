from typing import NamedTuple

from kfp import dsl

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def configure(
    params: dict,
    data_version: str,
    model_size: str,
    train_steps: int,
    gpu_type: str,
    gate_rules: list,
    registry_uri: str,
    pushgateway_url: str,
    run_id: str,
) -> NamedTuple("Plan", [("params", dict), ("data_dir", str), ("node_selector", dict), ("run_dir", str)]):
    """The run's configuration (params.yaml with the run parameters applied, validated) and its data
    folder (a DVC revision is fetched once onto the checkpoints PVC; gs:// is the mounted bucket)."""
    from collections import namedtuple

    from isoclr.config import Config
    from isoclr.kubeflow import effective_params, plan_run

    merged = effective_params(
        params,
        model_size=model_size,
        train_steps=train_steps,
        gate_rules=gate_rules,
        registry_uri=registry_uri,
        pushgateway_url=pushgateway_url,
    )
    plan = plan_run(Config.model_validate(merged), data_version=data_version, gpu_type=gpu_type, run_id=run_id)
    Plan = namedtuple("Plan", ["params", "data_dir", "node_selector", "run_dir"])
    return Plan(merged, plan["data_dir"], plan["node_selector"], plan["run_dir"])
