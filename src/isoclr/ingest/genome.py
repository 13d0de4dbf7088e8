"""Spliced transcript sequences from an indexed genome FASTA (plain or bgzip).

The index comes from pyfaidx (``.fai``, and ``.gzi`` for bgzip, built beside
the genome when absent). Exons are copied by one compiled loop (numba) straight
into the output, on every core: from the memory-mapped file when it is
uncompressed, so only exonic bytes are read, else from each contig read whole
through pyfaidx (per-transcript random access is ~4x slower). A
Python slice per exon cost ~2.5 s of a GENCODE-scale run, and most of that was
the interpreter, not the bytes.

Coordinates in: GTF, 1-based closed. Out: an Arrow string array with every
transcript's mature sequence in transcript orientation (minus strand
reverse-complemented), normalised by :data:`isoclr.alphabet.UPPER`.
"""

from __future__ import annotations

import functools
import mmap
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
import pyarrow
import pyfaidx

from isoclr.alphabet import COMPLEMENT_UPPER, UPPER, outside_dna
from isoclr.errors import IsoclrError
from isoclr.ingest.files import is_gzip

# Bytes inside an exon's range of a FASTA file that are no bases.
LF, CR = ord("\n"), ord("\r")
# Mapped genome bytes read between two hand-backs of the touched pages (bounds RSS; each costs a syscall).
RELEASE_BYTES = 1 << 26
# Fewest bases worth a thread of their own.
THREAD_MIN_BASES = 1 << 20


class GenomeError(IsoclrError):
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
        if is_gzip(self.path) and not self.path.name.lower().endswith(".gz"):
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

    def layout(self, contigs: list[str], contig: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Where contig ``contigs[contig[i]]`` lies in the uncompressed file, per entry: (n,) offset of its first
        base, bases per line and bytes per line (as samtools faidx: base p is at offset + (p // bases) * bytes +
        p % bases). Maps the file and checks it holds the contigs."""
        offset, bases, width = (np.zeros(len(contigs), dtype=np.int64) for _ in range(3))
        for code in np.unique(contig).tolist():
            self._mapped(contigs[code])
            rec = self._faidx.index[contigs[code]]
            offset[code], bases[code], width[code] = rec.offset, max(rec.lenc, 1), rec.lenb
        return offset[contig], bases[contig], width[contig]

    def mapped(self) -> np.ndarray:
        """The uncompressed file, memory-mapped, as (file size,) uint8 (call :meth:`layout` first: it maps
        the file and checks it holds the contigs). Drop the array before :meth:`close`. Call :meth:`release`
        now and then: it gives the touched pages back (the page cache keeps them), so RSS holds the exons read
        since, not the genome."""
        return np.frombuffer(self._map, dtype=np.uint8)

    def release(self) -> None:
        """Give back the mapped pages read so far (see :meth:`mapped`)."""
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


def _cut_exons(
    source, offset, line_bases, line_bytes, first, last, minus, at, plus_table, minus_table, invalid, out, bad
):
    """Compiled by :func:`_kernel`. Exon ``i``: bases ``first[i]:last[i]`` (0-based) of the contig whose base 0 is
    ``source[offset[i]]``, in lines of ``line_bases[i]`` bases every ``line_bytes[i]`` bytes, read line by line
    (no test per byte for line breaks) backwards through ``minus_table`` on the minus strand, else forwards
    through ``plus_table``, into ``out[at[i]:]``; ``bad[i]``: a byte it wrote is ``invalid``.

    source (m,) uint8; offset, line_bases, line_bytes, first, last, at (n,) int64; minus, bad (n,) bool;
    tables, invalid (256,) uint8; out (total,) uint8. Returns -1, or the first exon where a line does not end
    in a line break where the index says (a stale index).
    """
    for i in range(first.shape[0]):
        base, per_line, stride = offset[i], line_bases[i], line_bytes[i]
        pos, flag = at[i], 0
        if minus[i]:
            table, p = minus_table, last[i]
            while p > first[i]:  # p: one past the next base to read, going 5' on the genome
                line = (p - 1) // per_line
                low = max(first[i], line * per_line)
                src = base + line * stride + (p - line * per_line)
                for k in range(p - low):
                    c = table[source[src - 1 - k]]
                    out[pos + k] = c
                    flag |= invalid[c]
                pos += p - low
                p = low
                if p > first[i]:
                    c = source[base + (line - 1) * stride + per_line]
                    if c != LF and c != CR:
                        return i
        else:
            table, p = plus_table, first[i]
            while p < last[i]:
                line = p // per_line
                high = min(last[i], (line + 1) * per_line)
                src = base + line * stride + (p - line * per_line)
                for k in range(high - p):
                    c = table[source[src + k]]
                    out[pos + k] = c
                    flag |= invalid[c]
                pos += high - p
                p = high
                if p < last[i]:
                    c = source[base + line * stride + per_line]
                    if c != LF and c != CR:
                        return i
        bad[i] = flag != 0
    return -1


@functools.cache
def _kernel():
    """:func:`_cut_exons` compiled (numba, imported only here); cached on disk, so only the first run compiles.
    Without the interpreter it releases the GIL, so a thread per core runs it at once."""
    import numba

    try:
        return numba.njit(nogil=True, cache=True)(_cut_exons)
    except RuntimeError:  # no writable cache directory (read-only install and home): compile in every process
        return numba.njit(nogil=True)(_cut_exons)


# The kernel's tables (isoclr.alphabet): plus strand, minus strand, and the bytes that make a sequence invalid.
_TABLES = (
    np.frombuffer(UPPER, dtype=np.uint8),
    np.frombuffer(COMPLEMENT_UPPER, dtype=np.uint8),
    outside_dna().astype(np.uint8),
)


def _cut(
    source: np.ndarray,
    layout: tuple[np.ndarray, np.ndarray, np.ndarray],
    first: np.ndarray,
    last: np.ndarray,
    minus: np.ndarray,
    at: np.ndarray,
    out: np.ndarray,
    bad: np.ndarray,
) -> int:
    """:func:`_cut_exons` over exon ranges of about equal bases, one per core. Returns -1 or the first exon
    (index into these) whose lines disagree with the index."""
    kernel = _kernel()
    bases = int((last - first).sum())
    parts = max(1, min(os.cpu_count() or 1, bases // THREAD_MIN_BASES))
    edges = np.unique(np.r_[0, np.searchsorted(at, at[0] + np.arange(1, parts) * (bases // parts)), len(at)])

    def run(a: int, b: int) -> int:
        offset, line_bases, line_bytes = (x[a:b] for x in layout)
        args = (first[a:b], last[a:b], minus[a:b], at[a:b], *_TABLES, out, bad[a:b])
        wrong = kernel(source, offset, line_bases, line_bytes, *args)
        return -1 if wrong < 0 else a + wrong

    ranges = list(pairwise(edges.tolist()))
    if len(ranges) == 1:
        return run(*ranges[0])
    with ThreadPoolExecutor(len(ranges)) as pool:
        wrong = [w for w in pool.map(lambda r: run(*r), ranges) if w >= 0]
    return min(wrong, default=-1)


def splice(genome: Genome, exons: Exons, n_transcripts: int) -> tuple[pyarrow.LargeStringArray, np.ndarray]:
    """Mature sequences of transcripts 0..n_transcripts-1 (null where a transcript has no exons), and
    (n_transcripts,) bool: the sequence holds a byte outside ACGTN.

    Exons must lie inside their contig (checked by the caller's rules). As
    they come in output order, exon ``i`` goes to the sum of the lengths
    before it, so any subset of them can be cut on its own: an uncompressed
    genome is read in transcript order, a bgzip one a contig at a time.
    """
    start, end = np.asarray(exons.start, dtype=np.int64), np.asarray(exons.end, dtype=np.int64)
    minus, contig = np.asarray(exons.minus, dtype=bool), np.asarray(exons.contig)
    lengths = end - start + 1
    at = np.cumsum(lengths) - lengths
    offsets = np.zeros(n_transcripts + 1, dtype=np.int64)
    np.cumsum(np.bincount(exons.transcript, weights=lengths, minlength=n_transcripts).astype(np.int64), out=offsets[1:])
    data = np.empty(offsets[-1], dtype=np.uint8)
    bad = np.zeros(len(lengths), dtype=bool)

    def check(wrong: int, on: np.ndarray) -> None:
        if wrong >= 0:
            i = on[wrong]
            raise GenomeError(
                f"{genome.path}: exon {exons.contigs[contig[i]]}:{start[i]}-{end[i]} runs over a line end without "
                "the line break where the index puts one; the .fai is stale (delete it to rebuild)"
            )

    if genome.compressed:
        for code in np.unique(contig).tolist():
            on = np.flatnonzero(contig == code)
            source = np.frombuffer(genome.contig(exons.contigs[code]), dtype=np.uint8)
            one_line = np.full(len(on), max(len(source), 1), dtype=np.int64)  # no line breaks: one long line
            layout = (np.zeros(len(on), dtype=np.int64), one_line, one_line)
            found = np.zeros(len(on), dtype=bool)
            check(_cut(source, layout, start[on] - 1, end[on], minus[on], at[on], data, found), on)
            bad[on] = found
    else:
        layout = genome.layout(exons.contigs, contig)
        source = genome.mapped()
        try:
            # Rounds of RELEASE_BYTES output, each on every core, then the touched pages handed back.
            edges = np.searchsorted(at, np.arange(RELEASE_BYTES, offsets[-1], RELEASE_BYTES))
            for a, b in pairwise(np.unique(np.r_[0, edges, len(at)]).tolist()):
                part = tuple(x[a:b] for x in layout)
                wrong = _cut(source, part, start[a:b] - 1, end[a:b], minus[a:b], at[a:b], data, bad[a:b])
                check(wrong, np.arange(a, b))
                genome.release()
        finally:
            del source  # the map cannot close while an array views it
    flags = np.zeros(n_transcripts, dtype=bool)
    flags[np.asarray(exons.transcript)[bad]] = True
    has_exons = np.bincount(exons.transcript, minlength=n_transcripts) > 0
    validity = None if has_exons.all() else pyarrow.py_buffer(np.packbits(has_exons, bitorder="little"))
    strings = pyarrow.LargeStringArray.from_buffers(
        n_transcripts, pyarrow.py_buffer(offsets), pyarrow.py_buffer(data), validity, int((~has_exons).sum())
    )
    return strings, flags
