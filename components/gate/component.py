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

    from isoclr.config import Config
    from isoclr.gate import markdown, run_gate

    cfg = Config.model_validate(params)
    cfg = cfg.model_copy(update={"registry": cfg.registry.model_copy(update={"uri": registry_uri})})
    outcome = run_gate(cfg, Path(results.path) / "metrics.json", Path(decision.path))
    decision.metadata["passed"] = outcome["passed"]
    decision.metadata["failed_rules"] = [f"{r['kind']} {r['task']} {r['metric']}: {r['reason']}"
                                         for r in outcome["rules"] if not r["passed"]]
    Path(verdict.path).write_text(markdown(outcome))
    return "passed" if outcome["passed"] else "failed"
