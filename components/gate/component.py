from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Output

from components import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def gate(params: dict, results: Input[Dataset], decision: Output[Artifact]) -> str:
    """Apply the gate rules to the probe metrics; returns "passed" or "failed"."""
    from pathlib import Path

    from isoclr.config import Config
    from isoclr.gate import run_gate

    verdict = run_gate(Config.model_validate(params), Path(results.path) / "metrics.json", Path(decision.path))
    decision.metadata["passed"] = verdict["passed"]
    return "passed" if verdict["passed"] else "failed"
