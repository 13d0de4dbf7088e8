"""The on-disk track store: every transcript packed once, read by training and embedding without re-parsing.

Layout of a store directory (DVC tracks a few large files, not one per transcript):

- ``shard-00000.u8`` ...: packed transcripts back to back, one byte per
  nucleotide (:mod:`isoclr.tracks` packed layout: base, N, CDS codon start,
  exon end), each shard at most ``shard_bytes`` plus one transcript;
- ``index.parquet`` (:data:`isoclr.artifacts.STORE_INDEX`): transcript_id -> shard, offset, length
  (:data:`INDEX_SCHEMA`);
- ``manifest.json``: format, version, byte layout, counts and shard sizes,
  written last, so a directory without it is not a store.

Reading memory-maps the shards: a batch touches only its transcripts' bytes,
and the 6 float tracks are built per batch (:meth:`TrackStore.batch`).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow
import pyarrow.compute as pc
import pyarrow.parquet

from isoclr import tracks
from isoclr.artifacts import STORE_INDEX
from isoclr.coordinates import CoordinateError, cds_error, cds_inside, exon_ends_error, exon_ends_inside
from isoclr.errors import IsoclrError

if TYPE_CHECKING:
    import torch

FORMAT = "isoclr-track-store"
VERSION = 1
MANIFEST = "manifest.json"
SHARD_NAME = "shard-{:05d}.u8"
DEFAULT_SHARD_BYTES = 1 << 28
LAYOUT = {
    "base_mask": tracks.BASE_MASK,
    "bases": tracks.BASES,
    "n_bit": tracks.N_BIT,
    "cds_bit": tracks.CDS_BIT,
    "splice_bit": tracks.SPLICE_BIT,
}

INDEX_SCHEMA = pa.DataFrameSchema(
    {
        "transcript_id": pa.Column(str, unique=True),
        "shard": pa.Column("int64", pa.Check.ge(0)),
        "offset": pa.Column("int64", pa.Check.ge(0)),
        "length": pa.Column("int64", pa.Check.gt(0)),
    },
    strict=True,
    coerce=True,
    name="store_index",
)

# Bytes per piece handed to a packing thread.
_PACK_PIECE = 1 << 24


class StoreError(IsoclrError):
    """A store cannot be written from this table, or the directory is not a readable store."""


@dataclass(frozen=True)
class StoreSummary:
    n_transcripts: int
    n_bytes: int
    shards: list[int]  # bytes per shard

    def to_dict(self) -> dict:
        return asdict(self)


def _int_column(table: pyarrow.Table, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(values with 0 for null, whether known) of an integer column, as int64 and bool arrays."""
    column = table[name].combine_chunks()
    known = column.is_valid().to_numpy(zero_copy_only=False)
    return pc.fill_null(column, 0).to_numpy(zero_copy_only=False).astype(np.int64), known


def _record(table: pyarrow.Table, row: int) -> str:
    """How an error names row ``row``: by transcript id where the table has them."""
    if "transcript_id" in table.column_names:
        return f"transcript {table['transcript_id'][row].as_py()!r}"
    return f"row {row}"


def _string_offsets(chunk: pyarrow.LargeStringArray) -> np.ndarray:
    """(len(chunk) + 1,) int64 offsets of the chunk's strings into its data buffer."""
    return np.frombuffer(chunk.buffers()[1], dtype=np.int64)[chunk.offset : chunk.offset + len(chunk) + 1]


def pack_table(table: pyarrow.Table, out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A transcripts table (seq, cds_start, cds_end, exon_ends) -> all transcripts packed, vectorised.

    Returns (packed (total length,) uint8, offsets (n + 1,) int64): row ``i`` is
    ``packed[offsets[i]:offsets[i + 1]]``, equal to
    ``tracks.pack(seq, cds_start, cds_end, exon_ends)`` of that row: the bytes are
    packed and the bits set by the same functions of :mod:`isoclr.tracks`, a CDS or
    exon end outside its sequence is the same :class:`~isoclr.coordinates.CoordinateError`.
    ``packed`` is ``out`` when given (it must have the total length), else a new array.
    """
    n = table.num_rows
    seq = table["seq"].cast(pyarrow.large_string())
    if seq.null_count:
        raise StoreError("transcripts table has rows without a sequence")
    # Chunk by chunk (a parquet file read back in row groups), so the sequences are not first copied into one.
    chunks = [chunk for chunk in seq.chunks if len(chunk)]
    lengths = np.concatenate([np.diff(_string_offsets(c)) for c in chunks]) if chunks else np.zeros(0, np.int64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if out is not None and len(out) != offsets[-1]:
        raise ValueError(f"out holds {len(out)} bytes, the sequences {offsets[-1]}")
    packed = np.empty(offsets[-1], dtype=np.uint8) if out is None else out
    # Pieces of at most _PACK_PIECE bytes, packed by a thread per core: numpy lookups release the GIL (the packing
    # takes ~0.4 s less at GENCODE scale on 2 cores).
    pieces, at = [], 0
    for chunk in chunks:
        raw = _string_offsets(chunk)
        data = np.frombuffer(chunk.buffers()[2], dtype=np.uint8)[raw[0] : raw[-1]] if raw[-1] > raw[0] else None
        for i in range(0, int(raw[-1] - raw[0]), _PACK_PIECE):
            piece = data[i : i + _PACK_PIECE]
            pieces.append((piece, packed[at + i : at + i + len(piece)]))
        at += int(raw[-1] - raw[0])
    if len(pieces) > 1:
        with ThreadPoolExecutor(max_workers=min(len(pieces), os.cpu_count() or 1)) as pool:
            list(pool.map(lambda job: tracks.pack_bases(*job), pieces))
    elif pieces:
        tracks.pack_bases(*pieces[0])
    starts = offsets[:-1]

    (cds_start, start_known), (cds_end, end_known) = _int_column(table, "cds_start"), _int_column(table, "cds_end")
    coding = start_known & end_known
    bad = coding & ~cds_inside(cds_start, cds_end, lengths)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise cds_error(cds_start[row], cds_end[row], lengths[row], _record(table, row))
    # One strided slice per coding transcript: an index array of every codon start would take ~1 GB at GENCODE scale.
    for a, b in zip((starts + cds_start)[coding].tolist(), (starts + cds_end)[coding].tolist(), strict=True):
        tracks.mark_cds(packed, a, b)

    ends = table["exon_ends"].combine_chunks()
    counts = pc.fill_null(pc.list_value_length(ends), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    values = pc.list_flatten(ends).to_numpy(zero_copy_only=False).astype(np.int64)
    rows = np.repeat(np.arange(n), counts)
    outside = ~exon_ends_inside(values, lengths[rows])
    if outside.any():
        row = int(rows[np.flatnonzero(outside)[0]])
        raise exon_ends_error(values[rows == row].tolist(), lengths[row], _record(table, row))
    tracks.mark_exon_ends(packed, starts[rows] + values)
    return packed, offsets


def write_store(transcripts: Path, out_dir: Path, shard_bytes: int = DEFAULT_SHARD_BYTES) -> StoreSummary:
    """Pack the validated transcripts table (parquet) into a store at ``out_dir``, replacing any old one.

    The store is built beside ``out_dir`` and moved into place, so a killed run
    never leaves a half-written store under the final name.
    """
    if shard_bytes <= 0:
        raise ValueError(f"shard_bytes must be positive, got {shard_bytes}")
    out_dir = Path(out_dir)
    # Memory-mapped: the pages are decoded from the page cache, not first copied into read buffers (~0.4 s less
    # at GENCODE scale).
    table = pyarrow.parquet.read_table(
        transcripts, columns=["transcript_id", "seq", "cds_start", "cds_end", "exon_ends"], memory_map=True
    )
    if table["seq"].null_count:
        raise StoreError(f"{transcripts}: rows without a sequence")
    lengths = pc.binary_length(table["seq"]).to_numpy().astype(np.int64)
    starts = np.cumsum(lengths) - lengths
    # Transcript i goes to the shard its first byte falls in; renumbered so no shard is empty.
    _, shard = np.unique(starts // shard_bytes, return_inverse=True)
    bounds = np.flatnonzero(np.diff(shard, prepend=-1)) if len(shard) else np.zeros(0, np.int64)
    shard_start = starts[bounds] if len(bounds) else np.zeros(0, np.int64)
    index = pd.DataFrame(
        {
            "transcript_id": table["transcript_id"].to_pandas(),
            "shard": shard.astype(np.int64),
            "offset": starts - shard_start[shard] if len(shard) else starts,
            "length": lengths,
        }
    )
    index = INDEX_SCHEMA.validate(index)

    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    rows = [*bounds.tolist(), len(lengths)]
    sizes = [int(lengths[a:b].sum()) for a, b in pairwise(rows)]
    try:
        for k, (a, b) in enumerate(pairwise(rows)):
            # Packed straight into the mapped shard file: no second copy of every byte, and no array of all of
            # them (peak RSS 1.17 against 1.35 GB at GENCODE scale; time within noise).
            shard_map = np.memmap(tmp / SHARD_NAME.format(k), dtype=np.uint8, mode="w+", shape=(sizes[k],))
            pack_table(table.slice(a, b - a), out=shard_map)
            del shard_map
    except (StoreError, CoordinateError) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise StoreError(f"{transcripts}: {err}") from err
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    pyarrow.parquet.write_table(pyarrow.Table.from_pandas(index, preserve_index=False), tmp / STORE_INDEX)
    summary = StoreSummary(n_transcripts=len(index), n_bytes=int(lengths.sum()), shards=sizes)
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "layout": LAYOUT,
        "channels": list(tracks.CHANNELS),
        **summary.to_dict(),
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    old = out_dir.with_name(f".{out_dir.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if out_dir.exists():
        os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    shutil.rmtree(old, ignore_errors=True)
    return summary


class TrackStore:
    """Read side: transcript id -> packed bytes (memory-mapped) -> 6 tracks per batch."""

    def __init__(self, path: Path):
        self.path = Path(path)
        manifest_path = self.path / MANIFEST
        if not manifest_path.is_file():
            raise StoreError(f"{self.path}: not a track store (no {MANIFEST}); run `isoclr encode`")
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("format") != FORMAT or manifest.get("version") != VERSION or manifest.get("layout") != LAYOUT:
            raise StoreError(
                f"{self.path}: store format {manifest.get('format')} v{manifest.get('version')} with layout "
                f"{manifest.get('layout')}; this code reads {FORMAT} v{VERSION} {LAYOUT}: re-run `isoclr encode`"
            )
        self.index = INDEX_SCHEMA.validate(pd.read_parquet(self.path / STORE_INDEX))
        self._row = pd.Index(self.index["transcript_id"])
        self._shard = self.index["shard"].to_numpy()
        self._offset = self.index["offset"].to_numpy()
        self._length = self.index["length"].to_numpy()
        self._sizes = manifest["shards"]
        self._maps: dict[int, np.memmap] = {}

    def __getstate__(self) -> dict:
        # A pickled memmap carries its whole shard: a store sent to a spawned DataLoader worker reopens them.
        return {**self.__dict__, "_maps": {}}

    def __len__(self) -> int:
        return len(self.index)

    def __contains__(self, transcript_id: str) -> bool:
        return transcript_id in self._row

    @property
    def ids(self) -> list[str]:
        return self.index["transcript_id"].tolist()

    def length(self, transcript_id: str) -> int:
        return int(self._length[self._position(transcript_id)])

    def _position(self, transcript_id: str) -> int:
        try:
            return int(self._row.get_loc(transcript_id))
        except KeyError:
            raise KeyError(f"{transcript_id!r} is not in the track store {self.path}") from None

    def _map(self, shard: int) -> np.memmap:
        if shard not in self._maps:
            path = self.path / SHARD_NAME.format(shard)
            if path.stat().st_size != self._sizes[shard]:
                raise StoreError(
                    f"{path}: {path.stat().st_size} bytes, manifest says {self._sizes[shard]}: re-run encode"
                )
            self._maps[shard] = np.memmap(path, dtype=np.uint8, mode="r")
        return self._maps[shard]

    def packed(self, transcript_id: str) -> np.ndarray:
        """(length,) uint8 packed bytes, a read-only view into the memory-mapped shard."""
        i = self._position(transcript_id)
        return self._map(int(self._shard[i]))[self._offset[i] : self._offset[i] + self._length[i]]

    def tracks(self, transcript_id: str) -> np.ndarray:
        """(6, length) float32, equal to :func:`isoclr.tracks.encode_row` of the validated row."""
        return tracks.unpack(self.packed(transcript_id))

    def batch(
        self, transcript_ids: Sequence[str], max_length: int | None = None, rng: np.random.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Tracks of a batch, padded to its longest member (:func:`isoclr.tracks.batch`).

        ``max_length`` crops each transcript as :func:`isoclr.tracks.crop` does
        (a random window with ``rng``, else the 5' start), before unpacking.
        Returns x (batch, 6, max_len) float32 and lengths (batch,) int64.
        """
        return tracks.batch(
            [
                self.tracks(tid) if max_length is None else tracks.unpack_window(self.packed(tid), max_length, rng)
                for tid in transcript_ids
            ]
        )
