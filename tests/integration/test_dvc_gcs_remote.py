"""`dvc push` / `dvc pull` of the sample data through the committed `gcs` remote, against fake-gcs-server.

The endpoint lives only in .dvc/config.local (uncommitted), exactly as the
README tells a developer to point the remote at an emulator.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from google.api_core.exceptions import Conflict
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from tests.conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.integration]

BUCKET, PREFIX = "isoclr-data", "dvc-store"  # the committed remote: gs://isoclr-data/dvc-store


def _dvc(args: list[str], cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != "STORAGE_EMULATOR_HOST"}  # the local config must suffice
    # gcsfs hangs for minutes probing hierarchical-namespace support on an emulator
    env.update(
        GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT="false",
        NO_GCE_CHECK="true",
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    )
    result = subprocess.run(["dvc", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _digests(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_push_and_pull_the_sample_through_the_gcs_remote(fake_gcs_server, sample_data, tmp_path):
    repo = tmp_path / "repo"
    (repo / ".dvc").mkdir(parents=True)
    for name in (".dvc/config", ".dvc/.gitignore", "data.dvc"):
        shutil.copy2(ROOT / name, repo / name)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    committed = (repo / ".dvc" / "config").read_text()

    # the data into this copy's cache, from the sample remote shipped in the repository
    _dvc(["remote", "modify", "--local", "sample", "url", str(ROOT / "dvc-store")], repo)
    _dvc(["pull", "--quiet", "-r", "sample", "data.dvc"], repo)
    assert _digests(repo / "data") == _digests(sample_data)

    client = storage.Client(
        project="isoclr-test", credentials=AnonymousCredentials(), client_options={"api_endpoint": fake_gcs_server.url}
    )
    try:
        client.create_bucket(BUCKET)
    except Conflict:
        pass
    _dvc(["remote", "modify", "--local", "gcs", "endpointurl", fake_gcs_server.url], repo)
    _dvc(["remote", "modify", "--local", "gcs", "allow_anonymous_login", "true"], repo)
    _dvc(["push", "-r", "gcs", "data.dvc"], repo)
    stored = [b.name for b in client.list_blobs(BUCKET, prefix=f"{PREFIX}/files/md5/")]
    n_files = len(_digests(sample_data))
    assert len(stored) == n_files + 1  # every file plus the directory listing (.dir)

    shutil.rmtree(repo / "data")
    shutil.rmtree(repo / ".dvc" / "cache")
    _dvc(["pull", "-r", "gcs", "data.dvc"], repo)
    assert _digests(repo / "data") == _digests(sample_data)
    assert "in sync" in _dvc(["status", "-c", "-r", "gcs", "data.dvc"], repo)
    assert (repo / ".dvc" / "config").read_text() == committed  # the endpoint stayed in config.local
    assert "endpointurl" in (repo / ".dvc" / "config.local").read_text()
