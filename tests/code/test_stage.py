"""The one stage runner: staged outputs moved into place only on success, project errors as one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from isoclr import stage
from isoclr.artifacts import STAGE_OUTPUTS, STAGES, Paths
from isoclr.config import Config
from isoclr.errors import IsoclrError
from tests.conftest import ROOT, tiny_params


def test_every_stage_module_has_the_one_entry():
    for name in STAGES:
        assert callable(stage.stage_module(name).run), name
    with pytest.raises(ValueError, match="unknown stage"):
        stage.stage_module("utils")


def test_outputs_appear_only_when_the_stage_succeeds(tmp_path):
    paths = Paths.under(tmp_path)
    with stage.staged("pairs", paths) as work:
        assert work.groups.parent != paths.groups.parent and work.groups.name == paths.groups.name
        work.groups.write_text("new")
        assert not paths.groups.exists()  # nothing at the output path while the stage runs
    assert paths.groups.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == [
        "groups.parquet"
    ]  # pairs_summary not written: none; no staging left


def test_a_failed_stage_leaves_the_old_outputs_and_no_partial_file(tmp_path):
    paths = Paths.under(tmp_path)
    paths.groups.write_text("old")
    with pytest.raises(IsoclrError), stage.staged("pairs", paths) as work:
        work.groups.write_text("half")
        raise IsoclrError(f"bad row in {work.groups}")
    assert paths.groups.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["groups.parquet"]


def test_a_folder_output_is_replaced_whole(tmp_path):
    paths = Paths.under(tmp_path)
    (paths.tracks / "old").mkdir(parents=True)
    with stage.staged("encode", paths) as work:
        (work.tracks / "shard").mkdir(parents=True)
    assert [p.name for p in paths.tracks.iterdir()] == ["shard"]


def test_reports_kept_on_failure_say_why_and_stale_results_go(tmp_path):
    paths = Paths.under(tmp_path)
    paths.transcripts.write_text("stale table of an earlier run")
    with pytest.raises(IsoclrError) as caught, stage.staged("validate", paths, ("quarantine",)) as work:
        work.quarantine.write_text("rule\\n")
        work.transcripts.write_text("half")
        raise IsoclrError(f"too many records quarantined: see {work.quarantine}")
    assert paths.quarantine.read_text() == "rule\\n" and not paths.transcripts.exists()
    assert str(paths.quarantine) in str(caught.value)  # the message names the final path, not the staging one


def test_execute_turns_a_project_error_into_one_line_and_exit_1(tmp_path):
    script = f"""
import json
from pathlib import Path
from isoclr import stage
from isoclr.artifacts import Paths
from isoclr.config import Config
cfg = Config.model_validate(json.loads({json.dumps(json.dumps(tiny_params()))}))
stage.execute("pairs", cfg, Paths.under(Path({str(tmp_path)!r})))
"""
    reply = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert reply.returncode == 1, reply.stderr
    lines = reply.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), reply.stderr
    assert "transcripts.parquet does not exist: run `isoclr validate` first" in lines[0]


def test_run_meters_the_stage_it_ran(tmp_path, monkeypatch):
    seen = []
    monkeypatch.setattr("isoclr.metrics.StageRun.push", lambda self: seen.append(self) or True)
    paths = Paths.under(tmp_path)
    paths.probe.mkdir(parents=True)
    halflife = {"isoclr": {"pearson_r": 0.5}, "isoclr_minus_random_init": {"pearson_r": 0.1}}
    paths.probe_metrics.write_text(json.dumps({"halflife": halflife, "mrl": halflife}))
    cfg = Config.model_validate(tiny_params())
    result = stage.run("gate", cfg, paths, compare_champion=False)
    assert result.passed and json.loads(paths.decision.read_text())["passed"] is True
    assert [run.stage for run in seen] == ["gate"]
    assert seen[0].registry.get_sample_value("isoclr_gate_passed") == 1
    assert seen[0].registry.get_sample_value("isoclr_stage_success") == 1


def test_stage_outputs_are_declared_for_every_stage():
    assert set(STAGE_OUTPUTS) == set(STAGES)


def test_staging_left_by_a_killed_run_is_cleared_by_the_next_stage_run(tmp_path):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    abandoned = tmp_path / f"{stage.STAGING_PREFIX}validate-{gone.stdout.strip()}"  # another stage's, process gone
    (abandoned / "transcripts.parquet").parent.mkdir(parents=True)
    (abandoned / "transcripts.parquet").write_text("half")
    alive = tmp_path / f"{stage.STAGING_PREFIX}encode-{os.getpid()}"  # a running process's: kept
    alive.mkdir()
    with stage.staged("pairs", Paths.under(tmp_path)) as work:
        work.groups.write_text("whole")
    assert not abandoned.exists() and alive.exists()
    assert (tmp_path / "groups.parquet").read_text() == "whole"
