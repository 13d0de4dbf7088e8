"""A CDS where the input has none: the longest open reading frame of the mature transcript.

An ORF runs from an ATG to the first in-frame stop codon (TAA, TAG, TGA), stop included, on the
forward strand of the mature sequence; an ATG with no in-frame stop before the end is no ORF. The
longest ORF of at least ``min_length`` nt is the CDS; of equally long ones the first (5'-most).
Coordinates are transcript coordinates (:mod:`isoclr.coordinates`): 0-based, half-open.

All transcripts are scanned together in numpy (a Python loop over codons costs minutes at GENCODE
scale): the codon at every position of the sequences laid end to end is one code, ATGs and stops
are the few positions whose code is one of four, and "the next stop in frame" of every ATG is one
binary search in the stops sorted by (frame, position).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow

from isoclr.alphabet import CODON, START_CODON, STOP_CODONS, base_codes
from isoclr.schemas import INFERRED

# Bases per chunk scanned at once: bounds the work arrays (a few bytes per base) to ~100 MB.
CHUNK_BASES = 1 << 24
# Base codes 0..3 (ACGT), 4 for anything else; a codon's code is b0 * 25 + b1 * 5 + b2 (< 125, one byte).
_OTHER = 4
_RADIX = _OTHER + 1
_CODES = base_codes(_OTHER)
_NONE = -1


def _codon_code(codon: str) -> int:
    b0, b1, b2 = (_CODES[ord(c)] for c in codon)
    return int(b0) * _RADIX * _RADIX + int(b1) * _RADIX + int(b2)


# Codon code -> 1 for ATG, 2 for a stop codon, 0 for any other.
_KIND = np.zeros(_RADIX**CODON, dtype=np.uint8)
_KIND[_codon_code(START_CODON)] = 1
_KIND[[_codon_code(c) for c in STOP_CODONS]] = 2


def longest_orfs(seqs: pd.Series, min_length: int) -> tuple[np.ndarray, np.ndarray]:
    """The longest ORF of each sequence.

    Args:
        seqs: (n,) transcript sequences (any case; U read as T).
        min_length: shortest ORF kept, in nt from the A of ATG to the last base of the stop codon.
    Returns:
        (starts, ends): (n,) int64 each, the ORF as ``[start, end)`` with the stop codon inside;
        -1 in both where a sequence has no ORF of ``min_length`` nt.
    """
    array = pyarrow.array(seqs, type=pyarrow.large_string(), from_pandas=True).fill_null("")
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64)[array.offset : array.offset + len(array) + 1]
    data_buffer = array.buffers()[2]
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(0, np.uint8)
    lengths = np.diff(offsets)
    starts = np.full(len(array), _NONE, dtype=np.int64)
    ends = np.full(len(array), _NONE, dtype=np.int64)
    first = 0
    while first < len(array):
        # Transcripts first..last (at least one) holding at most CHUNK_BASES bases.
        last = max(first + 1, int(np.searchsorted(offsets, offsets[first] + CHUNK_BASES, side="right")) - 1)
        last = min(last, len(array))
        chunk_starts, chunk_ends = _scan(data[offsets[first] : offsets[last]], lengths[first:last], min_length)
        starts[first:last], ends[first:last] = chunk_starts, chunk_ends
        first = last
    return starts, ends


def _scan(data: np.ndarray, lengths: np.ndarray, min_length: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`longest_orfs` of the transcripts whose bytes, end to end, are ``data`` (lengths ``lengths``)."""
    n = len(lengths)
    bounds = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=bounds[1:])
    codes = _CODES[data]
    codon = codes[:-2] * (_RADIX * _RADIX) + codes[1:-1] * _RADIX + codes[2:]  # the codon starting at each position
    kind = _KIND[codon]  # 1 ATG, 2 stop, 0 other
    atg, stop = _located(np.flatnonzero(kind == 1), bounds), _located(np.flatnonzero(kind == 2), bounds)
    starts = np.full(n, _NONE, dtype=np.int64)
    ends = np.full(n, _NONE, dtype=np.int64)
    if not len(atg[0]) or not len(stop[0]):
        return starts, ends
    # Stops sorted by (frame, position): the first stop at or after an ATG in the same frame is one binary search;
    # one in a later transcript (positions run on across transcripts) is no stop of this ATG's.
    total = int(bounds[-1])
    # Stops come in position order: grouped by frame (stable), they are sorted by (frame, position) unsorted.
    stop_key = np.concatenate([stop[0][stop[2] == frame] + frame * total for frame in range(CODON)])
    found = np.searchsorted(stop_key, atg[2] * total + atg[0], side="left")
    has_stop = found < len(stop_key)
    atg_pos, atg_tx = atg[0][has_stop], atg[1][has_stop]
    stop_pos = stop_key[found[has_stop]] % total
    length = stop_pos + CODON - atg_pos
    # The stop found may lie in the next frame's group (none left in this frame): then it is out of frame.
    in_frame = (stop_pos < bounds[atg_tx + 1]) & (stop_pos >= atg_pos) & (length % CODON == 0)
    keep = in_frame & (length >= min_length)
    tx, start, length = atg_tx[keep], atg_pos[keep] - bounds[atg_tx[keep]], length[keep]
    if not len(tx):
        return starts, ends
    order = np.lexsort((start, -length, tx))  # per transcript: longest first, then 5'-most
    tx, start, length = tx[order], start[order], length[order]
    best = np.flatnonzero(np.r_[True, tx[1:] != tx[:-1]])
    starts[tx[best]] = start[best]
    ends[tx[best]] = start[best] + length[best]
    return starts, ends


def _located(positions: np.ndarray, bounds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(position, transcript, frame) of the codons starting at ``positions`` that lie wholly inside one
    transcript; frame is the position in the transcript modulo 3."""
    tx = np.searchsorted(bounds, positions, side="right") - 1
    inside = positions + CODON <= bounds[tx + 1]
    positions, tx = positions[inside], tx[inside]
    return positions, tx, (positions - bounds[tx]) % CODON


def infer_cds(transcripts: pd.DataFrame, min_length: int) -> pd.DataFrame:
    """Fill the CDS of transcripts that have none with their longest ORF, and say where each CDS came from.

    ``transcripts`` has columns ``seq``, ``cds_start``, ``cds_end`` and ``cds_source`` (annotated / none);
    rows without a CDS whose longest ORF reaches ``min_length`` nt get it, with ``cds_source`` inferred.
    """
    missing = transcripts["cds_start"].isna().to_numpy()
    if not missing.any():
        return transcripts
    starts, ends = longest_orfs(transcripts.loc[missing, "seq"], min_length)
    found = starts != _NONE
    rows = transcripts.index[missing][found]
    out = transcripts.copy()
    out.loc[rows, "cds_start"] = starts[found]
    out.loc[rows, "cds_end"] = ends[found]
    out.loc[rows, "cds_source"] = INFERRED
    return out
