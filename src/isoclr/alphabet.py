"""The nucleotide alphabet, in one place: which letters a transcript may hold and how input is normalised.

A validated transcript is upper-case DNA over :data:`DNA` (``ACGTN``): lower-case (soft-masked) bases
are ordinary bases and RNA ``U`` is read as ``T``. Any other IUPAC code (:data:`IUPAC`) is a nucleotide
but not a transcript letter: validate quarantines it, the encodings give it no base (as ``N``).

Two normalisations exist because input arrives two ways, and they agree on every IUPAC letter:

- :func:`normalise` on text (FASTA records): Python's upper case, then ``U`` -> ``T``;
- :data:`UPPER` on bytes (exons cut from a genome, :mod:`isoclr.ingest.genome`): only IUPAC letters
  are changed, and a non-ASCII byte becomes ``?`` so every sequence stays valid UTF-8.

Either way a character outside :data:`DNA` stays visible, so the quarantine report can name it.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyarrow

BASES = "ACGT"  # the four bases, in the order of the encodings' base channels and codes
DNA = "ACGTN"  # a validated transcript's alphabet
IUPAC = "ACGTURYSWKMBDHVN"  # every nucleotide code (upper case)
# Base -> its complement; U pairs like T; S, W and N are their own.
_PAIRS = {
    "A": "T",
    "C": "G",
    "G": "C",
    "T": "A",
    "U": "A",
    "R": "Y",
    "Y": "R",
    "K": "M",
    "M": "K",
    "B": "V",
    "V": "B",
    "D": "H",
    "H": "D",
    "S": "S",
    "W": "W",
    "N": "N",
}

CODON = 3
START_CODON = "ATG"
STOP_CODONS = ("TAA", "TAG", "TGA")  # the standard code; a mitochondrial AGA/AGG stop is left as annotated

# Any character that is no IUPAC nucleotide, in either case.
NOT_IUPAC = re.compile(f"[^{IUPAC}{IUPAC.lower()}]")

_NON_ASCII = bytes(range(128, 256))
# Bytes: IUPAC letters to upper case, U read as T; other ASCII bytes kept; non-ASCII bytes to "?".
UPPER = bytes.maketrans(
    IUPAC.lower().encode() + b"U" + _NON_ASCII,
    IUPAC.replace("U", "T").encode() + b"T" + b"?" * len(_NON_ASCII),
)
# Bytes: the complement of an IUPAC letter, either case, case kept; other bytes kept.
COMPLEMENT = bytes.maketrans(
    "".join(_PAIRS).encode() + "".join(_PAIRS).lower().encode(),
    "".join(_PAIRS.values()).encode() + "".join(_PAIRS.values()).lower().encode(),
)
# Bytes: complement, then :data:`UPPER` (a minus-strand base is translated once).
COMPLEMENT_UPPER = COMPLEMENT.translate(UPPER)

# Bytes of the concatenated sequences :func:`dna_only` scans per step: the temporary copy stays in the allocator's
# heap and in cache (64 MiB steps cost ~0.3 s more at GENCODE scale, in page faults of fresh memory).
_SCAN_BYTES = 1 << 20


def normalise(raw: pd.Series) -> pd.Series:
    """FASTA sequences as transcript text: upper case (soft-masked bases are ordinary bases), U read as T."""
    return raw.str.upper().str.replace("U", "T", regex=False)


def base_codes(other: int) -> np.ndarray:
    """(256,) uint8: byte -> index of its base in :data:`BASES` (either case, U read as T), ``other`` for any
    other byte (N, another IUPAC code, anything)."""
    codes = np.full(256, other, dtype=np.uint8)
    for code, base in enumerate(BASES):
        codes[ord(base)] = codes[ord(base.lower())] = code
    codes[ord("U")] = codes[ord("u")] = BASES.index("T")
    return codes


def outside_dna() -> np.ndarray:
    """(256,) bool: byte is not a letter of :data:`DNA`."""
    return ~np.isin(np.arange(256), np.frombuffer(DNA.encode(), dtype=np.uint8))


def bad_characters(seq: str) -> str:
    """The distinct characters of ``seq`` outside :data:`DNA`, sorted (for a quarantine detail)."""
    return "".join(sorted(set(seq) - set(DNA)))


def dna_only(seq: pd.Series) -> pd.Series:
    """Per row: the sequence is non-empty and holds only :data:`DNA` letters (the regex ``^[ACGTN]+$``).

    One pass over the column's concatenated bytes (a per-row regex costs ~2 s at
    GENCODE scale); rows are looked at one by one only where a bad byte exists.
    Nulls count as passing here, as in pandera's built-in string checks (the
    column's ``nullable`` decides about them).
    """
    dna = DNA.encode()
    arr = pyarrow.array(seq, type=pyarrow.large_string(), from_pandas=True)
    if isinstance(arr, pyarrow.ChunkedArray):  # an Arrow-backed column of several chunks
        arr = arr.combine_chunks()
    n = len(arr)
    offsets = np.zeros(1, np.int64)
    if n:
        offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + n + 1]
    data = arr.buffers()[2]
    view = memoryview(data)[offsets[0] : offsets[-1]] if data is not None else memoryview(b"")
    ok = np.diff(offsets) > 0
    if any(bytes(view[i : i + _SCAN_BYTES]).translate(None, dna) for i in range(0, len(view), _SCAN_BYTES)):
        bad = np.flatnonzero(outside_dna()[np.frombuffer(view, np.uint8)])
        ok[np.searchsorted(offsets - offsets[0], bad, side="right") - 1] = False
    valid = arr.is_valid().to_numpy(zero_copy_only=False)
    return pd.Series(ok | ~valid, index=seq.index)
