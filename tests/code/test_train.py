"""The train stage on a tiny synthetic annotation: outputs, determinism, learning, checkpoints, resume."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from isoclr import metrics, stage, tracks
from isoclr.artifacts import LAST_CHECKPOINT, MODEL_CHECKPOINT, MODEL_META
from isoclr.checkpoint import CheckpointError, load_training_state
from isoclr.config.train import PAIR_TYPES
from isoclr.errors import MissingInputError
from isoclr.models import ContrastiveModel
from isoclr.sampling import PairSampler
from isoclr.store import StoreError, write_store
from isoclr.train import (
    LOG_COLUMNS,
    TrainingSetError,
    TrainResult,
    batch_loss,
    compile_per_length,
    lr_factor,
    make_loss,
    read_training_set,
    train_loop,
)
from isoclr.train import run as run_train
from tests.helpers import synthetic_annotation, tiny_config, train_paths, write_tables, write_track_store


@pytest.fixture
def tables(tmp_path):
    return write_tables(tmp_path)


def train(cfg, tables, root, tracks=None, **options) -> TrainResult:
    """The train stage through the runner (metered, outputs staged), writing under ``root``."""
    paths = train_paths(root, tables, tracks)
    return stage.run("train", cfg, paths, tracks=tracks is not None, progress=False, **options)


def weights(root) -> dict:
    return torch.load(root / "model" / MODEL_CHECKPOINT, weights_only=True)["state_dict"]


def test_train_writes_checkpoint_meta_log_and_summary(tables, tmp_path, capsys):
    cfg = tiny_config()
    result = train(cfg, tables, tmp_path / "run")

    assert result.steps == 4 and result.out_dim == 16 and result.parameters > 0 and result.resumed_from == 0
    assert np.isfinite(result.final_loss)
    assert "parameters" in capsys.readouterr().out
    run = tmp_path / "run"
    checkpoint = torch.load(run / "model" / MODEL_CHECKPOINT, weights_only=True)
    assert set(checkpoint) >= {
        "state_dict",
        "model_config",
        "channels",
        "isoclr_version",
        "train_config",
        "provenance",
        "final_loss",
    }
    assert all(not k.startswith("head") for k in checkpoint["state_dict"])  # encoder only
    assert checkpoint["model_config"] == cfg.model.model_dump(mode="json")
    assert checkpoint["channels"] == list(tracks.CHANNELS)
    meta = json.loads((run / "model" / MODEL_META).read_text())
    assert "state_dict" not in meta and meta["final_loss"] == checkpoint["final_loss"] == result.final_loss
    assert meta["train_config"]["steps"] == 4 and "git_commit" in meta["provenance"]
    assert list(meta) == [k for k in checkpoint if k != "state_dict"]
    log = pd.read_csv(run / "train_log.csv")
    assert tuple(log.columns) == LOG_COLUMNS
    assert log["step"].tolist() == [0, 1, 2, 3]
    assert (log["samples_per_s"] > 0).all() and log["loss"].notna().all()
    assert log["lr"].iloc[0] == pytest.approx(cfg.train.learning_rate)  # one warm-up step
    assert result.final_loss == pytest.approx(log["loss"].mean())
    summary = json.loads((run / "train.json").read_text())
    assert summary == result.as_dict() == json.loads(result.summary())
    assert set(summary) == {
        "steps",
        "final_loss",
        "first_loss",
        "seconds",
        "parameters",
        "out_dim",
        "resumed_from",
        "world_size",
        "objective",
        "pairs_by_type",
        "utr_cds_swaps",
    }
    assert summary["objective"] == "contrastive"  # the masked accuracy is the reconstruction objective's only
    # every pair of the run, by type, re-drawn from the sampler; one species: no ortholog, no swap
    by_type = summary["pairs_by_type"]
    assert list(by_type) == list(PAIR_TYPES) and sum(by_type.values()) == 4 * cfg.train.batch_genes
    sampler = PairSampler(read_training_set(*tables), cfg.train)
    drawn = np.concatenate([sampler.sample(s).pair_types.numpy() for s in range(4)])
    assert by_type == {t: int((drawn == i).sum()) for i, t in enumerate(PAIR_TYPES)}
    assert by_type["ortholog"] == 0 and summary["utr_cds_swaps"] == 0
    assert [p.name for p in run.iterdir() if p.name.startswith(stage.STAGING_PREFIX)] == []


def test_same_config_gives_same_weights(tables, tmp_path):
    cfg = tiny_config(steps=3)
    train(cfg, tables, tmp_path / "a")
    train(cfg, tables, tmp_path / "b")
    a, b = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    train(tiny_config(steps=3, seed=1), tables, tmp_path / "c")
    c = weights(tmp_path / "c")
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_loss_on_a_fixed_batch_decreases(tables):
    cfg = tiny_config(steps=30, batch_genes=8, warmup_steps=3, max_length=1024)
    table = read_training_set(*tables)
    fixed = PairSampler(table, cfg.train, seed=123).sample(0)
    torch.manual_seed(0)
    model = ContrastiveModel(cfg.model)
    loss_fn = make_loss(cfg.train)
    model.eval()
    with torch.no_grad():
        before = batch_loss(model, loss_fn, fixed).item()
    train_loop(model, PairSampler(table, cfg.train), cfg.train)
    model.eval()
    with torch.no_grad():
        after = batch_loss(model, loss_fn, fixed).item()
    assert after < before - 1.0, (before, after)


def test_only_the_train_split_is_used(tables):
    table = read_training_set(*tables)
    assert "G09" not in set(table["gene_id"])
    assert table["gene_id"].nunique() == 9


def test_groups_naming_unknown_transcripts_is_an_error(tables, tmp_path):
    transcripts, groups = synthetic_annotation()
    transcripts.iloc[2:].to_parquet(tmp_path / "fewer.parquet")
    with pytest.raises(TrainingSetError, match="rerun the pairs stage"):
        read_training_set(tmp_path / "fewer.parquet", tables[1])


def test_lr_warms_up_then_decays_to_zero():
    factors = [lr_factor(s, 4, 20) for s in range(20)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[4] == 1.0
    assert all(a >= b for a, b in itertools.pairwise(factors[4:]))
    assert lr_factor(20, 4, 20) == pytest.approx(0.0)
    assert lr_factor(0, 0, 10) == 1.0


def test_checkpoints_hold_everything_and_resume_continues_the_log(tables, tmp_path):
    cfg = tiny_config(steps=6, checkpoint_every=4)
    calls = []
    result = train(cfg, tables, tmp_path / "a", on_step=calls.append)
    assert [r["step"] for r in calls] == list(range(6))  # the exporter hook: once per step
    assert set(calls[0]) == set(LOG_COLUMNS)
    last = tmp_path / "a" / "checkpoints" / LAST_CHECKPOINT
    state = load_training_state(last, cfg)
    assert state["next_step"] == 6  # the final state is kept too: a resume of a finished run trains nothing
    assert set(state) >= {"model", "optimiser", "schedule", "rng", "sampler", "next_step", "log"}
    assert set(state["rng"]) >= {"torch", "numpy", "python"}
    assert [row["step"] for row in state["log"]] == list(range(6))
    assert json.loads((tmp_path / "a" / "train.json").read_text())["steps"] == 6 == result.steps
    with pytest.raises(CheckpointError, match="learning_rate"):
        load_training_state(last, tiny_config(steps=6, learning_rate=0.1))
    with pytest.raises(CheckpointError, match="model configuration"):
        bigger = tiny_config(steps=6).model_copy(update={"model": cfg.model.model_copy(update={"stem_filters": 4})})
        load_training_state(last, bigger)


def test_resume_in_process_reaches_the_uninterrupted_weights(tables, tmp_path):
    train(tiny_config(steps=6, checkpoint_every=0), tables, tmp_path / "full")
    # A run stopped after step 3 (its checkpoint at step 3), then resumed to 6: the schedule
    # depends on train.steps, so the stopped run is the same config whose loop ran 3 steps.
    cfg = tiny_config(steps=6, checkpoint_every=3)

    def stop(row):
        if row["step"] == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, tables, tmp_path / "r", on_step=stop)
    assert not (tmp_path / "r" / "train_log.csv").exists()  # the runner discards a failed stage's outputs
    assert load_training_state(tmp_path / "r" / "checkpoints" / LAST_CHECKPOINT, cfg)["next_step"] == 3
    result = train(cfg, tables, tmp_path / "r", resume=True)
    assert result.resumed_from == 3
    a, b = weights(tmp_path / "full"), weights(tmp_path / "r")
    assert all(torch.equal(a[k], b[k]) for k in a)
    # The steps before the resume come from the checkpoint: the log is the uninterrupted one.
    full_log = pd.read_csv(tmp_path / "full" / "train_log.csv")
    resumed_log = pd.read_csv(tmp_path / "r" / "train_log.csv")
    assert resumed_log["step"].tolist() == list(range(6))
    np.testing.assert_array_equal(resumed_log["loss"], full_log["loss"])
    np.testing.assert_array_equal(resumed_log["lr"], full_log["lr"])


def test_the_final_loss_is_recorded_only_when_no_step_reported_one(tables, tmp_path):
    cfg = tiny_config(steps=3)
    with metrics.stage_metrics(cfg, "train") as meter:  # as the stage runner meters a stage
        first = run_train(cfg, train_paths(tmp_path / "a", tables), tracks=False, progress=False)
        last_step = meter.registry.get_sample_value("isoclr_train_loss")
        first.record(meter)
    assert last_step == pd.read_csv(tmp_path / "a" / "train_log.csv")["loss"].iloc[-1] != first.final_loss
    assert meter.registry.get_sample_value("isoclr_train_loss") == last_step  # the per-step value stays
    with metrics.stage_metrics(cfg, "train") as meter:  # a resumed finished run: no step left to report
        again = run_train(cfg, train_paths(tmp_path / "a", tables), resume=True, tracks=False, progress=False)
        assert meter.registry.get_sample_value("isoclr_train_loss") is None
        again.record(meter)
    assert again.resumed_from == 3 and again.final_loss == first.final_loss
    assert meter.registry.get_sample_value("isoclr_train_loss") == first.final_loss


def test_other_ranks_print_and_record_nothing(tables, tmp_path):
    other = TrainResult(4, None, None, 1.0, 10, 16, 0, 2, primary=False)
    assert other.summary() == ""
    meter = metrics.StageRun(tiny_config().metrics, "train")
    other.record(meter)
    assert meter.registry.get_sample_value("isoclr_train_loss") is None


def test_train_does_not_import_the_cli():
    code = "import sys, isoclr.train; assert 'isoclr.cli' not in sys.modules, 'isoclr.train imports isoclr.cli'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_positive_weight_and_ntxent_train(tables, tmp_path):
    for options in (dict(positive_weight=True), dict(loss="ntxent", bucket_batches=1, pad_multiple=64)):
        result = train(tiny_config(steps=2, **options), tables, tmp_path / "m")
        assert np.isfinite(result.final_loss)


def test_loader_workers_give_the_same_weights(tables, tmp_path):
    train(tiny_config(steps=3), tables, tmp_path / "a")
    train(tiny_config(steps=3, loader_workers=2), tables, tmp_path / "b")
    a, b = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_training_from_the_track_store_gives_the_same_weights(tables, tmp_path):
    train(tiny_config(steps=3), tables, tmp_path / "a")
    # DataLoader workers read the memory-mapped shards too.
    train(tiny_config(steps=3, loader_workers=2), tables, tmp_path / "b", tracks=write_track_store(tables))
    a, b = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_stale_track_store_is_an_error_naming_the_transcripts(tables, tmp_path):
    transcripts, _ = synthetic_annotation()
    transcripts[~transcripts["transcript_id"].isin(["T00_1", "T05_2"])].to_parquet(tmp_path / "fewer.parquet")
    write_store(tmp_path / "fewer.parquet", tmp_path / "fewer")
    message = r"2 of \d+ training transcripts are not in the track store.*T00_1, T05_2.*isoclr encode"
    with pytest.raises(StoreError, match=message):
        train(tiny_config(steps=1), tables, tmp_path / "m", tracks=tmp_path / "fewer")
    transcripts.loc[transcripts["transcript_id"] == "T03_1", "seq"] += "ACGT"  # re-validated since the store was built
    transcripts.to_parquet(tmp_path / "longer.parquet")
    write_store(tmp_path / "longer.parquet", tmp_path / "longer")
    with pytest.raises(StoreError, match="1 training transcripts have another length.*T03_1"):
        train(tiny_config(steps=1), tables, tmp_path / "m", tracks=tmp_path / "longer")
    with pytest.raises(MissingInputError, match="none does not exist: run `isoclr encode` first"):
        train(tiny_config(steps=1), tables, tmp_path / "m", tracks=tmp_path / "none")
    assert not (tmp_path / "m" / "model").exists()


@pytest.mark.slow
def test_compiled_model_runs_every_padded_length_compiled_and_equal_to_eager():
    cfg = tiny_config(compile=True, max_length=64, pad_multiple=32)
    torch._dynamo.reset()
    model = ContrastiveModel(cfg.model).eval()
    compiled = compile_per_length(model, cfg.train)
    with torch.no_grad():
        for length in (32, 64):  # both padded lengths this config can meet
            x = torch.zeros(2, len(tracks.CHANNELS), length)
            x[:, 0] = 1.0
            lengths = torch.tensor([length, length - 5])
            torch.testing.assert_close(compiled(x, lengths), model(x, lengths), rtol=1e-4, atol=1e-5)
    # one graph per length, none dropped to eager by the recompile limit
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] >= 2
