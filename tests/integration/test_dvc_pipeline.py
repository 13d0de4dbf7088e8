"""`dvc repro` end to end on the sample data, in a fresh copy of the repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, tiny_params

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """The repository's files (committed or not, minus ignored ones) in a new git repo, data pulled by DVC."""
    dest = tmp_path_factory.mktemp("clone")
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    (dest / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    _run(["git", "init", "-q"], dest)
    _run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "snapshot", "--allow-empty"], dest)
    _run(["git", "add", "-A"], dest)
    _run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "snapshot"], dest)
    _run(["dvc", "pull", "--quiet", "data.dvc"], dest)
    _run(["dvc", "repro"], dest)
    return dest


def test_repro_registers_a_champion(workspace):
    record = json.loads((workspace / "outputs" / "registration.json").read_text())
    assert record["registered"] is True
    champion = _run(["isoclr", "registry", "champion", "--registry", "file://registry"], workspace).stdout.strip()
    assert champion == record["version"]


def test_second_repro_is_a_no_op(workspace):
    assert "up to date" in _run(["dvc", "status"], workspace).stdout
    out = _run(["dvc", "repro"], workspace).stdout
    assert "Running stage" not in out


def test_metrics_and_plots_render(workspace):
    metrics = _run(["dvc", "metrics", "show", "--json"], workspace).stdout
    assert "halflife" in metrics and "mrl" in metrics
    _run(["dvc", "plots", "show", "-o", "plots_html"], workspace)
    assert (workspace / "plots_html" / "index.html").stat().st_size > 0
