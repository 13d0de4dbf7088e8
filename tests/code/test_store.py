"""The on-disk track store: packing equals the 6-track encoding, sharding, index, memory-mapped batches."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow
import pyarrow.parquet
import pytest
from typer.testing import CliRunner

from isoclr import tracks
from isoclr.artifacts import STORE_INDEX
from isoclr.cli import app
from isoclr.coordinates import CoordinateError
from isoclr.errors import IsoclrError
from isoclr.store import MANIFEST, StoreError, TrackStore, pack_table, write_store

ROWS = pd.DataFrame(
    {
        "transcript_id": ["P", "M", "N", "F", "X"],
        "seq": ["CCATGAAACCCTGATTAGGG", "GCATGGCAAGTTTTTAGGGC", "ACGTNRACGT", "TTGCATGCCCGGGAA", "A" * 40],
        "cds_start": pd.array([2, 2, None, 3, 1], dtype="Int64"),
        "cds_end": pd.array([14, 17, None, 15, 40], dtype="Int64"),  # X: CDS not a multiple of 3 (last codon partial)
        "exon_ends": [[9, 19], [9, 19], None, [14], [4, 39]],
    }
)


def write_table(path, rows: pd.DataFrame = ROWS):
    schema = pyarrow.schema(
        [
            ("transcript_id", pyarrow.string()),
            ("seq", pyarrow.string()),
            ("cds_start", pyarrow.int64()),
            ("cds_end", pyarrow.int64()),
            ("exon_ends", pyarrow.list_(pyarrow.int64())),
        ]
    )
    pyarrow.parquet.write_table(pyarrow.Table.from_pandas(rows, schema=schema, preserve_index=False), path)
    return path


@pytest.fixture
def store(tmp_path):
    write_store(write_table(tmp_path / "t.parquet"), tmp_path / "tracks", shard_bytes=32)
    return TrackStore(tmp_path / "tracks")


def test_pack_table_equals_pack_of_each_row():
    table = pyarrow.Table.from_pandas(ROWS, preserve_index=False)
    packed, offsets = pack_table(table)
    assert packed.dtype == np.uint8 and len(packed) == ROWS.seq.str.len().sum()
    for i, row in enumerate(ROWS.itertuples()):
        expected = tracks.pack(row.seq, row.cds_start, row.cds_end, row.exon_ends)
        np.testing.assert_array_equal(packed[offsets[i] : offsets[i + 1]], expected)


@pytest.mark.parametrize("row", range(len(ROWS)))
def test_store_tracks_equal_encode_row(store, row):
    expected = tracks.encode_row(ROWS.iloc[row])
    np.testing.assert_array_equal(store.tracks(ROWS.transcript_id[row]), expected)


def test_one_byte_per_nucleotide_in_few_shards_with_index(store, tmp_path):
    manifest = json.loads((tmp_path / "tracks" / MANIFEST).read_text())
    assert manifest["n_bytes"] == ROWS.seq.str.len().sum()
    assert sum(manifest["shards"]) == manifest["n_bytes"]
    # 32-byte shards: each holds at most 32 bytes plus the one transcript that crosses the boundary.
    assert len(manifest["shards"]) > 1 and max(manifest["shards"]) < 32 + 40
    index = pd.read_parquet(tmp_path / "tracks" / STORE_INDEX)
    assert list(index.columns) == ["transcript_id", "shard", "offset", "length"]
    assert list(index.length) == list(ROWS.seq.str.len())
    assert len(store) == 5 and store.ids == list(ROWS.transcript_id)
    assert isinstance(store.packed("M").base, np.memmap) or isinstance(store.packed("M"), np.memmap)


def test_batch_pads_and_crops(store):
    x, lengths = store.batch(["P", "X", "N"])
    assert x.shape == (3, 6, 40) and lengths.tolist() == [20, 40, 10]
    np.testing.assert_array_equal(x[0, :, :20].numpy(), tracks.encode_row(ROWS.iloc[0]))
    assert not x[0, :, 20:].any() and not x[2, :, 10:].any()
    x, lengths = store.batch(["X", "P"], max_length=16, rng=np.random.default_rng(0))
    assert x.shape == (2, 6, 16) and lengths.tolist() == [16, 16]
    x5, _ = store.batch(["P"], max_length=16)  # no rng: the 5' start
    np.testing.assert_array_equal(x5[0].numpy(), tracks.encode_row(ROWS.iloc[0])[:, :16])


def test_unknown_id_and_missing_store_are_clear(store, tmp_path):
    with pytest.raises(KeyError, match="nope"):
        store.tracks("nope")
    with pytest.raises(StoreError, match="not a track store"):
        TrackStore(tmp_path)


def test_layout_change_is_refused(store, tmp_path):
    path = tmp_path / "tracks" / MANIFEST
    manifest = json.loads(path.read_text())
    manifest["layout"]["cds_bit"] = 64
    path.write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match="re-run `isoclr encode`"):
        TrackStore(tmp_path / "tracks")


def test_rewrite_replaces_the_old_store(tmp_path):
    t = write_table(tmp_path / "t.parquet")
    write_store(t, tmp_path / "tracks", shard_bytes=16)
    write_table(t, ROWS.iloc[:2])
    summary = write_store(t, tmp_path / "tracks")
    assert summary.n_transcripts == 2 and len(summary.shards) == 1
    assert sorted(p.name for p in (tmp_path / "tracks").iterdir()) == [
        "index.parquet",
        "manifest.json",
        "shard-00000.u8",
    ]
    assert TrackStore(tmp_path / "tracks").ids == ["P", "M"]


def test_cds_outside_sequence_is_an_error(tmp_path):
    rows = ROWS.iloc[:1].assign(cds_end=pd.array([99], dtype="Int64"))
    with pytest.raises(StoreError, match=r"t.parquet: transcript 'P': CDS \[2, 99\) is not inside a 20-nt sequence"):
        write_store(write_table(tmp_path / "t.parquet", rows), tmp_path / "tracks")
    assert issubclass(StoreError, IsoclrError)


@pytest.mark.parametrize("start, end", [(-3, 6), (5, 5), (6, 3), (0, 21)])
def test_pack_table_and_pack_refuse_the_same_cds(start, end):
    """One check (isoclr.coordinates) for both packers, one error: a negative start is no CDS-less row."""
    rows = ROWS.iloc[:1].assign(cds_start=pd.array([start], dtype="Int64"), cds_end=pd.array([end], dtype="Int64"))
    with pytest.raises(CoordinateError, match=rf"transcript 'P': CDS \[{start}, {end}\) is not inside a 20-nt"):
        pack_table(pyarrow.Table.from_pandas(rows, preserve_index=False))
    with pytest.raises(CoordinateError, match=rf"^CDS \[{start}, {end}\) is not inside a 20-nt"):
        tracks.pack(rows.seq[0], start, end, None)


def test_bad_row_in_a_later_shard_is_named_and_leaves_the_old_store(tmp_path, store):
    """Shards are packed one after another into their files: a bad row in the last one names its transcript,
    and the half-built store is removed, leaving the store that was there."""
    before = {p.name: p.read_bytes() for p in (tmp_path / "tracks").iterdir()}
    rows = ROWS.assign(exon_ends=[[9, 19], [9, 19], None, [14], [4, 99]])
    with pytest.raises(StoreError, match=r"transcript 'X': exon ends \[4, 99\] fall outside a 40-nt sequence"):
        write_store(write_table(tmp_path / "bad.parquet", rows), tmp_path / "tracks", shard_bytes=16)
    assert {p.name: p.read_bytes() for p in (tmp_path / "tracks").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["t.parquet", "bad.parquet", "tracks"])


def test_encode_command(tmp_path):
    t = write_table(tmp_path / "t.parquet")
    result = CliRunner().invoke(app, ["encode", "--transcripts", str(t), "--store", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    assert "5 transcripts" in result.output
    assert TrackStore(tmp_path / "s").length("X") == 40


def test_packing_in_chunks_equals_one_pass(monkeypatch):
    """Bases are translated a chunk at a time; chunk edges inside a transcript change nothing."""
    table = pyarrow.Table.from_pandas(ROWS, preserve_index=False)
    whole, offsets = pack_table(table)
    monkeypatch.setattr("isoclr.tracks._PACK_CHUNK", 7)
    monkeypatch.setattr("isoclr.tracks._PAIRS_FROM", 0)
    chunked, chunked_offsets = pack_table(table)
    np.testing.assert_array_equal(chunked, whole)
    np.testing.assert_array_equal(chunked_offsets, offsets)


@pytest.mark.parametrize("chunk, piece", [(1 << 16, 1 << 24), (5, 7)])
def test_packing_every_byte_value_at_odd_offsets(monkeypatch, chunk, piece):
    """Bases are looked up two at a time, in pieces packed by several threads: odd lengths and odd starts in
    the data buffer, and every byte value (lowercase, U, IUPAC, anything else), pack as :func:`tracks.pack`."""
    monkeypatch.setattr("isoclr.tracks._PACK_CHUNK", chunk)
    monkeypatch.setattr("isoclr.tracks._PAIRS_FROM", 0 if chunk < 16 else 1 << 15)
    monkeypatch.setattr("isoclr.store._PACK_PIECE", piece)
    every = bytes(range(1, 128)).decode("ascii")
    seqs = ["A", every, "acgun", every[::-1] + "T", "GGC"]
    unknown = pyarrow.array([None] * len(seqs), pyarrow.int64())
    ends = pyarrow.array([None] * len(seqs), pyarrow.list_(pyarrow.int64()))
    table = pyarrow.table({"seq": seqs, "cds_start": unknown, "cds_end": unknown, "exon_ends": ends})
    packed, offsets = pack_table(table.slice(1))  # starts at an odd byte of the buffer
    for i, seq in enumerate(seqs[1:]):
        np.testing.assert_array_equal(packed[offsets[i] : offsets[i + 1]], tracks.pack(seq, None, None, None))


def test_a_pickled_store_reopens_its_shards_instead_of_carrying_them(store):
    import pickle

    first = store.ids[0]
    expected = store.tracks(first)  # maps a shard
    assert store._maps
    copy = pickle.loads(pickle.dumps(store))
    assert copy._maps == {}  # a memmap would pickle its whole shard
    np.testing.assert_array_equal(copy.tracks(first), expected)


def test_table_in_several_chunks_packs_as_one(tmp_path):
    """validate writes row groups, which read back as several Arrow chunks (one empty here): same bytes."""
    table = pyarrow.Table.from_pandas(ROWS, preserve_index=False)
    whole, offsets = pack_table(table)
    pieces = [table.slice(0, 2), table.slice(2, 0), table.slice(2, 3)]
    chunked = pyarrow.concat_tables(pieces)
    assert chunked["seq"].num_chunks == len(pieces)
    packed, chunked_offsets = pack_table(chunked)
    np.testing.assert_array_equal(packed, whole)
    np.testing.assert_array_equal(chunked_offsets, offsets)
