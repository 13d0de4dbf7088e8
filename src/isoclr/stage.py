"""The one stage runner: the CLI, ``dvc repro`` (through the CLI) and the Kubeflow components all call it.

Every stage is a module ``isoclr.<stage>`` with one entry, ``run(cfg, paths, **options) -> Result``,
whose result knows how to put its numbers into the stage's Prometheus metrics and how to say what
it did in a few lines. Around that entry the runner

- meters the stage (duration, success, the result's own metrics) and pushes them once;
- writes the stage's outputs (:data:`isoclr.artifacts.STAGE_OUTPUTS`) under a staging folder beside
  them and moves each into place only when the stage has succeeded, so a killed or failed stage
  never leaves a partial file at an output path;
- in :func:`execute`, turns any :class:`~isoclr.errors.IsoclrError` into one ``error:`` line on
  stderr and exit code 1.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from isoclr import metrics
from isoclr.artifacts import STAGE_OUTPUTS, STAGES, Paths
from isoclr.config import Config
from isoclr.errors import IsoclrError

STAGING_PREFIX = ".staging-"


class Result(Protocol):
    """What every stage's ``run`` returns."""

    def record(self, meter: metrics.StageRun) -> None:
        """Set this result's numbers on the stage's metrics."""

    def summary(self) -> str:
        """A few lines for the terminal: what was written, and how it went."""


def _primary() -> bool:
    # Under torchrun only rank 0 writes outputs; the other ranks' staging folders stay empty.
    return os.environ.get(metrics.RANK_ENV, "0") == "0"


def _move_into_place(staged: Path, final: Path, trash: Path) -> None:
    if not staged.exists():
        return  # an optional output the stage did not write
    if final.is_dir() and not final.is_symlink():
        final.rename(trash / f"old-{final.name}")
    os.replace(staged, final)


@contextmanager
def staged(name: str, paths: Paths) -> Iterator[Paths]:
    """``paths`` with the outputs of stage ``name`` moved to a staging folder; on success, move them into place.

    The staging folder sits beside each output (same file system, so the final move is a rename) and is
    removed whatever happens. A folder output replaces the old folder whole: a reader sees the old
    folder, briefly nothing, or the new folder, never a mix.
    """
    fields = STAGE_OUTPUTS[name]
    stages: dict[Path, Path] = {}
    moved = {}
    for field in fields:
        final = Path(getattr(paths, field))
        parent = final.parent
        if parent not in stages:
            parent.mkdir(parents=True, exist_ok=True)
            stages[parent] = parent / f"{STAGING_PREFIX}{name}-{os.getpid()}"
            shutil.rmtree(stages[parent], ignore_errors=True)
            stages[parent].mkdir()
        moved[field] = stages[parent] / final.name
    try:
        yield dataclasses.replace(paths, **moved)
        if _primary():
            for field in fields:
                final = Path(getattr(paths, field))
                _move_into_place(moved[field], final, stages[final.parent])
    finally:
        for folder in stages.values():
            shutil.rmtree(folder, ignore_errors=True)


def stage_module(name: str):
    """The module of stage ``name`` (imported on demand, so `--help` stays instant)."""
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; stages are {', '.join(STAGES)}")
    return importlib.import_module(f"isoclr.{name}")


def run(name: str, cfg: Config, paths: Paths = Paths(), **options) -> Result:
    """Run stage ``name``: metered, outputs staged and moved into place on success."""
    module = stage_module(name)
    with metrics.stage_metrics(cfg, name) as meter, staged(name, paths) as work:
        result = module.run(cfg, work, **options)
        result.record(meter)
    return result


def metadata(result: Result) -> dict:
    """The result's scalar fields, for a Kubeflow artifact's metadata."""
    fields = dataclasses.asdict(result) if dataclasses.is_dataclass(result) else {}
    return {k: v for k, v in fields.items() if isinstance(v, (str, int, float, bool))}


def fail(message: str) -> None:
    """Print one ``error:`` line and exit 1 (the drivers' way to stop on a project error)."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(1)


def execute(name: str, cfg: Config, paths: Paths = Paths(), **options) -> Result:
    """:func:`run`, with a project error reported as one ``error:`` line and exit code 1."""
    try:
        return run(name, cfg, paths, **options)
    except IsoclrError as err:
        fail(str(err))
