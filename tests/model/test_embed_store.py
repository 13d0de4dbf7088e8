"""embed_table reading tracks from the encode stage's track store gives the embeddings it gives without one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from isoclr import tracks
from isoclr.config import ModelConfig
from isoclr.embed import embed_table, random_encoder
from isoclr.store import StoreError, TrackStore, write_store
from tests.helpers import synthetic_annotation

TINY = ModelConfig(stem_filters=8, stage_filters=[8, 8, 16, 16], projection_dims=[32, 16])


@pytest.fixture(scope="module")
def stored(tmp_path_factory) -> tuple[pd.DataFrame, TrackStore]:
    root = tmp_path_factory.mktemp("store")
    table = synthetic_annotation(seed=2)[0]
    table.to_parquet(root / "transcripts.parquet")
    write_store(root / "transcripts.parquet", root / "store")
    return table, TrackStore(root / "store")


class CountingStore:
    """The real store, counting reads (to show the store was used, not bypassed)."""

    def __init__(self, store: TrackStore) -> None:
        self.store, self.reads = store, 0

    def __contains__(self, tid) -> bool:
        return tid in self.store

    def length(self, tid) -> int:
        return self.store.length(tid)

    def tracks(self, tid) -> np.ndarray:
        self.reads += 1
        return self.store.tracks(tid)

    @property
    def path(self):
        return self.store.path


def test_store_rows_embed_as_re_encoded_rows(stored):
    table, store = stored
    encoder = random_encoder(TINY, seed=0)
    # Half the rows from the store, two novel rows (not in it), in shuffled order.
    novel = table.iloc[:2].assign(transcript_id=["novel_a", "novel_b"], seq=lambda d: d["seq"].str[::-1])
    mixed = pd.concat([table.sample(frac=0.5, random_state=0), novel], ignore_index=True)
    counting = CountingStore(store)
    with_store = embed_table(encoder, mixed, batch_size=4, store=counting)
    np.testing.assert_array_equal(with_store, embed_table(encoder, mixed, batch_size=4))
    assert counting.reads == len(mixed) - len(novel)
    for tid in mixed["transcript_id"].iloc[:3]:
        np.testing.assert_array_equal(store.tracks(tid), tracks.encode_row(table.set_index("transcript_id").loc[tid]))


def test_sequence_only_tables_ignore_the_store(stored):
    table, store = stored
    encoder = random_encoder(TINY, seed=0)
    seq_only = table[["transcript_id", "seq"]]
    counting = CountingStore(store)
    out = embed_table(encoder, seq_only, batch_size=4, store=counting)
    assert counting.reads == 0  # the store's CDS/splice tracks would differ from the empty ones asked for
    np.testing.assert_array_equal(out, embed_table(encoder, seq_only, batch_size=4))


def test_a_stale_store_is_an_error(stored):
    table, store = stored
    longer = table.iloc[:1].assign(seq=lambda d: d["seq"] + "ACGT")
    with pytest.raises(StoreError, match="stale"):
        embed_table(random_encoder(TINY, seed=0), longer, batch_size=1, store=store)
