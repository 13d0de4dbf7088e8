"""k-mer frequencies: the sequence-composition baseline every encoder must beat.

A linear probe on k-mer frequencies needs no training, so a model that does
not beat it has learned nothing a composition count could not give.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from isoclr.alphabet import base_codes

# Counting works on chunks of rows so that rows x 4**k counters stay bounded.
_KMER_CELLS_PER_CHUNK = 1 << 24
# Byte -> base code 0..3 (A C G T, either case, U read as T); 255 for anything else (N, IUPAC, junk).
_NOT_A_BASE = 255
_BASE_CODE = base_codes(_NOT_A_BASE)


def kmer_features(seqs: Sequence[str], k: int) -> np.ndarray:
    """k-mer frequencies: ``(n, 4**k)``, each row sums to 1 (0 for a sequence with no valid k-mer).

    k-mers are indexed in lexicographic order of ACGT (``AA..A`` = 0,
    ``TT..T`` = 4**k - 1); a k-mer containing N (or any other letter) is not
    counted. All sequences are counted at once: one concatenated code array,
    a rolling base-4 index built with k vector operations, then one bincount.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    seqs = list(seqs)
    n_kmers = 4**k
    out = np.zeros((len(seqs), n_kmers), dtype=np.float64)
    rows_per_chunk = max(1, _KMER_CELLS_PER_CHUNK // n_kmers)
    for start in range(0, len(seqs), rows_per_chunk):
        chunk = seqs[start : start + rows_per_chunk]
        out[start : start + len(chunk)] = _kmer_counts(chunk, k)
    totals = out.sum(axis=1, keepdims=True)
    np.divide(out, totals, out=out, where=totals > 0)
    return out


def _kmer_counts(seqs: Sequence[str], k: int) -> np.ndarray:
    """``(len(seqs), 4**k)`` raw k-mer counts."""
    n = len(seqs)
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=n)
    # One byte per character ("?" for non-ASCII), so positions line up with ``lengths``.
    joined = "".join(seqs).encode("ascii", errors="replace")
    codes = _BASE_CODE[np.frombuffer(joined, dtype=np.uint8)]
    n_windows = len(codes) - k + 1
    if n == 0 or n_windows <= 0:
        return np.zeros((n, 4**k))
    index = np.zeros(n_windows, dtype=np.int64)
    valid = np.ones(n_windows, dtype=bool)
    for j in range(k):
        window = codes[j : j + n_windows]
        valid &= window != _NOT_A_BASE
        index = index * 4 + np.where(window == _NOT_A_BASE, 0, window)
    # A window is a k-mer of one sequence only if it starts at least k-1 before that sequence's end.
    row = np.repeat(np.arange(n), lengths)[:n_windows]
    ends = np.cumsum(lengths)
    valid &= np.arange(n_windows) + k <= ends[row]
    flat = row[valid] * 4**k + index[valid]
    return np.bincount(flat, minlength=n * 4**k).reshape(n, 4**k).astype(np.float64)
