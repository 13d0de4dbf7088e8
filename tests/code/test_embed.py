"""Embedding tables with a saved, an in-memory and a random-init encoder."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from isoclr.config import ModelConfig
from isoclr.embed import embed_table, load_encoder, random_encoder
from isoclr.train import train
from tests.code.test_train import synthetic_annotation, tiny_config

TINY = ModelConfig(stem_filters=8, stage_filters=[8, 8, 16, 16], projection_dims=[32, 16])


@pytest.fixture(scope="module")
def transcripts() -> pd.DataFrame:
    return synthetic_annotation(seed=1)[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model folder written by the train stage (2 steps), and the config it was trained with."""
    root = tmp_path_factory.mktemp("trained")
    transcripts, groups = synthetic_annotation()
    transcripts.to_parquet(root / "t.parquet")
    groups.to_parquet(root / "g.parquet")
    cfg = tiny_config(steps=2)
    train(cfg, root / "t.parquet", root / "g.parquet", root / "model", root / "log.csv", progress=False)
    return root / "model", cfg


def test_saved_encoder_round_trips(trained, transcripts):
    model_dir, cfg = trained
    encoder = load_encoder(model_dir)
    assert not encoder.training
    state = torch.load(model_dir / "encoder.pt", weights_only=True)["state_dict"]
    in_memory = random_encoder(cfg.model, seed=99)
    in_memory.load_state_dict(state)
    saved = embed_table(encoder, transcripts, batch_size=8)
    assert saved.dtype == np.float32 and saved.shape == (len(transcripts), encoder.out_dim)
    np.testing.assert_array_equal(saved, embed_table(in_memory, transcripts, batch_size=8))
    # and it is not the random initialisation
    assert not np.allclose(saved, embed_table(random_encoder(cfg.model, seed=cfg.train.seed), transcripts, 8))


def test_order_is_restored_after_sorting_by_length(transcripts):
    encoder = random_encoder(TINY, seed=0)
    shuffled = transcripts.sample(frac=1.0, random_state=3).reset_index(drop=True)
    assert not shuffled["length"].is_monotonic_increasing
    batched = embed_table(encoder, shuffled, batch_size=4)
    one_by_one = np.concatenate([embed_table(encoder, shuffled.iloc[[i]], batch_size=1) for i in range(len(shuffled))])
    np.testing.assert_allclose(batched, one_by_one, atol=1e-5, rtol=0)
    # Row i of the output belongs to row i of the input, whatever the input's index.
    again = embed_table(encoder, shuffled.set_index("transcript_id"), batch_size=7)
    np.testing.assert_allclose(again, batched, atol=1e-5, rtol=0)


def test_only_seq_is_required(transcripts):
    encoder = random_encoder(TINY, seed=0)
    seqs = pd.DataFrame({"seq": ["ACGT" * 12 + "AC", "GGGCCCAAATTT" * 10]})  # e.g. 50-nt 5'UTRs
    out = embed_table(encoder, seqs, batch_size=2)
    assert out.shape == (2, 16) and np.isfinite(out).all()
    # The CDS and splice tracks change the embedding when they are known.
    with_tracks = embed_table(encoder, transcripts.iloc[:3], batch_size=3)
    seq_only = embed_table(encoder, transcripts.iloc[:3][["seq"]], batch_size=3)
    assert not np.allclose(with_tracks, seq_only)
    with pytest.raises(ValueError, match="seq"):
        embed_table(encoder, transcripts[["transcript_id"]], batch_size=2)


def test_embedding_is_deterministic_and_keeps_the_mode(transcripts):
    encoder = random_encoder(TINY, seed=0).train()
    a = embed_table(encoder, transcripts, batch_size=5)
    assert encoder.training  # restored
    np.testing.assert_array_equal(a, embed_table(encoder, transcripts, batch_size=5))
    assert embed_table(encoder, transcripts.iloc[:0], batch_size=5).shape == (0, 16)


def test_random_encoder_is_seeded_and_leaves_the_global_rng_alone():
    torch.manual_seed(5)
    expected_next = torch.rand(1)
    torch.manual_seed(5)
    a, b, c = random_encoder(TINY, 0), random_encoder(TINY, 0), random_encoder(TINY, 1)
    assert torch.rand(1) == expected_next
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert not a.training


def test_missing_or_incompatible_checkpoint_is_a_clear_error(trained, tmp_path):
    with pytest.raises(FileNotFoundError, match="encoder.pt"):
        load_encoder(tmp_path)
    model_dir, _ = trained
    checkpoint = torch.load(model_dir / "encoder.pt", weights_only=True)

    wider = dict(checkpoint, model_config=dict(checkpoint["model_config"], stage_filters=[8, 8, 16, 32]))
    (tmp_path / "wider").mkdir()
    torch.save(wider, tmp_path / "wider" / "encoder.pt")
    with pytest.raises(ValueError, match="do not match"):
        load_encoder(tmp_path / "wider")

    unknown = dict(checkpoint, model_config=dict(checkpoint["model_config"], attention_heads=4))
    (tmp_path / "unknown").mkdir()
    torch.save(unknown, tmp_path / "unknown" / "encoder.pt")
    with pytest.raises(ValueError, match="model_config"):
        load_encoder(tmp_path / "unknown")

    channels = dict(checkpoint, channels=["A", "C", "G", "T"])
    (tmp_path / "channels").mkdir()
    torch.save(channels, tmp_path / "channels" / "encoder.pt")
    with pytest.raises(ValueError, match="channels"):
        load_encoder(tmp_path / "channels")
