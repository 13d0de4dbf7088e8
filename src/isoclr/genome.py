"""Spliced transcript sequences from an indexed genome FASTA (plain or bgzip).

Random access goes through pyfaidx (``.fai``, and ``.gzi`` for bgzip, built
beside the genome when absent). Each contig is read once as bytes and the
exons on it are sliced from it (DESIGN §7: per-transcript random access is
~4x slower), so the cost is one pass over the contigs plus a few over the
exonic bases.

Coordinates in: GTF, 1-based closed. Out: an Arrow string array with every
transcript's mature sequence in transcript orientation (minus strand
reverse-complemented), upper case, U read as T.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow
import pyfaidx

GZIP_MAGIC = b"\x1f\x8b"

# Upper case with U read as T; complement of IUPAC DNA (either case, to upper case). Other
# bytes stay as written, so the validate stage can name them.
_UPPER = bytes.maketrans(b"acgtunrykmbvdhswU", b"ACGTTNRYKMBVDHSWT")
_COMPLEMENT = bytes.maketrans(b"ACGTURYKMBVDHacgturykmbvdh", b"TGCAAYRMKVBHDTGCAAYRMKVBHD")
VALID = b"ACGTN"


class GenomeError(Exception):
    """The genome FASTA cannot be read or indexed, or is shorter than its index says."""


@dataclass(frozen=True)
class Exons:
    """Exons to splice, one entry per exon, sorted by transcript then transcript position.

    ``transcript`` is the 0-based output index of the exon's transcript,
    ``contig`` an index into ``contigs``, ``start``/``end`` 1-based closed
    genomic coordinates, ``minus`` the strand.
    """

    transcript: np.ndarray
    contig: np.ndarray
    contigs: list[str]
    start: np.ndarray
    end: np.ndarray
    minus: np.ndarray


class Genome:
    """An indexed genome FASTA; contigs come back whole, as bytes."""

    def __init__(self, path: Path):
        self.path = Path(path)
        with self.path.open("rb") as fh:
            gzipped = fh.read(len(GZIP_MAGIC)) == GZIP_MAGIC
        if gzipped and not self.path.name.lower().endswith(".gz"):
            raise GenomeError(f"{self.path}: gzip-compressed but not named .gz; compress it with `bgzip` as NAME.fa.gz")
        try:
            self._faidx = pyfaidx.Faidx(str(self.path), as_raw=True, rebuild=True)
        except pyfaidx.UnsupportedCompressionFormat as err:
            raise GenomeError(f"{self.path}: gzip but not bgzip; recompress with `bgzip` so it can be indexed") from err
        except (pyfaidx.FastaIndexingError, ValueError, OSError) as err:
            raise GenomeError(f"{self.path}: cannot be indexed as FASTA ({err})") from err
        self.lengths = {name: int(rec.rlen) for name, rec in self._faidx.index.items()}

    def contig(self, name: str) -> bytes:
        """The whole contig as written (case and alphabet are normalised on the exonic bases only)."""
        expected = self.lengths[name]
        try:
            raw = self._faidx.fetch(name, 1, expected) if expected else ""
        except (pyfaidx.FetchError, OSError, ValueError) as err:
            raise GenomeError(f"{self.path}: contig {name!r} cannot be read ({err})") from err
        seq = str(raw).encode("ascii", errors="replace")
        if len(seq) != expected:
            raise GenomeError(
                f"{self.path}: contig {name!r} has {len(seq)} nt but the index says {expected}; "
                "the file is truncated or the .fai is stale (delete it to rebuild)"
            )
        return seq

    def close(self) -> None:
        self._faidx.close()


def splice(genome: Genome, exons: Exons, n_transcripts: int) -> tuple[pyarrow.LargeStringArray, np.ndarray]:
    """Mature sequences of transcripts 0..n_transcripts-1 (null where a transcript has no exons), and
    (n_transcripts,) bool: the sequence holds a byte outside ACGTN.

    Exons must lie inside their contig (checked by the caller's rules). Each
    contig is read once; each exon is one bytes slice (reversed from the
    complemented contig on the minus strand), joined per contig, so the cost is
    one pass over the genome plus a few over the exonic bases.
    """
    chunks, order, invalid = [], [], []
    codes = np.asarray(exons.contig)
    for code in np.unique(codes):
        on_contig = np.flatnonzero(codes == code)
        seq = genome.contig(exons.contigs[code])
        # Minus-strand exons: reversed, then complemented (the table also upper-cases).
        pieces = [
            seq[start - 1 : end][::-1].translate(_COMPLEMENT) if minus else seq[start - 1 : end]
            for start, end, minus in zip(
                exons.start[on_contig].tolist(), exons.end[on_contig].tolist(), exons.minus[on_contig].tolist()
            )
        ]
        joined = b"".join(pieces).translate(_UPPER)
        del seq, pieces
        transcript = exons.transcript[on_contig]
        lengths = exons.end[on_contig] - exons.start[on_contig] + 1
        first = np.flatnonzero(np.diff(transcript, prepend=-1))
        offsets = np.zeros(len(first) + 1, dtype=np.int64)
        np.cumsum(np.add.reduceat(lengths, first), out=offsets[1:])
        chunks.append(pyarrow.LargeStringArray.from_buffers(len(first), pyarrow.py_buffer(offsets), pyarrow.py_buffer(joined)))
        order.append(transcript[first])
        # Almost always nothing is left once the alphabet is deleted; only then look per transcript.
        flags = np.zeros(len(first), dtype=bool)
        if joined.translate(None, VALID):
            bad = np.flatnonzero(~np.isin(np.frombuffer(joined, np.uint8), np.frombuffer(VALID, np.uint8)))
            flags[np.searchsorted(offsets, bad, side="right") - 1] = True
        invalid.append(flags)
    # Back to transcript order; a transcript without exons gets a null.
    position = np.full(n_transcripts, -1, dtype=np.int64)
    if order:
        placed = np.concatenate(order)
        position[placed] = np.arange(len(placed))
    joined = pyarrow.concat_arrays(chunks) if chunks else pyarrow.array([], pyarrow.large_string())
    flags = np.concatenate(invalid) if invalid else np.zeros(0, dtype=bool)
    return joined.take(pyarrow.array(position, mask=position < 0)), np.where(position < 0, False, flags[np.maximum(position, 0)] if len(flags) else False)
