"""DDP on CPU with gloo: gradients equal one process on the concatenated batch; torchrun runs the stage."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.multiprocessing as mp
import yaml

from isoclr import distributed
from isoclr.models import ContrastiveModel
from isoclr.sampling import Batch, PairSampler
from isoclr.train import batch_loss, make_loss, read_training_set
from tests.code.test_train import tables, tiny_config  # noqa: F401  (fixture)

WORLD = 2
PAIRS = 8  # global batch: 4 pairs per rank
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _global_batch(paths) -> Batch:
    cfg = tiny_config(batch_genes=PAIRS, bucket_batches=1).train
    return PairSampler(read_training_set(*paths), cfg).sample(0)


def _rank_slice(batch: Batch, rank: int) -> Batch:
    """This rank's pairs: its share of the first views and of the second views."""
    n = len(batch.groups) // WORLD
    pairs = slice(rank * n, (rank + 1) * n)
    rows = torch.cat([torch.arange(len(batch.groups))[pairs], len(batch.groups) + torch.arange(len(batch.groups))[pairs]])
    return Batch(batch.x[rows], batch.lengths[rows], batch.groups[pairs], batch.n_isoforms[pairs])


def _loss_and_grads(model, batch) -> tuple[float, dict]:
    loss = batch_loss(model, make_loss(tiny_config().train), batch, weighted=True)
    loss.backward()
    params = model.module.named_parameters() if hasattr(model, "module") else model.named_parameters()
    return loss.item(), {k: p.grad.clone() for k, p in params}


def _worker(rank: int, port: int, paths, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD),
                      LOCAL_RANK=str(rank))
    ctx = distributed.setup()
    try:
        torch.manual_seed(0)
        model = torch.nn.parallel.DistributedDataParallel(ContrastiveModel(tiny_config().model))
        loss, grads = _loss_and_grads(model, _rank_slice(_global_batch(paths), ctx.rank))
        torch.save({"loss": loss, "grads": grads}, f"{out}.{rank}")
    finally:
        distributed.teardown()


@pytest.mark.slow
def test_ddp_loss_and_gradients_equal_one_process_on_the_concatenated_batch(tables, tmp_path):  # noqa: F811
    out = str(tmp_path / "rank")
    # spawn, not fork: a forked child inherits the parent's OpenMP thread pool and can deadlock in its first op.
    mp.start_processes(_worker, args=(_free_port(), tables, out), nprocs=WORLD, join=True, start_method="spawn")
    torch.manual_seed(0)
    loss, grads = _loss_and_grads(ContrastiveModel(tiny_config().model), _global_batch(tables))
    for rank in range(WORLD):
        got = torch.load(f"{out}.{rank}", weights_only=True)
        assert got["loss"] == pytest.approx(loss, rel=1e-5)
        assert got["grads"].keys() == grads.keys()
        for name, g in grads.items():
            torch.testing.assert_close(got["grads"][name], g, rtol=1e-4, atol=1e-6, msg=name)
    # Without the gather each rank would only see its own 4 pairs: a different loss.
    torch.manual_seed(0)
    alone, _ = _loss_and_grads(ContrastiveModel(tiny_config().model), _rank_slice(_global_batch(tables), 0))
    assert abs(alone - loss) > 1e-3


def write_params(path: Path, **train) -> Path:
    path.write_text(yaml.safe_dump(tiny_config(**train).to_dict()))
    return path


def train_command(params: Path, tables, out: Path, *extra: str) -> list[str]:  # noqa: F811
    return [
        "--params", str(params), "--transcripts", str(tables[0]), "--groups", str(tables[1]),
        "--model-dir", str(out / "model"), "--train-log", str(out / "log.csv"), "--metrics", str(out / "train.json"),
        "--checkpoint-dir", str(out / "checkpoints"), *extra,
    ]


@pytest.mark.slow
@pytest.mark.integration
def test_torchrun_trains_on_two_processes(tables, tmp_path):  # noqa: F811
    params = write_params(tmp_path / "params.yaml", steps=3)
    torchrun = Path(sys.executable).with_name("torchrun")
    result = subprocess.run(
        [str(torchrun), "--standalone", f"--nproc_per_node={WORLD}", "-m", "isoclr.train",
         *train_command(params, tables, tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "train.json").read_text())
    assert summary["world_size"] == WORLD and summary["steps"] == 3
    assert pd.read_csv(tmp_path / "log.csv")["step"].tolist() == [0, 1, 2]  # rank 0 logs once per step
    # Global batch: both ranks' samples (two views of 4 genes each) per step.
    meta = json.loads((tmp_path / "model" / "meta.json").read_text())
    assert meta["world_size"] == WORLD
