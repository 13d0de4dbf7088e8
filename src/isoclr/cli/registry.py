"""`isoclr registry ...`: inspect and manage the model registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from isoclr.cli.common import load_config, reported

app = typer.Typer(help="Inspect and manage the model registry.", no_args_is_help=True)

Uri = Annotated[
    str | None,
    typer.Option(
        "--registry", help="Registry URI, file://PATH or gs://BUCKET/PREFIX (default: registry.uri in params.yaml)."
    ),
]


def _registry_call(registry: str | None, call):
    """Run ``call(uri)``; a project error becomes one `error:` line and exit 1."""
    uri = registry if registry is not None else load_config(Path("params.yaml")).registry.uri
    with reported():
        return call(uri)


def _resolve(uri: str, version: str) -> str:
    from isoclr.registry import resolve

    return resolve(uri, version)


@app.command("list")
def registry_list(registry: Uri = None) -> None:
    """List the complete (manifest-verified) model versions, oldest first; `*` marks the champion."""
    from isoclr.registry import list_versions

    for version in _registry_call(registry, list_versions):
        typer.echo(f"{'*' if version['champion'] else ' '} {version['version']}")


@app.command("champion")
def registry_champion(registry: Uri = None) -> None:
    """Print the champion version id."""
    from isoclr.registry import CHAMPION

    typer.echo(_registry_call(registry, lambda uri: _resolve(uri, CHAMPION)))


@app.command("show")
def registry_show(
    version: Annotated[str, typer.Argument(help="Version id, or `champion`.")], registry: Uri = None
) -> None:
    """Print a version's manifest and metadata (provenance, config, metrics, gate decision) as JSON."""
    from isoclr.registry import verify, version_metadata

    def show(uri: str) -> dict:
        resolved = _resolve(uri, version)
        return {"manifest": verify(uri, resolved), "metadata": version_metadata(uri, resolved)}

    typer.echo(json.dumps(_registry_call(registry, show), indent=2))


@app.command("fetch")
def registry_fetch(
    version: Annotated[str, typer.Argument(help="Version id, or `champion`.")],
    dest: Annotated[Path, typer.Option(help="Folder to write the model files to (checksums verified).")] = Path(
        "model"
    ),
    registry: Uri = None,
) -> None:
    """Download a version's model folder (encoder.pt, meta.json) after verifying every checksum."""
    from isoclr.registry import download

    resolved = _registry_call(registry, lambda uri: _resolve(uri, version))
    _registry_call(registry, lambda uri: download(uri, resolved, dest))
    typer.echo(f"{resolved} -> {dest}")


@app.command("rollback")
def registry_rollback(
    version: Annotated[str, typer.Argument(help="Version id to make champion.")], registry: Uri = None
) -> None:
    """Move the champion pointer to another (earlier) trusted version; the move is kept in its history."""
    from isoclr.registry import set_champion

    _registry_call(registry, lambda uri: set_champion(uri, version))
    typer.echo(f"champion -> {version}")


@app.command("gc")
def registry_gc(
    older_than: Annotated[
        float, typer.Option("--older-than", help="Only partial uploads unchanged for this many hours.")
    ] = 24.0,
    delete: Annotated[bool, typer.Option("--delete", help="Remove them (default: only list them).")] = False,
    registry: Uri = None,
) -> None:
    """List (dry run) or remove orphaned partial uploads: version folders without a manifest, left by a crash.

    Never touches a version with a manifest, the champion or any version in its history.
    """
    from isoclr.registry import gc

    found = _registry_call(registry, lambda uri: gc(uri, older_than, delete=delete))
    for partial in found:
        verb = "removed" if partial["removed"] else "would remove"
        typer.echo(f"{verb} {partial['prefix']} ({len(partial['objects'])} objects, {partial['age_hours']:.1f} h old)")
    if not found:
        typer.echo(f"no partial uploads older than {older_than:g} h")
    elif not delete:
        typer.echo("dry run: rerun with --delete to remove them")
