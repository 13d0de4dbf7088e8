"""Spliced transcript sequences from an indexed genome FASTA (plain or bgzip).

The index comes from pyfaidx (``.fai``, and ``.gzi`` for bgzip). An index already beside the genome,
not older than it, is read there; otherwise the index is built in the genome cache (:func:`indexable`),
never beside the user's file (data folders may be read-only or DVC-tracked): the genome is linked there
and indexed under the link. A genome as Ensembl and GENCODE publish it, plain gzip, cannot be indexed:
it is decompressed once into the genome cache and read from there. The format is told from the bytes,
not the name. Exons are copied by one compiled loop (numba) straight
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
import gzip
import hashlib
import mmap
import os
import shutil
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np
import pyarrow
import pyfaidx

from isoclr.alphabet import COMPLEMENT_UPPER, UPPER, outside_dna
from isoclr.atomic import process_alive
from isoclr.errors import IsoclrError
from isoclr.ingest.files import BGZIP, GZIP, compression

# Bytes inside an exon's range of a FASTA file that are no bases.
LF, CR = ord("\n"), ord("\r")
# Mapped genome bytes read between two hand-backs of the touched pages (bounds RSS; each costs a syscall).
RELEASE_BYTES = 1 << 26
# Fewest bases worth a thread of their own.
THREAD_MIN_BASES = 1 << 20
# The genome cache: this environment variable, else $XDG_CACHE_HOME/isoclr/genomes, else ~/.cache/isoclr/genomes.
CACHE_ENV = "ISOCLR_GENOME_CACHE"
# A cached genome's key: the file's size and the sha256 of its first and last MiB. Reading ~2 MiB costs nothing at
# any size, unlike hashing all of a 1 GB download on every run, and it is the content, not the mtime (which a
# `dvc checkout` or a copy changes): the last 8 bytes of a gzip file are the CRC32 and length of its content.
KEY_BYTES = 1 << 20
# Bytes decompressed per read when a gzip genome is copied into the cache.
COPY_BYTES = 1 << 24


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


def cache_dir() -> Path:
    """Where decompressed genomes are kept (:data:`CACHE_ENV`, else the user's cache folder): outside the data
    folder, so a read-only or DVC-tracked data folder stays as it is."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "isoclr" / "genomes"


def content_key(path: Path) -> str:
    """A key of the file's content (see :data:`KEY_BYTES`), 24 hex digits."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as fh:
        digest.update(fh.read(KEY_BYTES))
        if size > KEY_BYTES:
            fh.seek(max(KEY_BYTES, size - KEY_BYTES))
            digest.update(fh.read())
    return digest.hexdigest()[:24]


def _clear_abandoned(final: Path) -> None:
    """Remove the temporary files a killed run left while making ``final`` (their process is gone)."""
    for tmp in final.parent.glob(f".{final.name}.*.tmp*"):
        pid = tmp.name[len(final.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            tmp.unlink(missing_ok=True)


def _decompressed_copy(path: Path, final: Path) -> None:
    """``path`` (gzip) decompressed to ``final`` with its ``.fai``, both written under temporary names and renamed
    into place, the index first: a killed run leaves no ``final``, so the next run makes it again."""
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    tmp_index = tmp.with_name(tmp.name + ".fai")
    try:
        try:
            with gzip.open(path, "rb") as src, tmp.open("wb") as out:
                shutil.copyfileobj(src, out, COPY_BYTES)
                out.flush()
                os.fsync(out.fileno())
        except (EOFError, zlib.error, gzip.BadGzipFile) as err:
            raise GenomeError(
                f"{path}: cannot be decompressed ({err}); the file is truncated or corrupt: download it again"
            ) from err
        except OSError as err:
            if not tmp.exists() or err.filename not in (None, str(tmp)):
                raise GenomeError(f"{path}: cannot be decompressed ({err}); download it again") from err
            raise GenomeError(
                f"{path}: cannot write its decompressed copy to {final.parent} ({err}); "
                f"set {CACHE_ENV} to a folder with room for it"
            ) from err
        try:
            pyfaidx.Faidx(str(tmp), indexname=str(tmp_index), rebuild=True).close()
        except (pyfaidx.FastaIndexingError, ValueError, OSError, UnicodeDecodeError) as err:
            raise GenomeError(f"{path}: cannot be indexed as FASTA once decompressed ({err})") from err
        os.replace(tmp_index, final.with_name(final.name + ".fai"))
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
        tmp_index.unlink(missing_ok=True)


def indexed_beside(path: Path, kind: str) -> bool:
    """Whether ``path`` carries its own index beside it (``.fai``, and ``.gzi`` for bgzip), not older than it:
    then pyfaidx reads it there and writes nothing."""
    try:
        mtime = path.stat().st_mtime
        names = (".fai", ".gzi") if kind == BGZIP else (".fai",)
        return all(Path(f"{path}{n}").stat().st_mtime >= mtime for n in names)
    except OSError:
        return False


def indexable(path: Path, cache: Path | None = None) -> Path:
    """The file pyfaidx should index for genome ``path``: the genome itself when it is plain, or bgzip named
    ``.gz``/``.bgz``, and its index is already beside it (:func:`indexed_beside`); else a file in the genome
    cache (``cache``, default :func:`cache_dir`), made once per content (:func:`content_key`) and reused: a
    link to a plain or bgzip genome, named ``.fa`` or ``.fa.gz`` as its bytes say (its ``.fai``, and ``.gzi``,
    are written beside the link), a plain gzip one decompressed there (with its ``.fai``). Nothing is ever
    written beside ``path``."""
    path = Path(path)
    try:
        kind = compression(path)
    except OSError as err:
        raise GenomeError(f"{path}: cannot be read ({err})") from err
    named_gz = path.name.lower().endswith((".gz", ".bgz"))
    if (kind == BGZIP) == named_gz and kind != GZIP and indexed_beside(path, kind):
        return path
    folder = Path(cache) if cache is not None else cache_dir()
    stem = path.name.split(".", 1)[0] or "genome"
    # Plain or bgzip: the file itself, named by a link as its bytes say (keyed by its path too: a link reads
    # whatever the file holds now, and pyfaidx rebuilds an index older than the file).
    link = kind != GZIP
    key = content_key(path)
    if link:
        key = hashlib.sha256(f"{path.resolve()}\0{key}".encode()).hexdigest()[:24]
    final = folder / f"{stem}-{key}.{'fa.gz' if kind == BGZIP else 'fa'}"
    if final.exists():
        return final
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _clear_abandoned(final)
        if link:
            tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
            tmp.unlink(missing_ok=True)
            tmp.symlink_to(path.resolve())
            os.replace(tmp, final)
            return final
    except OSError as err:
        raise GenomeError(
            f"{path}: cannot use the genome cache {folder} ({err}); set {CACHE_ENV} to a writable folder"
        ) from err
    _decompressed_copy(path, final)
    return final


class Genome:
    """An indexed genome FASTA; contigs come back whole, as bytes. ``path`` names it in messages; the file read
    may be its copy in the genome cache (:func:`indexable`)."""

    def __init__(self, path: Path, cache: Path | None = None):
        self.path = Path(path)
        self.source = indexable(self.path, cache)
        try:
            self._faidx = pyfaidx.Faidx(str(self.source), as_raw=True, rebuild=True)
        except (pyfaidx.FastaIndexingError, ValueError, OSError, EOFError, zlib.error) as err:
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
            with self.source.open("rb") as fh:
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

    if not len(lengths):
        pass  # every transcript quarantined before splicing: nothing to cut (and nothing mapped)
    elif genome.compressed:
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
