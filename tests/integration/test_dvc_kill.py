"""Each DVC stage's command killed with SIGKILL at random moments: no partial file ever sits at an output path, and a
rerun of `dvc repro` completes with the outputs of an uninterrupted run (issue: faults leave no corrupt state)."""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from isoclr.artifacts import MODEL_CHECKPOINT, STAGE_OUTPUTS, STAGES, Paths
from tests.conftest import tiny_params
from tests.helpers import repro_workspace

pytestmark = [pytest.mark.slow, pytest.mark.integration]

# Outputs compared with an uninterrupted run: deterministic for a given input (the model by its weights).
# The train log and summary hold wall-clock figures, the gate decision and registration record the
# registry's moving state: for those, the test checks that whatever sits at the path is whole.
COMPARED = {"transcripts", "quarantine", "validate_summary", "tracks", "groups", "pairs_summary", "model", "probe"}
KILLS_PER_STAGE = 2
# A stage of about a second (gate, register) can end before a kill timed from an earlier run's duration lands,
# on a loaded machine: after a miss the test tries again, earlier, this many times more at most.
EXTRA_TRIES = 3


def _env() -> dict:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def _digest(path: Path) -> str:
    """Content digest of a file or a folder (names and bytes); the model by its weights alone."""
    if path.name == Paths().model.name and (path / MODEL_CHECKPOINT).exists():
        state = torch.load(path / MODEL_CHECKPOINT, weights_only=True)["state_dict"]
        return hashlib.sha256(b"".join(state[k].numpy().tobytes() for k in sorted(state))).hexdigest()
    h = hashlib.sha256()
    for item in sorted(path.rglob("*")) if path.is_dir() else [path]:
        if item.is_file():
            h.update(str(item.relative_to(path) if path.is_dir() else item.name).encode())
            h.update(item.read_bytes())
    return h.hexdigest()


def _outputs(workspace: Path, stage: str) -> dict[str, str | None]:
    paths = Paths.under(workspace / "outputs")
    found = {}
    for field in STAGE_OUTPUTS[stage]:
        path = getattr(paths, field)
        # DVC deletes a stage's declared files before running it, leaving their folder: an empty folder is absent.
        present = path.is_file() or (path.is_dir() and any(p.is_file() for p in path.rglob("*")))
        if field in COMPARED:
            found[field] = _digest(path) if present else None
        elif path.suffix == ".json" and path.exists():
            json.loads(path.read_text())  # whole, or the test fails here
    return found


def _repro(workspace: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        ["dvc", "repro", *args], cwd=workspace, env=_env(), start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def _commands(dvc_pid: int) -> list[int]:
    """The processes of dvc's group other than dvc: the stage's command and what it started."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        pid, pgid = int(stat.parent.name), int(fields[2])
        if pgid == dvc_pid and pid != dvc_pid:
            found.append(pid)
    return found


def _stage_command_running(dvc_pid: int) -> bool:
    """Whether the stage's own `isoclr` command runs yet: dvc may first start other processes in its group
    (git), and timing a kill from those can miss a stage of a second."""
    for pid in _commands(dvc_pid):
        try:
            if b"isoclr" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return True
        except OSError:
            continue
    return False


def _kill_stage_command(dvc_pid: int) -> int:
    """SIGKILL the stage's command (and anything it started), not dvc itself: the stage is what crashes.

    dvc runs each stage's command in its own session's process group; dvc is the group's leader. (Killing dvc
    too is no fair test of the stages: dvc writes dvc.lock in place, and a kill during that write leaves a
    truncated lock that dvc then refuses to read.)
    """
    killed = 0
    for pid in _commands(dvc_pid):
        try:
            os.kill(pid, signal.SIGKILL)
            killed += 1
        except ProcessLookupError:
            pass
    return killed


@pytest.fixture(scope="module")
def timed_workspace(tmp_path_factory) -> tuple[Path, dict, dict]:
    """A repro'd workspace, each stage's outputs after an uninterrupted forced run, and how long it took.

    The probe scores no champion here, so its outputs do not depend on what earlier reruns registered.
    """
    params = tiny_params()
    params["probe"]["compare_champion"] = False
    workspace = repro_workspace(tmp_path_factory.mktemp("kill"), params)
    reference, seconds = {}, {}
    for stage in STAGES:
        start = time.monotonic()
        proc = _repro(workspace, "--force", "--single-item", stage)
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out
        seconds[stage] = time.monotonic() - start
        reference[stage] = _outputs(workspace, stage)
    return workspace, reference, seconds


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_killed_at_random_moments_leaves_nothing_partial_and_recovers(timed_workspace, stage):
    workspace, reference, seconds = timed_workspace
    rng = random.Random(f"kill-{stage}")  # reproducible moments, spread over the stage command's run time
    landed = tries = 0
    while tries < KILLS_PER_STAGE or (not landed and tries < KILLS_PER_STAGE + EXTRA_TRIES):
        start = time.monotonic()
        proc = _repro(workspace, "--force", "--single-item", stage)
        while not _stage_command_running(proc.pid) and proc.poll() is None:
            time.sleep(0.01)  # dvc starting up
        remaining = max(seconds[stage] - (time.monotonic() - start), 0.2)
        moment = rng.uniform(0.05, 0.6) * remaining * 0.5 ** (tries - landed)  # earlier after each miss
        time.sleep(moment)
        landed += _kill_stage_command(proc.pid) > 0
        tries += 1
        proc.communicate(timeout=600)
        for field, digest in _outputs(workspace, stage).items():
            assert digest in (None, reference[stage][field]), f"{stage}: partial {field} after a kill at {moment:.1f} s"
        rerun = _repro(workspace)
        out, _ = rerun.communicate(timeout=600)
        assert rerun.returncode == 0, out
        assert _outputs(workspace, stage) == reference[stage], f"{stage}: rerun after a kill at {moment:.1f} s"
    assert landed, f"{stage}: no kill landed while the stage's command ran"
    # What a killed run left in its staging folder is at no output path; the next stage that runs clears it
    # (the rerun may not run the killed stage at all: DVC restores its outputs from the run cache).
    last = _repro(workspace, "--force", "--single-item", "gate")
    out, _ = last.communicate(timeout=600)
    assert last.returncode == 0, out
    staging = list((workspace / "outputs").rglob(".staging-*"))
    assert staging == [], f"{stage}: staging folders left: {staging}"
