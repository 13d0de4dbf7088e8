"""DDP on CPU with gloo: gradients equal one process on the concatenated batch (CNN and Mamba); torchrun runs the
stage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.multiprocessing as mp

from isoclr import distributed
from isoclr.config import MambaConfig, ModelConfig
from isoclr.models import ContrastiveModel
from isoclr.sampling import Batch, PairSampler
from isoclr.train import batch_loss, make_loss, read_training_set
from tests.conftest import ROOT
from tests.helpers import tiny_config, train_command, write_params, write_tables

WORLD = 2
PAIRS = 8  # global batch: 4 pairs per rank
# The ranks normally finish in ~20 s; past these a stuck rank fails the test with a message
# (well inside pytest's 480 s per-test timeout) instead of hanging it.
COLLECTIVE_TIMEOUT = timedelta(seconds=120)
JOIN_DEADLINE_S = 300
JOIN_POLL_S = 1.0


@pytest.fixture
def tables(tmp_path):
    return write_tables(tmp_path)


def model_config(arch: str) -> ModelConfig:
    """The tiny test encoder of ``arch``: the CNN of tiny_config, or a bidirectional two-layer Mamba."""
    cnn = tiny_config().model
    if arch == "cnn":
        return cnn
    return cnn.model_copy(
        update={"arch": "mamba", "mamba": MambaConfig(d_model=16, n_layers=2, d_state=4, bidirectional=True)}
    )


def _global_batch(paths) -> Batch:
    cfg = tiny_config(batch_genes=PAIRS, bucket_batches=1).train
    return PairSampler(read_training_set(*paths), cfg).sample(0)


def _rank_slice(batch: Batch, rank: int) -> Batch:
    """This rank's pairs: its share of the first views and of the second views."""
    n = len(batch.groups) // WORLD
    pairs = slice(rank * n, (rank + 1) * n)
    first = torch.arange(len(batch.groups))[pairs]
    rows = torch.cat([first, len(batch.groups) + first])
    return Batch(
        batch.x[rows], batch.lengths[rows], batch.groups[pairs], batch.n_isoforms[pairs], batch.pair_types[pairs]
    )


def _loss_and_grads(model, batch) -> tuple[float, dict]:
    loss = batch_loss(model, make_loss(tiny_config().train), batch, weighted=True)
    loss.backward()
    params = model.module.named_parameters() if hasattr(model, "module") else model.named_parameters()
    return loss.item(), {k: p.grad.clone() for k, p in params}


def _worker(rank: int, rendezvous: str, paths, out: str, arch: str) -> None:
    # Rendezvous through a FileStore in tmp_path: no port to probe and then race for (a probed
    # ephemeral port can be taken, or self-connected to, before rank 0 binds it). Gloo's own pair
    # sockets bind port 0 on loopback. One thread per rank: two ranks on two cores.
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank), GLOO_SOCKET_IFNAME="lo")
    torch.set_num_threads(1)
    ctx = distributed.setup(init_method=f"file://{rendezvous}", timeout=COLLECTIVE_TIMEOUT)
    try:
        torch.manual_seed(0)
        model = torch.nn.parallel.DistributedDataParallel(ContrastiveModel(model_config(arch)))
        loss, grads = _loss_and_grads(model, _rank_slice(_global_batch(paths), ctx.rank))
        torch.save({"loss": loss, "grads": grads}, f"{out}.{rank}")
        del model  # its reducer holds the process group: freed before teardown, as train() does
    finally:
        distributed.teardown()


def run_ranks(fn, args: tuple, deadline_s: float = JOIN_DEADLINE_S) -> None:
    """Run ``fn(rank, *args)`` in WORLD spawned processes; fail if one fails or all have not ended by the deadline.

    spawn, not fork: a forked child inherits the parent's OpenMP thread pool and can deadlock in its first op.
    A rank that raises or dies makes ``join`` kill the others and raise; a rank that hangs is killed here.
    """
    context = mp.start_processes(fn, args=args, nprocs=WORLD, join=False, start_method="spawn")
    deadline = time.monotonic() + deadline_s
    try:
        while not context.join(timeout=JOIN_POLL_S):
            if time.monotonic() > deadline:
                alive = [rank for rank, p in enumerate(context.processes) if p.is_alive()]
                pytest.fail(f"DDP ranks {alive} still running after {deadline_s} s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
                process.join()


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["cnn", "mamba"])
def test_ddp_loss_and_gradients_equal_one_process_on_the_concatenated_batch(tables, tmp_path, arch):
    out = str(tmp_path / "rank")
    run_ranks(_worker, (str(tmp_path / "rendezvous"), tables, out, arch))
    torch.manual_seed(0)
    loss, grads = _loss_and_grads(ContrastiveModel(model_config(arch)), _global_batch(tables))
    for rank in range(WORLD):
        got = torch.load(f"{out}.{rank}", weights_only=True)
        assert got["loss"] == pytest.approx(loss, rel=1e-5)
        assert got["grads"].keys() == grads.keys()
        for name, g in grads.items():
            torch.testing.assert_close(got["grads"][name], g, rtol=1e-4, atol=1e-6, msg=name)
    # Without the gather each rank would only see its own 4 pairs: a different loss.
    torch.manual_seed(0)
    alone, _ = _loss_and_grads(ContrastiveModel(model_config(arch)), _rank_slice(_global_batch(tables), 0))
    assert abs(alone - loss) > 1e-3


@pytest.mark.slow
@pytest.mark.integration
def test_torchrun_trains_on_two_processes(tables, tmp_path):
    params = write_params(tmp_path / "params.yaml", steps=3)
    torchrun = Path(sys.executable).with_name("torchrun")
    result = subprocess.run(
        [
            str(torchrun),
            "--standalone",
            f"--nproc_per_node={WORLD}",
            "-m",
            "isoclr.cli",
            "train",
            *train_command(params, tables, tmp_path),
        ],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "train.json").read_text())
    assert summary["world_size"] == WORLD and summary["steps"] == 3
    assert pd.read_csv(tmp_path / "log.csv")["step"].tolist() == [0, 1, 2]  # rank 0 logs once per step
    # Global batch: both ranks' samples (two views of 4 genes each) per step.
    meta = json.loads((tmp_path / "model" / "meta.json").read_text())
    assert meta["world_size"] == WORLD
