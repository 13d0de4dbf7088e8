"""A CDS where the input has none: the longest open reading frame of the mature transcript.

An ORF runs from an ATG to the first in-frame stop codon (TAA, TAG, TGA), stop included, on the
forward strand of the mature sequence; an ATG with no in-frame stop before the end is no ORF. The
longest ORF of at least ``min_length`` nt is the CDS; of equally long ones the first (5'-most).
Coordinates are transcript coordinates (:mod:`isoclr.coordinates`): 0-based, half-open.

All transcripts are scanned together in numpy (a Python loop over codons costs minutes at GENCODE
scale): the sequences are laid end to end, each starting on a multiple of 3 and followed by at
least one codon of ``N``, so every reading frame of every transcript is one stride-3 slice of the
buffer, and "the next stop in frame" of every ATG is one binary search per slice.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow

from isoclr.alphabet import CODON, START_CODON, STOP_CODONS, base_codes
from isoclr.schemas import INFERRED

# Bases per chunk scanned at once: bounds the int64 work arrays (~8 bytes per base each) to ~100 MB.
CHUNK_BASES = 1 << 24
# Base codes 0..3 (ACGT), 4 for anything else; a codon's code is b0 * 25 + b1 * 5 + b2 (< 125, one byte).
_OTHER = 4
_RADIX = _OTHER + 1
_CODES = base_codes(_OTHER)
_PAD = ord("N")
_NONE = -1


def _codon_code(codon: str) -> int:
    b0, b1, b2 = (_CODES[ord(c)] for c in codon)
    return int(b0) * _RADIX * _RADIX + int(b1) * _RADIX + int(b2)


_START = _codon_code(START_CODON)
_STOPS = np.array([_codon_code(c) for c in STOP_CODONS], dtype=np.uint8)


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
    # Each transcript starts on a multiple of 3, followed by 1-3 codons' worth of N, so no codon that starts
    # inside a transcript reads a base of the next one as A, C, G or T.
    slots = (lengths + CODON - 1) // CODON * CODON + CODON
    slot_starts = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(slots, out=slot_starts[1:])
    buffer = np.full(int(slot_starts[-1]) + 2 * CODON, _PAD, dtype=np.uint8)
    source_starts = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=source_starts[1:])
    shift = np.repeat(slot_starts[:-1] - source_starts[:-1], lengths)
    buffer[np.arange(len(data), dtype=np.int64) + shift] = data
    codes = _CODES[buffer]
    codon = codes[:-2] * _RADIX * _RADIX + codes[1:-1] * _RADIX + codes[2:]  # codon starting at each position
    tx_end = slot_starts[:-1] + lengths  # a stop found at or past this belongs to a later transcript

    found_tx, found_start, found_len = [], [], []
    for frame in range(CODON):
        in_frame = codon[frame::CODON]
        stop_at = np.flatnonzero(np.isin(in_frame, _STOPS))
        atg = np.flatnonzero(in_frame == _START)
        if not len(atg) or not len(stop_at):
            continue
        # The first stop at or after each ATG, in this frame (frame-slice indices).
        following = np.searchsorted(stop_at, atg, side="left")
        has_stop = following < len(stop_at)
        atg, following = atg[has_stop], following[has_stop]
        atg_pos = frame + CODON * atg
        stop_pos = frame + CODON * stop_at[following]
        tx = np.searchsorted(slot_starts, atg_pos, side="right") - 1
        inside = stop_pos < tx_end[tx]
        orf_len = stop_pos + CODON - atg_pos
        keep = inside & (orf_len >= min_length)
        found_tx.append(tx[keep])
        found_start.append(atg_pos[keep] - slot_starts[tx[keep]])
        found_len.append(orf_len[keep])

    starts = np.full(n, _NONE, dtype=np.int64)
    ends = np.full(n, _NONE, dtype=np.int64)
    if not found_tx:
        return starts, ends
    tx, start, length = np.concatenate(found_tx), np.concatenate(found_start), np.concatenate(found_len)
    if not len(tx):
        return starts, ends
    order = np.lexsort((start, -length, tx))  # per transcript: longest first, then 5'-most
    tx, start, length = tx[order], start[order], length[order]
    best = np.flatnonzero(np.r_[True, tx[1:] != tx[:-1]])
    starts[tx[best]] = start[best]
    ends[tx[best]] = start[best] + length[best]
    return starts, ends


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
