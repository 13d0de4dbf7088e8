"""The IsoCLR pipeline for Kubeflow Pipelines v2: the same DAG as dvc.yaml.

Defaults come from params.yaml at compile time; every value can be overridden
per run from the Kubeflow UI (`params` is the whole configuration as a dict).
Run `python -m pipelines.isoclr_pipeline` to recompile the committed YAML.
(No `from __future__ import annotations` here: kfp reads the real annotations.)
"""

from pathlib import Path

from kfp import compiler, dsl

from components.gate.component import gate
from components.pairs.component import pairs
from components.probe.component import probe
from components.register.component import register
from components.train.component import train
from components.validate.component import validate
from isoclr.config import load

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(__file__).with_name("isoclr_pipeline.yaml")
DEFAULTS = load(ROOT / "params.yaml")


@dsl.pipeline(name="isoclr", description="Validate annotation, build isoform/paralog pairs, train, probe, gate and register an IsoCLR encoder.")
def isoclr_pipeline(
    params: dict = DEFAULTS.to_dict(),
    data_dir: str = DEFAULTS.data.dir,
    registry_uri: str = DEFAULTS.registry.uri,
):
    validated = validate(params=params, data_dir=data_dir).set_display_name("Validate annotation")
    grouped = pairs(params=params, data_dir=data_dir, transcripts=validated.outputs["transcripts"]).set_display_name(
        "Isoform and paralog groups"
    )
    trained = train(
        params=params, transcripts=validated.outputs["transcripts"], groups=grouped.outputs["groups"]
    ).set_display_name("Contrastive training")
    probed = probe(
        params=params,
        data_dir=data_dir,
        transcripts=validated.outputs["transcripts"],
        groups=grouped.outputs["groups"],
        model=trained.outputs["model"],
    ).set_display_name("Linear probes")
    decided = gate(params=params, results=probed.outputs["results"]).set_display_name("Gate")
    with dsl.If(decided.outputs["Output"] == "passed", name="gate-passed"):
        register(
            params=params,
            registry_uri=registry_uri,
            model=trained.outputs["model"],
            results=probed.outputs["results"],
            decision=decided.outputs["decision"],
        ).set_display_name("Register model").set_caching_options(False)


def compile_pipeline(package_path: Path = PACKAGE) -> Path:
    compiler.Compiler().compile(isoclr_pipeline, str(package_path))
    return package_path


if __name__ == "__main__":
    print(compile_pipeline())
