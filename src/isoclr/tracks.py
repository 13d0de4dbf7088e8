"""The 6-track per-nucleotide encoding of a mature transcript.

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

from isoclr.alphabet import BASES, CODON, base_codes
from isoclr.coordinates import require_inside

if TYPE_CHECKING:
    import torch

CHANNELS = ("A", "C", "G", "T", "cds", "splice")
N_CHANNELS = len(CHANNELS)
CDS_CHANNEL = CHANNELS.index("cds")
SPLICE_CHANNEL = CHANNELS.index("splice")

# Byte value -> base channel; NO_BASE selects the all-zero row of _ONE_HOT.
NO_BASE = len(BASES)
# (5, 4): identity for A C G T, zeros for everything else.
_ONE_HOT = np.vstack([np.eye(len(BASES), dtype=np.float32), np.zeros((1, len(BASES)), dtype=np.float32)])

# Packed byte layout.
BASE_MASK = 0b11
N_BIT = 1 << 2
CDS_BIT = 1 << 3
SPLICE_BIT = 1 << 4
# Byte value -> packed base (0..3, or N_BIT for N and anything else).
PACKED_BASE_OF_BYTE = base_codes(N_BIT)
# The same for a pair of bytes read as one native uint16: one lookup per two bases in a 128 KiB table runs ~3x
# faster at GENCODE scale than bytes.translate (~2 ns a byte here).
_PAIRS = np.arange(1 << 16, dtype=np.uint16).view(np.uint8).reshape(-1, 2)
_PACKED_PAIRS = PACKED_BASE_OF_BYTE[_PAIRS].reshape(-1).view(np.uint16)
# Bytes looked up per step: the chunk and its output stay in cache.
_PACK_CHUNK = 1 << 16
# Fewer bytes than this are looked up one at a time: the pair table is then mostly out of cache, and one lookup
# per byte is faster (a single transcript; the store packs pieces of many).
_PAIRS_FROM = 1 << 15


def _unknown(value) -> bool:
    """None, NaN and pd.NA mean unknown; arrays and lists are values."""
    return value is None or (np.ndim(value) == 0 and bool(pd.isna(value)))


def pack_bases(data: np.ndarray, out: np.ndarray) -> None:
    """(n,) sequence bytes -> ``out`` (n,) packed base bytes (no CDS or splice bits yet); long inputs two bytes per
    lookup."""
    if len(data) < _PAIRS_FROM:
        np.take(PACKED_BASE_OF_BYTE, data, out=out)
        return
    pairs, step = len(data) // 2 * 2, max(2, _PACK_CHUNK // 2 * 2)
    for i in range(0, pairs, step):
        j = min(i + step, pairs)
        np.take(_PACKED_PAIRS, data[i:j].view(np.uint16), out=out[i:j].view(np.uint16))
    out[pairs:] = PACKED_BASE_OF_BYTE[data[pairs:]]


def mark_cds(packed: np.ndarray, start: int, end: int) -> None:
    """Set the CDS bit on the first nucleotide of every codon of ``packed[start:end]`` (checked by the caller)."""
    packed[start:end:CODON] |= CDS_BIT


def mark_exon_ends(packed: np.ndarray, positions: np.ndarray) -> None:
    """Set the splice bit at ``positions`` (last nucleotides of exons, checked by the caller)."""
    packed[positions] |= SPLICE_BIT


def pack(seq: str, cds_start: int | None, cds_end: int | None, exon_ends: Sequence[int] | None) -> np.ndarray:
    """One transcript -> (length,) uint8 packed bytes (layout in the module docstring).

    ``cds_start``/``cds_end`` are 0-based half-open transcript coordinates;
    ``exon_ends`` the 0-based last nucleotide of each exon. Unknown (None, NaN,
    pd.NA) leaves that track at zero; a CDS or an exon end outside the sequence
    is a :class:`~isoclr.coordinates.CoordinateError`.
    """
    data = np.frombuffer(seq.encode("ascii", errors="replace"), dtype=np.uint8)
    packed = np.empty(len(data), dtype=np.uint8)
    pack_bases(data, packed)
    coding = not (_unknown(cds_start) or _unknown(cds_end))
    start, end = (int(cds_start), int(cds_end)) if coding else (None, None)
    ends = None if _unknown(exon_ends) else np.asarray(exon_ends, dtype=np.int64)
    require_inside(start, end, ends, len(packed))
    if coding:
        mark_cds(packed, start, end)
    if ends is not None:
        mark_exon_ends(packed, ends)
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


def swap_cds(
    utrs: np.ndarray, utr_cds: tuple[int, int], partner: np.ndarray, partner_cds: tuple[int, int]
) -> np.ndarray:
    """Packed chimera (Orthrus's UTR/CDS swap): ``utrs``'s 5'UTR, ``partner``'s CDS, ``utrs``'s 3'UTR.

    ``utr_cds`` and ``partner_cds`` are the half-open CDS of each (length,) uint8 packed transcript. Every
    byte keeps its base, CDS and splice bits, so the partner's codon marks start at the chimera's CDS start and
    the exon ends inside each piece move with it. The partner's transcript-end mark (a CDS running to its 3'
    end) is dropped when a 3'UTR follows, and the chimera's last nucleotide is marked, as in any transcript.
    Returns (5'UTR + partner CDS + 3'UTR,) uint8, a new array.
    """
    (start, end), (p_start, p_end) = utr_cds, partner_cds
    if not (0 <= start < end <= len(utrs) and 0 <= p_start < p_end <= len(partner)):
        raise ValueError(f"CDS {utr_cds} / {partner_cds} not inside transcripts of {len(utrs)} / {len(partner)} nt")
    cds = partner[p_start:p_end].copy()
    if end < len(utrs) and p_end == len(partner):
        cds[-1] &= ~np.uint8(SPLICE_BIT)
    out = np.concatenate([utrs[:start], cds, utrs[end:]])
    out[-1] |= SPLICE_BIT
    return out
