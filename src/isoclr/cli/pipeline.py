"""`isoclr pipeline ...`: submit a Kubeflow run or schedule retraining."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from isoclr.cli.common import Params, fail, load_config

app = typer.Typer(
    help="Submit a Kubeflow run or schedule retraining (compile with `python -m pipelines.isoclr_pipeline`).",
    no_args_is_help=True,
)

Package = Annotated[Path, typer.Option(help="Compiled pipeline YAML.")]
Host = Annotated[str | None, typer.Option(help="KFP API URL (default: kubeflow.host in params.yaml).")]
RunArgs = Annotated[
    list[str] | None, typer.Option("--arg", "-a", help="Run parameter NAME=VALUE (value parsed as YAML), repeatable.")
]
PIPELINE_YAML = Path("pipelines/isoclr_pipeline.yaml")


def _run_arguments(pairs: list[str] | None) -> dict:
    import yaml

    arguments = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            fail(f"--arg takes NAME=VALUE, got {pair!r}")
        arguments[name] = yaml.safe_load(value)
    return arguments


@app.command("submit")
def pipeline_submit(
    params: Params = Path("params.yaml"),
    package: Package = PIPELINE_YAML,
    host: Host = None,
    arg: RunArgs = None,
    run_name: Annotated[str | None, typer.Option(help="Run name shown in the UI.")] = None,
) -> None:
    """Start one run on Kubeflow Pipelines, as the service account in params.yaml (kubeflow block)."""
    from isoclr.kubeflow import kfp_client, submit

    cfg = load_config(params)
    client = kfp_client(host or cfg.kubeflow.host, cfg.kubeflow.namespace)
    typer.echo(submit(client, package, cfg, arguments=_run_arguments(arg), run_name=run_name))


@app.command("schedule")
def pipeline_schedule(
    params: Params = Path("params.yaml"),
    package: Package = PIPELINE_YAML,
    host: Host = None,
    arg: RunArgs = None,
    name: Annotated[str, typer.Option(help="Recurring run name.")] = "isoclr-retraining",
    cron: Annotated[
        str | None, typer.Option(help="6-field cron, seconds first (default: kubeflow.schedule_cron).")
    ] = None,
) -> None:
    """Create the recurring retraining run: cron schedule, one run at a time, no catch-up, no cache."""
    from isoclr.kubeflow import kfp_client, schedule

    cfg = load_config(params)
    client = kfp_client(host or cfg.kubeflow.host, cfg.kubeflow.namespace)
    typer.echo(schedule(client, package, cfg, name=name, cron=cron, arguments=_run_arguments(arg)))
