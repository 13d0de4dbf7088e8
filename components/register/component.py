from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def register(params: dict, registry_uri: str, model: Input[Model], results: Input[Dataset], decision: Input[Artifact], record: Output[Artifact]) -> str:
    """Write an immutable model version to the registry and move the champion; returns the version id."""
    from pathlib import Path

    from isoclr.config import Config
    from isoclr.registry import run_register

    cfg = Config.model_validate({**params, "registry": {"uri": registry_uri}})
    result = run_register(cfg, Path(model.path), Path(results.path) / "metrics.json", Path(decision.path), Path(record.path))
    return result["version"] if result else ""
