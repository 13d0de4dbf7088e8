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
# Complement, then upper case, as one table: a minus-strand piece cut from the mapped genome is translated once.
_COMPLEMENT_UPPER = _COMPLEMENT.translate(_UPPER)
VALID = b"ACGTN"
# Exonic bases cut per step from an uncompressed genome. Small enough that the temporary pieces stay in
# the allocator's heap and in cache (64 MB steps spent ~1 s more at GENCODE scale in page faults of fresh
# memory), large enough that the per-step work is noise.
SPLICE_BATCH_BASES = 1 << 21
# Mapped genome bytes read between two hand-backs of the touched pages (bounds RSS; each costs a syscall).
RELEASE_BYTES = 1 << 26


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

    @property
    def compressed(self) -> bool:
        return bool(self._faidx._bgzf)

    def exons(self, name: str, start: np.ndarray, end: np.ndarray, minus: np.ndarray) -> bytes:
        """The exons on contig ``name`` one after another, each in transcript orientation (minus strand
        reverse-complemented), upper case, U read as T, from the contig read whole (how a bgzip genome is
        read; :meth:`mapped_exons` reads only the exons of an uncompressed one).

        ``start``/``end`` are 1-based closed and must lie inside the contig.
        """
        return _cut(self.contig(name), np.asarray(start, dtype=np.int64) - 1, np.asarray(end, dtype=np.int64), minus)

    def byte_ranges(
        self, contigs: list[str], contig: np.ndarray, start: np.ndarray, end: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(n,) first and (n,) past-the-last byte in the uncompressed file of exons ``start``..``end``
        (1-based closed) on ``contigs[contig]``, line breaks included."""
        codes = np.unique(contig)
        recs = {code: self._faidx.index[contigs[code]] for code in codes}
        for code in codes:
            self._mapped(contigs[code])
        offset, lenc, lenb = (np.zeros(len(contigs), dtype=np.int64) for _ in range(3))
        for code, rec in recs.items():
            offset[code], lenc[code], lenb[code] = rec.offset, max(rec.lenc, 1), rec.lenb
        offset, lenc, lenb = offset[contig], lenc[contig], lenb[contig]

        # Byte of base p (0-based) in the file: offset + (p // lenc) * lenb + p % lenc (as samtools faidx).
        def byte(p: np.ndarray) -> np.ndarray:
            return offset + (p // lenc) * lenb + p % lenc

        return byte(np.asarray(start, dtype=np.int64) - 1), byte(np.asarray(end, dtype=np.int64) - 1) + 1

    def mapped_exons(self, first: np.ndarray, last: np.ndarray, minus: np.ndarray) -> bytes:
        """Exons given as byte ranges of the uncompressed file (:meth:`byte_ranges`), as :meth:`exons`
        returns them. The file is memory-mapped and only the exons' bytes are touched (line breaks
        deleted per piece: they carry no base, so reversing them with a minus-strand exon changes
        nothing). Call :meth:`release` now and then: it gives the touched pages back (the page cache
        keeps them), so RSS holds the exons read since, not the genome."""
        return _cut_pieces(self._map, first, last, minus)

    def release(self) -> None:
        """Give back the mapped pages read so far (see :meth:`mapped_exons`)."""
        if self._map is not None:
            self._map.madvise(mmap.MADV_DONTNEED)

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


def _cut(seq: bytes | mmap.mmap, first: np.ndarray, last: np.ndarray, minus: np.ndarray) -> bytes:
    """``seq[first[i]:last[i]]`` one after another, minus-strand pieces reverse-complemented, then upper case,
    U read as T and line breaks deleted."""
    pieces = [
        seq[a:b][::-1].translate(_COMPLEMENT) if m else seq[a:b]
        for a, b, m in zip(np.asarray(first).tolist(), np.asarray(last).tolist(), np.asarray(minus).tolist())
    ]
    return b"".join(pieces).translate(_UPPER, _LINE_BREAKS)


def _cut_pieces(seq: bytes | mmap.mmap, first: np.ndarray, last: np.ndarray, minus: np.ndarray) -> bytes:
    """As :func:`_cut`, with each piece translated on its own: one translation per base (the plus-strand
    ones need no complement), where :func:`_cut` makes a second pass over the joined bases."""
    pieces = [
        seq[a:b][::-1].translate(_COMPLEMENT_UPPER, _LINE_BREAKS) if m else seq[a:b].translate(_UPPER, _LINE_BREAKS)
        for a, b, m in zip(np.asarray(first).tolist(), np.asarray(last).tolist(), np.asarray(minus).tolist())
    ]
    return b"".join(pieces)


def splice(genome: Genome, exons: Exons, n_transcripts: int) -> tuple[pyarrow.LargeStringArray, np.ndarray]:
    """Mature sequences of transcripts 0..n_transcripts-1 (null where a transcript has no exons), and
    (n_transcripts,) bool: the sequence holds a byte outside ACGTN.

    Exons must lie inside their contig (checked by the caller's rules). Each
    exon is one bytes slice, joined with its neighbours, so the cost is a few
    passes over the exonic bases: an uncompressed genome is read in transcript
    order straight into the output, a bgzip one a contig at a time.
    """
    if genome.compressed:
        return _splice_by_contig(genome, exons, n_transcripts)
    return _splice_in_order(genome, exons, n_transcripts)


def _splice_in_order(genome: Genome, exons: Exons, n_transcripts: int) -> tuple[pyarrow.LargeStringArray, np.ndarray]:
    """:func:`splice` from the memory-mapped file: exons are already in output order, so batches of them are
    cut and copied into one preallocated buffer (no per-contig pieces to reorder: ~1 s at GENCODE scale)."""
    lengths = exons.end - exons.start + 1
    n_exons = np.bincount(exons.transcript, minlength=n_transcripts)
    offsets = np.zeros(n_transcripts + 1, dtype=np.int64)
    np.cumsum(np.bincount(exons.transcript, weights=lengths, minlength=n_transcripts).astype(np.int64), out=offsets[1:])
    data = np.empty(offsets[-1], dtype=np.uint8)
    first, last = genome.byte_ranges(exons.contigs, exons.contig, exons.start, exons.end)
    # Batch edges: the first exon past every SPLICE_BATCH_BASES bases (bounds the temporary pieces).
    ends = np.cumsum(lengths)
    cuts = np.searchsorted(ends, np.arange(SPLICE_BATCH_BASES, offsets[-1], SPLICE_BATCH_BASES))
    edges = np.unique(np.r_[0, cuts, len(ends)])
    bad, released = [], 0
    for a, b in zip(edges[:-1].tolist(), edges[1:].tolist()):
        joined = genome.mapped_exons(first[a:b], last[a:b], exons.minus[a:b])
        at = int(ends[a - 1]) if a else 0
        data[at : at + len(joined)] = np.frombuffer(joined, dtype=np.uint8)
        bad.append(at + _invalid_bytes(joined))
        if at + len(joined) - released > RELEASE_BYTES:
            genome.release()
            released = at + len(joined)
    genome.release()
    flags = np.zeros(n_transcripts, dtype=bool)
    bad = np.concatenate(bad) if bad else np.zeros(0, dtype=np.int64)
    flags[np.searchsorted(offsets, bad, side="right") - 1] = True
    has_exons = n_exons > 0
    validity = None if has_exons.all() else pyarrow.py_buffer(np.packbits(has_exons, bitorder="little"))
    strings = pyarrow.LargeStringArray.from_buffers(
        n_transcripts, pyarrow.py_buffer(offsets), pyarrow.py_buffer(data), validity, int((~has_exons).sum())
    )
    return strings, flags


def _splice_by_contig(genome: Genome, exons: Exons, n_transcripts: int) -> tuple[pyarrow.LargeStringArray, np.ndarray]:
    """:func:`splice` a contig at a time (:meth:`Genome.exons`). Contigs are taken in the order of their first
    transcript: when transcripts are grouped by contig (a sorted GTF), the per-contig pieces are already in
    transcript order and are not reordered."""
    chunks, order, invalid = [], [], []
    codes = np.asarray(exons.contig)
    present, first_exon = np.unique(codes, return_index=True)
    for code in present[np.argsort(first_exon)]:
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
        flags = np.zeros(len(first), dtype=bool)
        flags[np.searchsorted(offsets, _invalid_bytes(joined), side="right") - 1] = True
        invalid.append(flags)
    placed = np.concatenate(order) if order else np.zeros(0, dtype=np.int64)
    strings = pyarrow.concat_arrays(chunks) if chunks else pyarrow.array([], pyarrow.large_string())
    flags = np.concatenate(invalid) if invalid else np.zeros(0, dtype=bool)
    if np.array_equal(placed, np.arange(n_transcripts)):
        return strings, flags
    # Back to transcript order; a transcript without exons gets a null.
    position = np.full(n_transcripts, -1, dtype=np.int64)
    position[placed] = np.arange(len(placed))
    missing = position < 0
    return strings.take(pyarrow.array(position, mask=missing)), np.where(
        missing, False, flags[np.maximum(position, 0)] if len(flags) else False
    )


def _invalid_bytes(joined: bytes) -> np.ndarray:
    """Positions in ``joined`` of bytes outside ACGTN."""
    # Almost always nothing is left once the alphabet is deleted; only then look byte by byte.
    if not joined.translate(None, VALID):
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(~np.isin(np.frombuffer(joined, np.uint8), np.frombuffer(VALID, np.uint8)))
