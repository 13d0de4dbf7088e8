from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def register(
    params: dict,
    registry_uri: str,
    model: Input[Model],
    results: Input[Dataset],
    decision: Input[Artifact],
    record: Output[Artifact],
) -> str:
    """Write an immutable model version to the registry and move the champion; returns the version id."""
    from isoclr import stage
    from isoclr.artifacts import Paths
    from isoclr.config import Config

    cfg = Config.model_validate({**params, "registry": {"uri": registry_uri}})
    paths = Paths.task(model=model.path, probe=results.path, decision=decision.path, registration=record.path)
    return stage.execute("register", cfg, paths).version or ""
