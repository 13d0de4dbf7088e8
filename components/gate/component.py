from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def gate(
    params: dict,
    registry_uri: str,
    results: Input[Dataset],
    decision: Output[Artifact],
    verdict: Output[Markdown],
) -> str:
    """Apply the gate rules to the probe metrics; returns "passed" or "failed".

    ``verdict`` shows every rule with its number, bound and reason in the UI, so a
    run that registers nothing says why.
    """
    from pathlib import Path

    from isoclr import stage
    from isoclr.artifacts import Paths
    from isoclr.config import Config

    cfg = Config.model_validate({**params, "registry": {"uri": registry_uri}})
    outcome = stage.execute("gate", cfg, Paths.task(probe=results.path, decision=decision.path))
    decision.metadata.update({"passed": outcome.passed, "failed_rules": outcome.failed_rules()})
    Path(verdict.path).write_text(outcome.markdown())
    return "passed" if outcome.passed else "failed"
