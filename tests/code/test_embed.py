"""Embedding tables with a saved, an in-memory and a random-init encoder."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
import torch

from isoclr.artifacts import MODEL_CHECKPOINT
from isoclr.config import ModelConfig
from isoclr.embed import (
    DEFAULT_BATCH_TOKENS,
    embed_table,
    length_batches,
    load_encoder,
    random_encoder,
)
from tests.helpers import synthetic_annotation, train_tiny_model

TINY = ModelConfig(stem_filters=8, stage_filters=[8, 8, 16, 16], projection_dims=[32, 16])


@pytest.fixture(scope="module")
def transcripts() -> pd.DataFrame:
    return synthetic_annotation(seed=1)[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model folder written by the train stage (2 steps), and the config it was trained with."""
    return train_tiny_model(tmp_path_factory.mktemp("trained"))


def test_saved_encoder_round_trips(trained, transcripts):
    model_dir, cfg = trained
    encoder = load_encoder(model_dir)
    assert not encoder.training
    state = torch.load(model_dir / MODEL_CHECKPOINT, weights_only=True)["state_dict"]
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


@pytest.mark.parametrize("batch_size, batch_tokens", [(4, 10_000), (32, 1_000), (1, 50), (100, 10**9)])
def test_length_batches_respect_both_limits_and_cover_every_item(batch_size, batch_tokens):
    lengths = np.random.default_rng(0).integers(1, 900, size=57)
    lengths[[3, 40]] = 5_000  # longer than some budgets: a batch of its own
    batches = length_batches(lengths, batch_size, batch_tokens)
    flat = np.concatenate(batches)
    np.testing.assert_array_equal(flat, np.argsort(lengths, kind="stable"))  # each once, sorted
    for batch in batches:
        assert 1 <= len(batch) <= batch_size
        assert len(batch) == 1 or len(batch) * lengths[batch].max() <= batch_tokens
    # greedy: a batch stops only when the next item would break a limit
    for batch, following in itertools.pairwise(batches):
        grown = np.append(batch, following[0])
        assert len(grown) > batch_size or len(grown) * lengths[grown].max() > batch_tokens
    with pytest.raises(ValueError, match="must be positive"):
        length_batches(lengths, 8, 0)


def test_the_token_budget_changes_batching_not_embeddings(transcripts):
    encoder = random_encoder(TINY, seed=0)
    default = embed_table(encoder, transcripts, batch_size=16)
    longest = int(transcripts["seq"].str.len().max())
    lengths = transcripts["seq"].str.len().to_numpy()
    assert len(length_batches(lengths, 16, longest)) > len(length_batches(lengths, 16, DEFAULT_BATCH_TOKENS))
    small_batches = embed_table(encoder, transcripts, batch_size=16, batch_tokens=longest)
    np.testing.assert_allclose(small_batches, default, atol=1e-5, rtol=0)
