"""A training process killed with SIGKILL resumes from its checkpoint to the uninterrupted weights."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from isoclr.artifacts import LAST_CHECKPOINT, MODEL_CHECKPOINT
from tests.conftest import ROOT
from tests.helpers import train_command, write_params, write_tables

STEPS = 30
EVERY = 5


@pytest.fixture
def tables(tmp_path):
    return write_tables(tmp_path)


def _run(params: Path, tables, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "isoclr.cli", "train", *train_command(params, tables, out, *extra)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
@pytest.mark.integration
def test_sigkilled_training_resumes_to_the_same_weights(tables, tmp_path):
    params = write_params(tmp_path / "params.yaml", steps=STEPS, checkpoint_every=EVERY)
    full = _run(params, tables, tmp_path / "full")
    assert full.returncode == 0, full.stderr[-3000:]

    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "isoclr.cli", "train", *train_command(params, tables, out)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    checkpoint = out / "checkpoints" / LAST_CHECKPOINT
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "model" / MODEL_CHECKPOINT).exists(), "the run finished before it was killed"
    killed_at = torch.load(checkpoint, weights_only=True)["next_step"]
    assert 0 < killed_at < STEPS

    resumed = _run(params, tables, out, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming at step {killed_at}" in resumed.stdout
    a = torch.load(tmp_path / "full" / "model" / MODEL_CHECKPOINT, weights_only=True)["state_dict"]
    b = torch.load(out / "model" / MODEL_CHECKPOINT, weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=1e-6, msg=name)
    assert pd.read_csv(out / "log.csv")["step"].tolist() == list(range(STEPS))
