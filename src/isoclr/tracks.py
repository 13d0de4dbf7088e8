"""The 6-track per-nucleotide encoding of a mature transcript (DESIGN §2).

Channels: one-hot A, C, G, T (N and any other IUPAC code -> all zeros; U read
as T), ``cds`` (1 at the first nucleotide of every codon of the CDS) and
``splice`` (1 at the last nucleotide of every exon, the final one included).
Sequences are in transcript orientation already (the validate stage
reverse-complements minus-strand transcripts).

Packed form (the on-disk track store, :mod:`isoclr.store`): one byte per
nucleotide, bits 0-1 the base (A C G T = 0 1 2 3), bit 2 set for N or any other
code (base channels all zero), bit 3 the CDS codon-start track, bit 4 the
splice track. :func:`pack` and :func:`unpack` convert; :func:`encode` is
``unpack(pack(...))``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import torch

CHANNELS = ("A", "C", "G", "T", "cds", "splice")
N_CHANNELS = len(CHANNELS)
BASES = "ACGT"
CDS_CHANNEL = CHANNELS.index("cds")
SPLICE_CHANNEL = CHANNELS.index("splice")
CODON = 3

# Byte value -> base channel; NO_BASE selects the all-zero row of _ONE_HOT.
NO_BASE = len(BASES)
_BASE_OF_BYTE = np.full(256, NO_BASE, dtype=np.uint8)
for _i, _base in enumerate(BASES):
    _BASE_OF_BYTE[ord(_base)] = _BASE_OF_BYTE[ord(_base.lower())] = _i
_BASE_OF_BYTE[ord("U")] = _BASE_OF_BYTE[ord("u")] = BASES.index("T")
# (5, 4): identity for A C G T, zeros for everything else.
_ONE_HOT = np.vstack([np.eye(len(BASES), dtype=np.float32), np.zeros((1, len(BASES)), dtype=np.float32)])

# Packed byte layout.
BASE_MASK = 0b11
N_BIT = 1 << 2
CDS_BIT = 1 << 3
SPLICE_BIT = 1 << 4
# Byte value -> packed base (0..3, or N_BIT).
PACKED_BASE_OF_BYTE = np.where(_BASE_OF_BYTE == NO_BASE, N_BIT, _BASE_OF_BYTE).astype(np.uint8)


def _unknown(value) -> bool:
    """None, NaN and pd.NA mean unknown; arrays and lists are values."""
    return value is None or (np.ndim(value) == 0 and bool(pd.isna(value)))


def pack(seq: str, cds_start: int | None, cds_end: int | None, exon_ends: Sequence[int] | None) -> np.ndarray:
    """One transcript -> (length,) uint8 packed bytes (layout in the module docstring).

    ``cds_start``/``cds_end`` are 0-based half-open transcript coordinates;
    ``exon_ends`` the 0-based last nucleotide of each exon. Unknown (None, NaN,
    pd.NA) leaves that track at zero.
    """
    packed = PACKED_BASE_OF_BYTE[np.frombuffer(seq.encode("ascii", errors="replace"), dtype=np.uint8)]
    length = len(packed)
    if not (_unknown(cds_start) or _unknown(cds_end)):
        start, end = int(cds_start), int(cds_end)
        if not 0 <= start < end <= length:
            raise ValueError(f"CDS [{start}, {end}) is not inside a {length}-nt sequence")
        packed[start:end:CODON] |= CDS_BIT
    if not _unknown(exon_ends):
        ends = np.asarray(exon_ends, dtype=np.int64)
        if ends.size and (ends.min() < 0 or ends.max() >= length):
            raise ValueError(f"exon ends {ends.tolist()} fall outside a {length}-nt sequence")
        packed[ends] |= SPLICE_BIT
    return packed


def unpack(packed: np.ndarray) -> np.ndarray:
    """(length,) uint8 packed bytes -> (6, length) float32 tracks, channels in CHANNELS order."""
    packed = np.asarray(packed, dtype=np.uint8)
    codes = np.where(packed & N_BIT, NO_BASE, packed & BASE_MASK)
    tracks = np.empty((N_CHANNELS, len(packed)), dtype=np.float32)
    tracks[: len(BASES)] = _ONE_HOT[codes].T
    tracks[CDS_CHANNEL] = (packed & CDS_BIT) != 0
    tracks[SPLICE_CHANNEL] = (packed & SPLICE_BIT) != 0
    return tracks


def encode(seq: str, cds_start: int | None, cds_end: int | None, exon_ends: Sequence[int] | None) -> np.ndarray:
    """One transcript -> (6, length) float32 tracks, channels in CHANNELS order (arguments as :func:`pack`)."""
    return unpack(pack(seq, cds_start, cds_end, exon_ends))


def encode_row(row) -> np.ndarray:
    """:func:`encode` over a transcripts-table row (Series, dict or namedtuple); a missing column means unknown."""
    get = row.get if hasattr(row, "get") else lambda key, default=None: getattr(row, key, default)
    return encode(get("seq"), get("cds_start", None), get("cds_end", None), get("exon_ends", None))


def crop(track: np.ndarray, max_length: int, rng: np.random.Generator | None) -> np.ndarray:
    """(6, L) -> (6, min(L, max_length)): a random window when ``rng`` is given, else the 5' start.

    Returns a view of ``track``, not a copy.
    """
    if max_length <= 0:
        raise ValueError(f"max_length must be positive, got {max_length}")
    length = track.shape[-1]
    if length <= max_length:
        return track
    start = int(rng.integers(0, length - max_length + 1)) if rng is not None else 0
    return track[:, start : start + max_length]


def unpack_window(packed: np.ndarray, max_length: int, rng: np.random.Generator | None) -> np.ndarray:
    """(length,) packed bytes -> (6, min(length, max_length)) tracks of the window :func:`crop` picks:
    cropped while packed, so only the window is expanded to float tracks."""
    return unpack(crop(packed[None, :], max_length, rng)[0])


def batch(tracks: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad to the longest track in the batch (never a fixed length).

    Returns x (batch, 6, max_len) float32, zero-padded on the 3' side, and
    lengths (batch,) int64 with each track's real length.
    """
    import torch  # here, not at module level: `isoclr validate`/`encode` need tracks but not torch

    if len(tracks) == 0:
        raise ValueError("batch needs at least one track")
    lengths = np.array([t.shape[-1] for t in tracks], dtype=np.int64)
    x = np.zeros((len(tracks), N_CHANNELS, int(lengths.max())), dtype=np.float32)
    for i, track in enumerate(tracks):
        x[i, :, : lengths[i]] = track
    return torch.from_numpy(x), torch.from_numpy(lengths)
