"""The train stage on a tiny synthetic annotation: outputs, determinism, learning, checkpoints, resume."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from isoclr import tracks
from isoclr.config import Config
from isoclr.models import ContrastiveModel
from isoclr.schemas import GROUPS, TRANSCRIPTS
from isoclr.sampling import PairSampler
from isoclr.store import StoreError, write_store
from isoclr.train import (
    CHECKPOINT,
    LOG_COLUMNS,
    batch_loss,
    compile_per_length,
    load_checkpoint,
    lr_factor,
    make_loss,
    read_training_set,
    train,
    train_loop,
)
from tests.conftest import tiny_params

BASES = np.array(list("ACGT"))


def synthetic_annotation(seed: int = 0, n_genes: int = 10) -> tuple[pd.DataFrame, pd.DataFrame]:
    """~40 transcripts of ``n_genes`` genes: isoforms skip exons of their gene, so they share sequence,
    and each gene has its own base composition (as real genes differ in GC content).

    Genes 0-1 and 2-3 are paralog families (one homology group each); gene 9 is in
    the test split; gene 4 has a single isoform.
    """
    rng = np.random.default_rng(seed)
    transcripts, groups = [], []
    for g in range(n_genes):
        composition = rng.dirichlet(np.full(4, 2.0))
        exons = ["".join(rng.choice(BASES, rng.integers(40, 160), p=composition)) for _ in range(5)]
        n_isoforms = 1 if g == 4 else 4 + g % 2
        skips = [None, 1, 2, 3, 1][:n_isoforms]
        for i, skip in enumerate(skips):
            used = [e for k, e in enumerate(exons) if k != skip]
            seq = "".join(used)
            ends = np.cumsum([len(e) for e in used]) - 1
            cds_start = len(used[0])
            cds_end = cds_start + 3 * ((len(seq) - cds_start - 20) // 3)
            transcripts.append(
                {
                    "transcript_id": f"T{g:02d}_{i}",
                    "gene_id": f"G{g:02d}",
                    "gene_name": f"GENE{g}",
                    "annotation": "synthetic",
                    "species": "homo_sapiens",
                    "assembly": "none",
                    "biotype": "protein_coding",
                    "seq": seq,
                    "length": len(seq),
                    "cds_start": cds_start if g % 3 else None,  # some transcripts have no CDS
                    "cds_end": cds_end if g % 3 else None,
                    "exon_ends": ends.tolist(),
                }
            )
            groups.append(
                {
                    "transcript_id": f"T{g:02d}_{i}",
                    "gene_id": f"G{g:02d}",
                    "gene_name": f"GENE{g}",
                    "n_isoforms": n_isoforms,
                    "homology_group": f"hg{min(g, 2 * (g // 2)) if g < 4 else g}",
                    "split": "test" if g == 9 else "train",
                }
            )
    return TRANSCRIPTS.validate(pd.DataFrame(transcripts)), GROUPS.validate(pd.DataFrame(groups))


def tiny_config(**train) -> Config:
    params = tiny_params()
    params["model"].update(stem_filters=8, stage_filters=[8, 8, 16, 16], projection_dims=[32, 16])
    params["train"].update(
        dict(steps=4, batch_genes=4, max_length=256, warmup_steps=1, learning_rate=0.003, seed=0), **train
    )
    return Config.model_validate(params)


@pytest.fixture
def tables(tmp_path):
    transcripts, groups = synthetic_annotation()
    paths = tmp_path / "transcripts.parquet", tmp_path / "groups.parquet"
    transcripts.to_parquet(paths[0])
    groups.to_parquet(paths[1])
    return paths


@pytest.fixture
def track_store(tables, tmp_path):
    """The track store of the tables' transcripts, as `isoclr encode` writes it."""
    write_store(tables[0], tmp_path / "tracks")
    return tmp_path / "tracks"


def test_train_writes_checkpoint_meta_and_log(tables, tmp_path, capsys):
    cfg = tiny_config()
    summary = train(cfg, *tables, tmp_path / "model", tmp_path / "log.csv", progress=False)

    assert summary["steps"] == 4 and summary["out_dim"] == 16 and summary["parameters"] > 0
    assert np.isfinite(summary["final_loss"])
    assert "parameters" in capsys.readouterr().out
    checkpoint = torch.load(tmp_path / "model" / "encoder.pt", weights_only=True)
    assert set(checkpoint) >= {
        "state_dict", "model_config", "channels", "isoclr_version", "train_config", "provenance", "final_loss",
    }
    assert all(not k.startswith("head") for k in checkpoint["state_dict"])  # encoder only
    assert checkpoint["model_config"] == cfg.model.model_dump(mode="json")
    assert checkpoint["channels"] == list(tracks.CHANNELS)
    meta = json.loads((tmp_path / "model" / "meta.json").read_text())
    assert "state_dict" not in meta and meta["final_loss"] == checkpoint["final_loss"]
    assert meta["train_config"]["steps"] == 4 and "git_commit" in meta["provenance"]
    log = pd.read_csv(tmp_path / "log.csv")
    assert tuple(log.columns) == LOG_COLUMNS
    assert log["step"].tolist() == [0, 1, 2, 3]
    assert (log["samples_per_s"] > 0).all() and log["loss"].notna().all()
    assert log["lr"].iloc[0] == pytest.approx(cfg.train.learning_rate)  # one warm-up step


def test_same_config_gives_same_weights(tables, tmp_path):
    cfg = tiny_config(steps=3)
    train(cfg, *tables, tmp_path / "a", tmp_path / "a.csv", progress=False)
    train(cfg, *tables, tmp_path / "b", tmp_path / "b.csv", progress=False)
    a = torch.load(tmp_path / "a" / "encoder.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b" / "encoder.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = train(tiny_config(steps=3, seed=1), *tables, tmp_path / "c", tmp_path / "c.csv", progress=False)
    c = torch.load(tmp_path / "c" / "encoder.pt", weights_only=True)["state_dict"]
    assert not all(torch.equal(a[k], c[k]) for k in a), other


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
    with pytest.raises(ValueError, match="rerun the pairs stage"):
        read_training_set(tmp_path / "fewer.parquet", tables[1])


def test_lr_warms_up_then_decays_to_zero():
    factors = [lr_factor(s, 4, 20) for s in range(20)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[4] == 1.0
    assert all(a >= b for a, b in zip(factors[4:], factors[5:]))
    assert lr_factor(20, 4, 20) == pytest.approx(0.0)
    assert lr_factor(0, 0, 10) == 1.0


def test_checkpoints_hold_everything_and_resume_continues_the_log(tables, tmp_path):
    cfg = tiny_config(steps=6, checkpoint_every=4)
    calls = []
    train(cfg, *tables, tmp_path / "a", tmp_path / "a.csv", progress=False, checkpoint_dir=tmp_path / "ck",
          metrics_path=tmp_path / "a.json", on_step=calls.append)
    assert [r["step"] for r in calls] == list(range(6))  # the exporter hook: once per step
    assert set(calls[0]) == set(LOG_COLUMNS)
    state = load_checkpoint(tmp_path / "ck" / CHECKPOINT, cfg)
    assert state["next_step"] == 6  # the final state is kept too: a resume of a finished run trains nothing
    assert set(state) >= {"model", "optimiser", "schedule", "rng", "sampler", "next_step"}
    assert set(state["rng"]) >= {"torch", "numpy", "python"}
    assert json.loads((tmp_path / "a.json").read_text())["steps"] == 6
    with pytest.raises(ValueError, match="learning_rate"):
        load_checkpoint(tmp_path / "ck" / CHECKPOINT, tiny_config(steps=6, learning_rate=0.1))
    with pytest.raises(ValueError, match="model configuration"):
        bigger = tiny_config(steps=6).model_copy(update={"model": cfg.model.model_copy(update={"stem_filters": 4})})
        load_checkpoint(tmp_path / "ck" / CHECKPOINT, bigger)


def test_resume_in_process_reaches_the_uninterrupted_weights(tables, tmp_path):
    full = tiny_config(steps=6, checkpoint_every=0)
    train(full, *tables, tmp_path / "full", tmp_path / "full.csv", progress=False)
    # A run stopped after step 3 (its checkpoint at step 3), then resumed to 6: the schedule
    # depends on train.steps, so the stopped run is the same config whose loop ran 3 steps.
    cfg = tiny_config(steps=6, checkpoint_every=3)
    calls = []

    def stop(row):
        calls.append(row)
        if row["step"] == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(cfg, *tables, tmp_path / "r", tmp_path / "r.csv", progress=False, checkpoint_dir=tmp_path / "ck",
              on_step=stop)
    assert load_checkpoint(tmp_path / "ck" / CHECKPOINT, cfg)["next_step"] == 3
    summary = train(cfg, *tables, tmp_path / "r", tmp_path / "r.csv", progress=False,
                    checkpoint_dir=tmp_path / "ck", resume=True)
    assert summary["resumed_from"] == 3
    a = torch.load(tmp_path / "full" / "encoder.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "r" / "encoder.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    full_log, resumed_log = pd.read_csv(tmp_path / "full.csv"), pd.read_csv(tmp_path / "r.csv")
    assert resumed_log["step"].tolist() == list(range(6))
    np.testing.assert_array_equal(resumed_log["loss"], full_log["loss"])


def test_positive_weight_and_ntxent_train(tables, tmp_path):
    for options in (dict(positive_weight=True), dict(loss="ntxent", bucket_batches=1, pad_multiple=64)):
        summary = train(tiny_config(steps=2, **options), *tables, tmp_path / "m", tmp_path / "l.csv", progress=False)
        assert np.isfinite(summary["final_loss"])


def test_loader_workers_give_the_same_weights(tables, tmp_path):
    train(tiny_config(steps=3), *tables, tmp_path / "a", tmp_path / "a.csv", progress=False)
    train(tiny_config(steps=3, loader_workers=2), *tables, tmp_path / "b", tmp_path / "b.csv", progress=False)
    a = torch.load(tmp_path / "a" / "encoder.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b" / "encoder.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_training_from_the_track_store_gives_the_same_weights(tables, track_store, tmp_path):
    train(tiny_config(steps=3), *tables, tmp_path / "a", tmp_path / "a.csv", progress=False)
    # DataLoader workers read the memory-mapped shards too.
    train(tiny_config(steps=3, loader_workers=2), *tables, tmp_path / "b", tmp_path / "b.csv", progress=False,
          tracks_path=track_store)
    a = torch.load(tmp_path / "a" / "encoder.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b" / "encoder.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_stale_track_store_is_an_error_naming_the_transcripts(tables, tmp_path):
    transcripts, _ = synthetic_annotation()
    transcripts[~transcripts["transcript_id"].isin(["T00_1", "T05_2"])].to_parquet(tmp_path / "fewer.parquet")
    write_store(tmp_path / "fewer.parquet", tmp_path / "fewer")
    with pytest.raises(StoreError, match=r"2 of \d+ training transcripts are not in the track store.*T00_1, T05_2.*isoclr encode"):
        train(tiny_config(steps=1), *tables, tmp_path / "m", tmp_path / "l.csv", progress=False,
              tracks_path=tmp_path / "fewer")
    transcripts.loc[transcripts["transcript_id"] == "T03_1", "seq"] += "ACGT"  # re-validated since the store was built
    transcripts.to_parquet(tmp_path / "longer.parquet")
    write_store(tmp_path / "longer.parquet", tmp_path / "longer")
    with pytest.raises(StoreError, match="1 training transcripts have another length.*T03_1"):
        train(tiny_config(steps=1), *tables, tmp_path / "m", tmp_path / "l.csv", progress=False,
              tracks_path=tmp_path / "longer")
    with pytest.raises(StoreError, match="isoclr encode"):
        train(tiny_config(steps=1), *tables, tmp_path / "m", tmp_path / "l.csv", progress=False,
              tracks_path=tmp_path / "none")
    assert not (tmp_path / "m").exists()


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
