"""What every `isoclr` subcommand shares: option types, the configuration, and one way to fail."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from isoclr.artifacts import Paths
from isoclr.config import Config, load
from isoclr.errors import IsoclrError

DEFAULT = Paths()
Params = Annotated[
    Path, typer.Option("--params", "-p", help="The pipeline configuration.", exists=True, dir_okay=False)
]
DataDir = Annotated[
    Path | None, typer.Option(help="Folder with the input files named in params.yaml (default: data.dir there).")
]
Transcripts = Annotated[Path, typer.Option(help="Input: validated transcripts table.")]
Groups = Annotated[Path, typer.Option(help="Input: groups table from `isoclr pairs`.")]
ModelDir = Annotated[Path, typer.Option(help="Input: trained model folder.")]
Tracks = Annotated[Path, typer.Option(help="Input: the track store from `isoclr encode`.")]
# train and reconstruct share the resumable-checkpoint options (their defaults differ).
CheckpointDir = Annotated[
    Path, typer.Option(help="Output: resumable checkpoint (last.pt) every train.checkpoint_every steps.")
]
Resume = Annotated[
    bool, typer.Option("--resume/--no-resume", help="Continue from the checkpoint in --checkpoint-dir if there is one.")
]
NoTracks = Annotated[
    bool, typer.Option("--no-tracks", help="Encode from the transcripts table instead of the track store.")
]


def fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


@contextmanager
def reported() -> Iterator[None]:
    """A project error becomes one `error:` line and exit code 1 (as in the stage runner)."""
    try:
        yield
    except IsoclrError as err:
        fail(str(err))


def load_config(params: Path) -> Config:
    with reported():
        return load(params)


def run_stage(name: str, params: Path | Config, paths: Paths, **options) -> None:
    """Run one stage through the shared runner and print what it says about itself."""
    from isoclr import stage

    cfg = params if isinstance(params, Config) else load_config(params)
    result = stage.execute(name, cfg, paths, **options)
    text = result.summary()
    if text:
        typer.echo(text)
