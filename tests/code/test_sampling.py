"""Pair sampling: the published pair rules, length bucketing, and batches as a pure function of the step."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from isoclr import tracks
from isoclr.sampling import PairSampler, StepBatches, length_buckets, mask_bases
from isoclr.store import TrackStore
from isoclr.train import read_training_set
from tests.helpers import tiny_config, write_tables, write_track_store


@pytest.fixture
def tables(tmp_path):
    return write_tables(tmp_path)


@pytest.fixture
def table(tables):
    return read_training_set(*tables)


def test_pairs_follow_the_sampling_rules(table):
    gene = table["gene_id"].to_numpy()
    group = table["homology_group"].to_numpy()

    isoforms_only = PairSampler(table, tiny_config(paralog_share=0.0, batch_genes=9, bucket_batches=1).train)
    for step in range(5):
        first, second, genes = isoforms_only.batch_rows(step)
        assert len(set(gene[first])) == 9  # distinct genes when there are enough
        assert (gene[first] == gene[second]).all()
        single = gene[first] == "G04"
        assert (first[single] == second[single]).all()  # single isoform pairs with itself
        assert (first[~single] != second[~single]).all()  # otherwise two distinct isoforms

    paralogs = PairSampler(table, tiny_config(paralog_share=1.0, batch_genes=9, bucket_batches=1).train)
    first, second, genes = paralogs.batch_rows(0)
    groups = paralogs.sample(0).groups.numpy()
    in_family = np.isin(gene[first], ["G00", "G01", "G02", "G03"])
    assert (gene[first][in_family] != gene[second][in_family]).all()  # the family's other gene
    assert (group[first] == group[second]).all()
    assert (gene[first][~in_family] == gene[second][~in_family]).all()  # no paralog: own isoforms
    # The group ids passed to the loss identify the homology group.
    assert len(set(groups[in_family])) == 2 and len(set(groups)) == 7


def test_genes_come_up_equally_often(table):
    sampler = PairSampler(table, tiny_config(batch_genes=3, bucket_batches=3).train)
    genes = np.concatenate([sampler.batch_rows(s)[2] for s in range(9)])  # 27 draws = 3 rounds of 9 genes
    assert np.bincount(genes, minlength=9).tolist() == [3] * 9


def test_length_bucketing_pads_less_than_random_batches(table):
    cfg = dict(batch_genes=4, max_length=10_000, mask_prob=0.0)
    bucketed = PairSampler(table, tiny_config(bucket_batches=8, **cfg).train)
    plain = PairSampler(table, tiny_config(bucket_batches=1, **cfg).train)

    def padding(sampler):
        batches = [sampler.sample(s) for s in range(64)]
        return sum(b.x.shape[0] * b.x.shape[2] - int(b.lengths.sum()) for b in batches)

    assert padding(bucketed) < 0.5 * padding(plain)


def test_length_buckets_cut_the_sorted_pool_into_shuffled_batches():
    longest = np.random.default_rng(0).lognormal(7, 1, 64)
    batches = length_buckets(longest, 8, np.random.default_rng(1))
    assert sorted(np.concatenate(batches).tolist()) == list(range(64)) and {len(b) for b in batches} == {8}
    # each batch is a run of the sorted pool: no other length falls between a batch's shortest and longest
    for b in batches:
        inside = (longest >= longest[b].min()) & (longest <= longest[b].max())
        assert inside.sum() == len(b)
    assert [b.tolist() for b in batches] == [b.tolist() for b in length_buckets(longest, 8, np.random.default_rng(1))]
    assert [b.tolist() for b in batches] != [b.tolist() for b in sorted(batches, key=lambda b: longest[b].max())]

    def padding(pool_batches):
        pool = np.random.default_rng(2).lognormal(7, 1, pool_batches * 8)
        cut = length_buckets(pool, 8, np.random.default_rng(3))
        return sum(pool[b].max() * len(b) - pool[b].sum() for b in cut) / sum(pool[b].max() * len(b) for b in cut)

    assert padding(64) < 0.5 * padding(8)  # larger pools pad less


def test_views_are_cropped_masked_padded_and_batched(table):
    cfg = tiny_config(max_length=100, mask_prob=0.3, batch_genes=5, pad_multiple=64).train
    batch = PairSampler(table, cfg).sample(0)
    assert batch.x.shape[0] == 10 and batch.groups.shape == (5,) and batch.n_isoforms.shape == (5,)
    assert batch.x.shape[1] == len(tracks.CHANNELS) and int(batch.lengths.max()) <= 100
    assert batch.x.shape[2] == 128  # rounded up to the multiple, zeros beyond the lengths
    assert (batch.n_isoforms >= 1).all()


def test_a_batch_depends_only_on_seed_rank_and_step(table):
    cfg = tiny_config(batch_genes=3, bucket_batches=4).train
    forward = [PairSampler(table, cfg).sample(s) for s in range(6)]
    sampler = PairSampler(table, cfg)
    backward = {s: sampler.sample(s) for s in reversed(range(6))}  # another order, another instance
    for s, batch in enumerate(forward):
        assert same_batch(batch, backward[s])
    other_rank = PairSampler(table, cfg, rank=1).sample(0)
    assert not (other_rank.x.shape == forward[0].x.shape and torch.equal(other_rank.x, forward[0].x))
    assert len(StepBatches(sampler, 6)) == 6 and torch.equal(StepBatches(sampler, 6)[2].x, forward[2].x)


def test_mask_bases_masks_a_share_of_positions_in_the_base_channels_only():
    rng = np.random.default_rng(0)
    track = np.zeros((6, 10_000), dtype=np.float32)
    track[rng.integers(0, 4, 10_000), np.arange(10_000)] = 1.0
    track[4, ::3] = 1.0
    masked = mask_bases(track, 0.15, rng)
    uniform = (masked[:4] == 0.25).all(axis=0)
    assert uniform.mean() == pytest.approx(0.15, abs=0.01)
    assert (masked[:4, ~uniform] == track[:4, ~uniform]).all()
    assert (masked[4:] == track[4:]).all()
    assert track.max() == 1.0 and (track[:4].sum(axis=0) == 1).all()  # input untouched


def same_batch(a, b) -> bool:
    """Every field equal; a field the objective leaves out (the contrastive batch's targets) is None in both."""
    return all(
        (x is None and y is None) or (x is not None and y is not None and torch.equal(x, y))
        for x, y in zip(a, b, strict=True)
    )


@pytest.mark.parametrize("objective", ["contrastive", "reconstruction"])
def test_the_track_store_gives_the_same_batches(table, tables, objective):
    cfg = tiny_config(
        batch_genes=3, bucket_batches=2, max_length=100, mask_prob=0.2, objective=objective
    ).train  # crops and masks
    store = TrackStore(write_track_store(tables))
    plain, stored = PairSampler(table, cfg, seed=7), PairSampler(table, cfg, seed=7, store=store)
    for row in range(len(table)):
        np.testing.assert_array_equal(stored.track(row), tracks.encode_row(table.iloc[row]))
        np.testing.assert_array_equal(plain.track(row), tracks.encode_row(table.iloc[row]))
    for step in range(4):
        assert same_batch(plain.sample(step), stored.sample(step))
    assert stored._packed == {}  # read through the memory map, not cached
