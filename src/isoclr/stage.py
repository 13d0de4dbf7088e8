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
from isoclr.artifacts import STAGE_INPUTS, STAGE_OUTPUTS, STAGES, Paths
from isoclr.atomic import process_alive
from isoclr.config import Config
from isoclr.errors import IsoclrError, MissingInputError

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


def _clear_abandoned(parent: Path) -> None:
    """Remove staging folders that killed stage runs left behind (their process is gone). Any stage clears
    them, not only the one that left them: `dvc repro` may restore that stage's outputs from its run cache
    instead of running it again."""
    for folder in parent.glob(f"{STAGING_PREFIX}*-*"):
        pid = folder.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def _final_names(err: BaseException, moved: dict[str, Path], paths: Paths) -> None:
    """Say the final paths, not the staging ones, in a project error's message."""
    if isinstance(err, IsoclrError) and err.args and isinstance(err.args[0], str):
        message = err.args[0]
        for field, staged_path in moved.items():
            message = message.replace(str(staged_path), str(getattr(paths, field)))
        err.args = (message, *err.args[1:])


@contextmanager
def staged(name: str, paths: Paths, kept_on_failure: tuple[str, ...] = ()) -> Iterator[Paths]:
    """``paths`` with the outputs of stage ``name`` moved to a staging folder; on success, move them into place.

    The staging folder sits beside each output (same file system, so the final move is a rename) and is
    removed whatever happens. A folder output replaces the old folder whole: a reader sees the old
    folder, briefly nothing, or the new folder, never a mix. When the stage fails with a project error,
    the outputs named in ``kept_on_failure`` (reports that say why, such as validate's quarantine) are
    moved into place all the same, and the stage's other outputs are removed so that no stale result
    sits beside them.
    """
    fields = STAGE_OUTPUTS[name]
    stages: dict[Path, Path] = {}
    moved = {}
    for field in fields:
        final = Path(getattr(paths, field))
        parent = final.parent
        if parent not in stages:
            parent.mkdir(parents=True, exist_ok=True)
            _clear_abandoned(parent)
            stages[parent] = parent / f"{STAGING_PREFIX}{name}-{os.getpid()}"
            shutil.rmtree(stages[parent], ignore_errors=True)
            stages[parent].mkdir()
        moved[field] = stages[parent] / final.name

    def place(selected: tuple[str, ...]) -> None:
        for field in selected:
            final = Path(getattr(paths, field))
            _move_into_place(moved[field], final, stages[final.parent])

    try:
        yield dataclasses.replace(paths, **moved)
        if _primary():
            place(fields)
    except IsoclrError as err:
        _final_names(err, moved, paths)
        if kept_on_failure and _primary():
            for field in fields:
                if field not in kept_on_failure:
                    _remove(Path(getattr(paths, field)))
            place(kept_on_failure)
        raise
    finally:
        for folder in stages.values():
            shutil.rmtree(folder, ignore_errors=True)


def stage_module(name: str):
    """The module of stage ``name`` (imported on demand, so `--help` stays instant)."""
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; stages are {', '.join(STAGES)}")
    return importlib.import_module(f"isoclr.{name}")


def _relocated(result: Result, work: Paths, paths: Paths, fields: tuple[str, ...]) -> Result:
    """The result with any path it holds inside a staged output pointing at the output's final place."""
    if not dataclasses.is_dataclass(result):
        return result
    changes = {}
    for item in dataclasses.fields(result):
        value = getattr(result, item.name)
        if not isinstance(value, Path):
            continue
        for field in fields:
            staged_path, final = Path(getattr(work, field)), Path(getattr(paths, field))
            if value == staged_path or staged_path in value.parents:
                changes[item.name] = final / value.relative_to(staged_path)
                break
    return dataclasses.replace(result, **changes) if changes else result


# The stage that writes each artifact, for the message when one is missing.
_WRITER = {field: stage for stage, fields in STAGE_OUTPUTS.items() for field in fields}


def require_inputs(name: str, paths: Paths, tracks: bool = True) -> None:
    """Every artifact stage ``name`` reads is there, or a :class:`MissingInputError` names each missing one and
    the stage that makes it."""
    missing = []
    for field in STAGE_INPUTS[name]:
        if field == "tracks" and not tracks:
            continue
        path = Path(getattr(paths, field))
        if not path.exists():
            hint = " (or pass --no-tracks to encode from the table)" if field == "tracks" else ""
            missing.append(f"{path} does not exist: run `isoclr {_WRITER[field]}` first{hint}")
    if missing:
        raise MissingInputError("; ".join(missing))


def run(name: str, cfg: Config, paths: Paths = Paths(), **options) -> Result:
    """Run stage ``name``: inputs checked, metered, outputs staged and moved into place on success."""
    module = stage_module(name)
    require_inputs(name, paths, tracks=options.get("tracks", True))
    kept = getattr(module, "KEPT_ON_FAILURE", ())
    with metrics.stage_metrics(cfg, name) as meter, staged(name, paths, kept) as work:
        result = module.run(cfg, work, **options)
        result.record(meter)
    return _relocated(result, work, paths, STAGE_OUTPUTS[name])


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
