"""The committed dvc.lock matches the code, data and params: a clean clone's `make run` then rebuilds
exactly what the lock describes instead of rewriting it (and turning the tree dirty mid-run)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILT = "outputs/"  # artifacts of earlier stages: absent in a clean clone, rebuilt by the run


def stale_entries(status: dict) -> list[str]:
    """What `dvc status --json` says has changed, other than artifacts that are simply not built yet."""
    stale = []
    for stage, changes in status.items():
        for change in changes:
            if not isinstance(change, dict):
                stale.append(f"{stage}: {change}")  # "changed command", "always changed", ...
                continue
            for kind, entries in change.items():
                if kind == "changed outs":
                    continue
                if kind != "changed deps":
                    stale.append(f"{stage}: {kind} {entries}")
                    continue
                for path, state in entries.items():
                    if path.startswith(BUILT):
                        continue  # built or not, an artifact's own hash is DVC's business
                    stale.append(f"{stage}: {path} {state}")
    return stale


def test_stale_entries_reads_dvc_status():
    status = {
        "train": [
            {"changed deps": {"src/isoclr/train.py": "modified", "outputs/groups.parquet": "deleted"}},
            {"changed outs": {"outputs/model": "not in cache"}},
        ],
        "probe": ["changed command"],
    }
    assert stale_entries(status) == ["train: src/isoclr/train.py modified", "probe: changed command"]


@pytest.mark.integration
def test_committed_lock_matches_code_data_and_params(sample_data):
    dvc = shutil.which("dvc")
    assert dvc, "dvc is a dependency of the package"
    reply = subprocess.run([dvc, "status", "--json"], cwd=ROOT, capture_output=True, text=True, check=True)
    stale = stale_entries(json.loads(reply.stdout or "{}"))
    assert not stale, "dvc.lock is stale; run `make run` and commit dvc.lock:\n" + "\n".join(stale)
