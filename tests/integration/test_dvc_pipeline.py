"""`dvc repro` end to end on the sample data, in a fresh copy of the repository."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import tiny_params
from tests.helpers import repro_workspace, run_checked

pytestmark = [pytest.mark.slow, pytest.mark.integration]


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return run_checked(cmd, cwd)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    return repro_workspace(tmp_path_factory.mktemp("clone"), tiny_params())


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
