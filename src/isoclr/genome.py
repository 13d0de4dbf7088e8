"""Spliced transcript sequences from an indexed genome FASTA (plain or bgzip).

The index comes from pyfaidx (``.fai``, and ``.gzi`` for bgzip, built beside
the genome when absent). The exons of a contig are sliced from it in one go
(DESIGN §7: per-transcript random access is ~4x slower): from the memory-mapped
file when it is uncompressed, so only exonic bytes are read, else from the
contig read whole through pyfaidx.

Coordinates in: GTF, 1-based closed. Out: an Arrow string array with every
transcript's mature sequence in transcript orientation (minus strand
reverse-complemented), upper case, U read as T.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow
import pyfaidx

GZIP_MAGIC = b"\x1f\x8b"

# Upper case with U read as T; complement of IUPAC DNA (either case, to upper case). Other
# ASCII bytes stay as written, so the validate stage can name them; non-ASCII bytes become "?"
# (as a text read with errors="replace" would), so every sequence is valid UTF-8.
_NON_ASCII = bytes(range(128, 256))
_UPPER = bytes.maketrans(b"acgtunrykmbvdhswU" + _NON_ASCII, b"ACGTTNRYKMBVDHSWT" + b"?" * len(_NON_ASCII))
_LINE_BREAKS = b"\r\n"
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
        self._map: mmap.mmap | None = None

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

    def exons(self, name: str, start: np.ndarray, end: np.ndarray, minus: np.ndarray) -> bytes:
        """The exons on contig ``name`` one after another, each in transcript orientation (minus strand
        reverse-complemented), upper case, U read as T: what :func:`splice` cuts into transcripts.

        ``start``/``end`` are 1-based closed and must lie inside the contig. An uncompressed genome is
        memory-mapped and only the exons' bytes are touched (line breaks deleted after joining: they
        carry no base, so reversing them with a minus-strand exon changes nothing); a bgzip genome is
        read a contig at a time.
        """
        first, last = np.asarray(start, dtype=np.int64) - 1, np.asarray(end, dtype=np.int64)
        if self._faidx._bgzf:
            seq = self.contig(name)
        else:
            seq, rec = self._mapped(name), self._faidx.index[name]
            # Byte of base p (0-based) in the file: offset + (p // lenc) * lenb + p % lenc (as samtools faidx).
            first = rec.offset + (first // rec.lenc) * rec.lenb + first % rec.lenc
            last = rec.offset + ((last - 1) // rec.lenc) * rec.lenb + (last - 1) % rec.lenc + 1
        pieces = [
            seq[a:b][::-1].translate(_COMPLEMENT) if m else seq[a:b]
            for a, b, m in zip(first.tolist(), last.tolist(), np.asarray(minus).tolist())
        ]
        joined = b"".join(pieces).translate(_UPPER, _LINE_BREAKS)
        if not self._faidx._bgzf and len(first):
            # Give the touched pages back (the page cache keeps them), so RSS holds one contig's exons, not the genome.
            page_start = int(first.min()) // mmap.PAGESIZE * mmap.PAGESIZE
            self._map.madvise(mmap.MADV_DONTNEED, page_start, int(last.max()) - page_start)
        return joined

    def _mapped(self, name: str) -> mmap.mmap:
        """The uncompressed genome memory-mapped, after checking it holds all of contig ``name``."""
        if self._map is None:
            with self.path.open("rb") as fh:
                self._map = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        rec = self._faidx.index[name]
        line_breaks = ((rec.rlen - 1) // rec.lenc) * (rec.lenb - rec.lenc) if rec.lenc else 0
        if rec.offset + rec.rlen + line_breaks > len(self._map):
            raise GenomeError(
                f"{self.path}: contig {name!r} runs past the end of the file (the index says {rec.rlen} nt); "
                "the file is truncated or the .fai is stale (delete it to rebuild)"
            )
        return self._map

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        self._faidx.close()


def splice(genome: Genome, exons: Exons, n_transcripts: int) -> tuple[pyarrow.LargeStringArray, np.ndarray]:
    """Mature sequences of transcripts 0..n_transcripts-1 (null where a transcript has no exons), and
    (n_transcripts,) bool: the sequence holds a byte outside ACGTN.

    Exons must lie inside their contig (checked by the caller's rules). Each
    exon is one bytes slice (:meth:`Genome.exons`), joined per contig, so the
    cost is a few passes over the exonic bases.
    """
    chunks, order, invalid = [], [], []
    codes = np.asarray(exons.contig)
    for code in np.unique(codes):
        on_contig = np.flatnonzero(codes == code)
        joined = genome.exons(
            exons.contigs[code], exons.start[on_contig], exons.end[on_contig], exons.minus[on_contig]
        )
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
