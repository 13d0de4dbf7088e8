"""The ``validate`` stage: annotation files -> one transcripts table + a quarantine report.

Every record that breaks a rule is written to the quarantine report with the
file, the record (transcript id or GTF line), the rule and a detail, so nothing
is lost silently. The run stops (:class:`ValidationError`) only when the output
would be wrong: too few usable transcripts, or so large a quarantined share that
the input is probably the wrong file.

Formats (``isoclr.config.Annotation.format``):

- ``gencode_fasta``: GENCODE transcript FASTA, header
  ``ENST|ENSG|OTTHUMG|OTTHUMT|tx name|gene name|length|biotype|`` with optional
  ``UTR5:a-b|CDS:a-b|UTR3:a-b|`` fields (1-based closed). Exons are unknown.
- ``gtf_transcript_fasta``: a GTF (exon, CDS, stop_codon features) plus the
  spliced transcript sequences, FASTA ids = transcript_id.
- ``gtf_genome_fasta``: a GTF plus the genome FASTA (plain or bgzip, indexed
  with ``.fai``/``.gzi``, built beside it when absent): exons are spliced from
  the genome (:mod:`isoclr.genome`), minus strand reverse-complemented.

Coordinates in the output are transcript coordinates, 0-based: CDS is
half-open ``[cds_start, cds_end)``, ``exon_ends`` holds the last nucleotide of
every exon in transcript order (minus strand: exon order reversed).
"""

from __future__ import annotations

import gc
import gzip
import json
import logging
import os
import re
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
import pandas as pd
import pandera.errors
import polars as pl
import pyarrow
import pyarrow.parquet

from isoclr.atomic import write_atomic, write_atomic_checked
from isoclr.config import Annotation, Config
from isoclr.genome import Exons, Genome, GenomeError, splice
from isoclr.metrics import stage as metered
from isoclr.schemas import QUARANTINE, TRANSCRIPTS, seq_lengths

log = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"
DNA_ALPHABET = "ACGTN"
CODON = 3
STOP_CODONS = ("TAA", "TAG", "TGA")  # standard code; a mitochondrial AGA/AGG stop is left as annotated
DROPPED = "dropped"
KEPT_WITHOUT_CDS = "kept_without_cds"
# How many rules an error message lists.
TOP_RULES = 5

# GTF: the nine columns, and the features the transcripts are built from.
GTF_SCHEMA = pl.Schema(
    {
        "seqname": pl.String,
        "source": pl.String,
        "feature": pl.String,
        "start": pl.Int64,
        "end": pl.Int64,
        "score": pl.String,
        "strand": pl.String,
        "frame": pl.String,
        "attributes": pl.String,
    }
)
# The columns read: source and score are never used, and skipping them saves ~0.4 s at GENCODE scale.
GTF_COLUMNS = ["seqname", "feature", "start", "end", "strand", "frame", "attributes"]
EXON, CDS, STOP_CODON = "exon", "CDS", "stop_codon"
# (record_no, end) packed into one ordered integer: record_no * RECORD_STRIDE + end + COORDINATE_SHIFT, for any
# coordinate in [-2^32, 2^32) (contigs are < 2^32 nt; a bad negative one stays inside its own transcript).
COORDINATE_SHIFT = 1 << 32
RECORD_STRIDE = 2 * COORDINATE_SHIFT
GTF_STRANDS = ("+", "-")
# GTF frame (phase) of the 5'-most CDS piece: bases before the first whole codon.
GTF_PHASES = ("0", "1", "2")
GTF_KEYS = ("transcript_id", "gene_id")  # read on every line: they place it and must agree
GTF_DESCRIPTIVE = ("gene_name", "transcript_type", "gene_type")  # read once per transcript
# GENCODE, Ensembl, RefSeq and StringTie lines start with both keys: `gene_id "G"; transcript_id "T"`. Split on
# the quotes, the pieces before each value must be exactly these: 0.8 s at GENCODE scale against 1.5 s for the
# equivalent anchored regex, itself ~2.5x faster than a search for each key anywhere (DESIGN §7).
GTF_LEADING_PIECES = ("gene_id ", "; transcript_id ")
# Fewest GTF rows worth a thread of their own when the keys are read (:func:`_on_every_core`).
ROWS_PER_THREAD = 100_000

# GENCODE header: fixed fields (0-based) and the optional region fields.
GENCODE_MIN_FIELDS = 7
# The id is field 0 (read by _fasta_ids); the biotype is the first later field that is no region.
GENCODE_GENE_ID, GENCODE_GENE_NAME, GENCODE_LENGTH = 1, 5, 6
GENCODE_REGION = re.compile(r"^(UTR5|CDS|UTR3):(\d+)-(\d+)$")

TRANSCRIPT_COLUMNS = list(TRANSCRIPTS.columns)
QUARANTINE_COLUMNS = list(QUARANTINE.columns)
PARQUET_SCHEMA = pyarrow.schema(
    [
        ("transcript_id", pyarrow.string()),
        ("gene_id", pyarrow.string()),
        ("gene_name", pyarrow.string()),
        ("annotation", pyarrow.string()),
        ("species", pyarrow.string()),
        ("assembly", pyarrow.string()),
        ("biotype", pyarrow.string()),
        ("seq", pyarrow.string()),
        ("length", pyarrow.int64()),
        ("cds_start", pyarrow.int64()),
        ("cds_end", pyarrow.int64()),
        ("exon_ends", pyarrow.list_(pyarrow.int64())),
    ]
)

# lz4 for every column: at GENCODE scale it writes in ~1.0 s against 1.4 s for zstd level 1 and reads back
# as fast, at ~1.7x zstd's size (~130 MB). Uncompressed sequences would write in ~0.5 s, but the file (a DVC
# output, cached with every version) would be ~0.5 GB. A dictionary is no use on sequences (all distinct)
# and costs a failed attempt per page. Row groups of 64k transcripts are read in parallel: encode reads
# the GENCODE-scale table ~2.5x faster than from one group.
PARQUET_WRITE = {
    "compression": "lz4",
    "use_dictionary": [name for name in PARQUET_SCHEMA.names if name != "seq"],
    "row_group_size": 1 << 16,
}


class ValidationError(Exception):
    """The input cannot give a correct transcripts table; the message says which file, why and what to do."""


@dataclass(frozen=True)
class ValidateResult:
    n_transcripts: int
    n_quarantined: int
    by_rule: dict[str, int]

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------
# Reading files
# ---------------------------------------------------------------------------


def _require(path: Path, ann: Annotation) -> Path:
    if not path.is_file():
        raise ValidationError(
            f"{path}: file not found (annotation {ann.name!r}); "
            "check data.dir and data.annotations in params.yaml, or run `dvc pull`"
        )
    return path


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(len(GZIP_MAGIC)) == GZIP_MAGIC


@contextmanager
def _open_text(path: Path) -> Iterator[TextIO]:
    """Plain or gzip text, told apart by the magic bytes (a .fa may be gzipped, a .gz may not)."""
    opener = gzip.open if _is_gzip(path) else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        yield fh


def _read_fasta(path: Path) -> pd.DataFrame:
    """All records of a FASTA file: columns record_no (1-based), header, raw (sequence as written)."""
    # Imported here: the GTF + genome path needs neither.
    from Bio.SeqIO.FastaIO import SimpleFastaParser
    from tqdm import tqdm

    headers, seqs = [], []
    try:
        with _open_text(path) as fh:
            # SimpleFastaParser skips text before the first '>' silently: a cut-off
            # first header (or a file that is not FASTA) must not lose records unseen.
            first = next((line for line in fh if line.strip()), ">")
            if not first.startswith(">"):
                raise ValidationError(
                    f"{path}: does not start with a '>' header line (first line {first[:60]!r}); "
                    "check the file is a complete FASTA file and the annotation's fasta/gtf entries are not swapped"
                )
            fh.seek(0)
            for header, seq in tqdm(SimpleFastaParser(fh), desc=f"read {path.name}", unit=" records", disable=None):
                headers.append(header)
                seqs.append(seq)
    except (OSError, EOFError, ValueError) as err:  # corrupt gzip, text before the first '>'
        raise ValidationError(f"{path}: cannot be read as FASTA ({err}); check the file is complete") from err
    return pd.DataFrame(
        {
            "record_no": range(1, len(headers) + 1),
            "header": pd.Series(headers, dtype=str),
            "raw": pd.Series(seqs, dtype=str),
        }
    )


def _attribute(name: str) -> pl.Expr:
    # Quoted or bare value; an empty value counts as missing. \b keeps gene_name
    # from matching StringTie's ref_gene_name.
    return pl.col("attributes").str.extract(rf'\b{name} "?([^";]+)"?', 1).alias(name)


def _leading_keys(rows: pl.DataFrame) -> pl.DataFrame:
    """``rows`` with gene_id and transcript_id read where the attributes start `gene_id "G"; transcript_id "T"`
    (the values the general regex of :func:`_attribute` reads there), else null."""
    pieces = rows.select(
        pl.col("attributes").str.split_exact('"', 2 * len(GTF_LEADING_PIECES) - 1).struct.unnest()
    )
    leads = (pieces["field_0"] == GTF_LEADING_PIECES[0]) & (pieces["field_2"] == GTF_LEADING_PIECES[1])

    def value(piece: pl.Series) -> pl.Series:
        usable = leads & (piece.str.len_bytes() > 0) & ~piece.str.contains(";", literal=True)
        return pl.select(pl.when(usable).then(piece)).to_series()

    return rows.with_columns(gene_id=value(pieces["field_1"]), transcript_id=value(pieces["field_3"]))


def _on_every_core(work: Callable[[pl.DataFrame], pl.DataFrame], rows: pl.DataFrame) -> pl.DataFrame:
    """``work`` on slices of ``rows``, a thread per core, joined in order. Polars runs one string expression over
    a column on a single core, and releases the GIL: reading the keys takes ~0.4 of ~0.7 s less at GENCODE scale
    on 2 cores."""
    parts = max(1, min(os.cpu_count() or 1, rows.height // ROWS_PER_THREAD))
    if parts == 1:
        return work(rows)
    size = -(-rows.height // parts)
    with ThreadPoolExecutor(parts) as pool:
        return pl.concat(pool.map(work, [rows.slice(i, size) for i in range(0, rows.height, size)]))


def _gtf_line_numbers(path: Path, rows: list[int]) -> dict[int, int]:
    """1-based file line of data rows (0-based, as polars numbers them after dropping '#' lines).

    Only needed when a line is quarantined, so the file is rescanned only then.
    """
    wanted, found, row = set(rows), {}, -1
    with _open_text(path) as fh:
        for line_no, line in enumerate(fh, start=1):
            if line.startswith("#"):
                continue
            row += 1
            if row in wanted:
                found[row] = line_no
                if len(found) == len(wanted):
                    break
    return found


def _read_gtf_table(path: Path) -> pl.DataFrame:
    """The GTF's lines as rows of GTF_COLUMNS; '#' comment lines may be among them (seqname starting with '#').

    Comment lines are read as rows and dropped by the caller: polars' ``comment_prefix`` costs ~0.6 s of a
    ~1.7 s read at GENCODE scale. Only a comment whose fields do not parse (text where start is) makes the
    file be read again with it.
    """
    options = {
        "separator": "\t",
        "has_header": False,
        "quote_char": None,
        "schema": GTF_SCHEMA,
        "columns": [GTF_SCHEMA.names().index(c) for c in GTF_COLUMNS],  # names need a header line
    }
    try:
        try:
            # A line with fewer fields (a comment, a truncated line) gets nulls, as with comment_prefix.
            return pl.read_csv(path, missing_columns="insert", **options)
        except pl.exceptions.ComputeError:
            return pl.read_csv(path, comment_prefix="#", **options)
    except (pl.exceptions.PolarsError, OSError) as err:
        raise ValidationError(
            f"{path}: cannot be read as GTF (9 tab-separated columns, integer start/end): {err}"
        ) from err


def _read_gtf_rows(path: Path) -> pl.DataFrame:
    """The exon/CDS/stop_codon rows of a GTF with their attributes extracted (DESIGN §7: polars + regex)."""
    rows = _read_gtf_table(path)
    comment = pl.col("seqname").str.starts_with("#").fill_null(False)
    # row: the line's number among non-comment lines (as _gtf_line_numbers counts them), from 0.
    rows = rows.select(((~comment).cum_sum() - 1).cast(pl.UInt32).alias("row"), pl.all()).filter(
        pl.col("feature").is_in([EXON, CDS, STOP_CODON]) & ~comment
    )
    rows = _on_every_core(_leading_keys, rows)
    # Lines that do not start with both keys (other attribute order, a key missing) take the general regex.
    if not any(rows[a].null_count() for a in GTF_KEYS):  # null counts are kept with the column: no scan
        return rows
    unplaced = pl.any_horizontal(pl.col(a).is_null() for a in GTF_KEYS)
    slow = rows.filter(unplaced)
    return pl.concat(
        [rows.filter(~unplaced), slow.with_columns(*(_attribute(a) for a in GTF_KEYS))], how="vertical"
    ).sort("row")


def _descriptive_attributes(rows: pl.DataFrame) -> pl.DataFrame:
    """record_no -> gene_name, transcript_type, gene_type: the first value on any of its lines.

    A regex over millions of lines costs ~2 s per attribute at GENCODE scale, so
    these are read from each transcript's first line, and only the lines of
    transcripts that lack one there (and mention it at all) are searched further.
    """
    first = rows.select("record_no", "attributes").filter(pl.col("record_no").is_first_distinct())
    found = first.select("record_no", *(_attribute(a) for a in GTF_DESCRIPTIVE))
    for name in GTF_DESCRIPTIVE:
        lacking = found.filter(pl.col(name).is_null()).select("record_no")
        if not lacking.height:
            continue
        later = (
            rows.join(lacking, on="record_no", how="semi")
            .filter(pl.col("attributes").str.contains(f"{name} ", literal=True))
            .select("record_no", _attribute(name))
            .group_by("record_no", maintain_order=True)
            .agg(pl.col(name).drop_nulls().first())
        )
        found = found.join(later, on="record_no", how="left", suffix="_later").with_columns(
            pl.coalesce(name, f"{name}_later").alias(name)
        ).drop(f"{name}_later")
    return found


# ---------------------------------------------------------------------------
# GTF -> one row per transcript
# ---------------------------------------------------------------------------


def _gtf_transcripts(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, bool, pl.DataFrame]:
    """Per-transcript exon structure and CDS from a GTF, plus quarantined lines.

    Returns (transcripts, line quarantine, whether the GTF has stop_codon
    features at all, exons). Transcript columns: record_no (order of first
    appearance), transcript_id, gene_id, gene_name, biotype, n_gene_ids,
    gene_id_missing_lines, strands, contigs, n_exons, exon_total,
    bad_coordinates, overlap, exon_ends (list, transcript order), cds_start,
    cds_end (0-based half-open, phase applied), cds_problem. Exons: one row per
    exon in transcript order (record_no, transcript_id, seqname, start, end, strand,
    tx_offset), for splicing from a genome.
    """
    rows = _read_gtf_rows(path)
    has_stop_features = bool((rows["feature"] == STOP_CODON).any())

    # Lines without a transcript_id cannot be placed: quarantine the line itself.
    orphan = rows.filter(pl.col("transcript_id").is_null())
    line_quarantine = _empty_quarantine()
    if orphan.height:
        numbers = _gtf_line_numbers(path, orphan["row"].to_list())
        line_quarantine = pd.DataFrame(
            {
                "file": str(path),
                "record": [f"line {numbers.get(r, r + 1)}" for r in orphan["row"].to_list()],
                "rule": "missing_attribute",
                "detail": [
                    f"{f} line without transcript_id: {(a or '')[:80]!r}"
                    for f, a in zip(orphan["feature"].to_list(), orphan["attributes"].to_list())
                ],
                "action": DROPPED,
            }
        )
    # record_no (1-based order of first appearance) keys the work below: integer keys sort and join faster than
    # the string transcript_id (a sort of all rows: 0.6 s against 1.0 s at GENCODE scale).
    if orphan.height:  # a filter copies every column: only when there is something to drop
        rows = rows.filter(pl.col("transcript_id").is_not_null())
    rows = rows.with_columns(record_no=pl.col("row").min().over("transcript_id").rank("dense"))

    meta = rows.group_by("record_no", maintain_order=True).agg(
        pl.col("transcript_id").first(),
        pl.col("gene_id").drop_nulls().first(),
        pl.col("gene_id").drop_nulls().n_unique().alias("n_gene_ids"),
        pl.col("row").filter(pl.col("gene_id").is_null()).alias("gene_id_missing_rows"),
        pl.col("strand").fill_null("?").first().alias("strand"),
        *_distinct_summary("strand", "strands"),
        *_distinct_summary("seqname", "contigs"),
    )
    meta = _join_distinct(meta, rows, "strand", "strands")
    meta = _join_distinct(meta, rows, "seqname", "contigs")
    meta = meta.join(_descriptive_attributes(rows), on="record_no", how="left", maintain_order="left").with_columns(
        biotype=pl.coalesce("transcript_type", "gene_type")
    ).drop("transcript_type", "gene_type")

    exons = (
        # Columns picked before rows: a filter copies every column it is given (the attributes are most bytes).
        rows.select("record_no", "transcript_id", "seqname", "start", "end", "feature")
        .filter(pl.col("feature") == EXON)
        .drop("feature")
        .join(meta.select("record_no", "strand"), on="record_no")
        # Transcript order: 5' to 3', so a minus-strand transcript starts at its last genomic exon.
        .with_columns(minus=pl.col("strand") == "-")
        .sort("record_no", pl.when("minus").then(-pl.col("start")).otherwise(pl.col("start")))
        .with_columns(length=pl.col("end") - pl.col("start") + 1)
    )
    # Sorted by record_no, a transcript's exons are neighbours: its previous exon is a plain shift and its running
    # sum restarts where record_no changes, with no grouping by window (~1 s less at GENCODE scale).
    same = (pl.col("record_no") == pl.col("record_no").shift(1)).fill_null(False)
    exons = (
        exons.with_columns(
            # Neighbours in genomic order overlap (a minus-strand transcript's are in reverse): checked in
            # transcript order, which saves a second sort.
            overlaps_previous=pl.when(same).then(
                pl.when("minus")
                .then(pl.col("start").shift(1) <= pl.col("end"))
                .otherwise(pl.col("start") <= pl.col("end").shift(1))
            ),
            running=pl.col("length").cum_sum(),
        )
        .with_columns(before=pl.when(same).then(None).otherwise(pl.col("running") - pl.col("length")).forward_fill())
        .with_columns(tx_end=pl.col("running") - pl.col("before") - 1)
        .with_columns(tx_offset=pl.col("tx_end") - pl.col("length") + 1)
        .drop("running", "before")
    )
    exon_summary = exons.group_by("record_no").agg(
        pl.len().alias("n_exons"),
        pl.col("length").sum().alias("exon_total"),
        (
            pl.col("start").is_null()
            | pl.col("end").is_null()
            | (pl.col("end") < pl.col("start"))
            | (pl.col("start") < 1)
        )
        .any()
        .alias("bad_coordinates"),
        pl.col("overlaps_previous").fill_null(False).any().alias("overlap"),
        pl.col("tx_end").alias("exon_ends"),
    )

    cds = _gtf_cds(rows, exons, meta)
    table = meta.join(exon_summary, on="record_no", how="left").join(cds, on="record_no", how="left")
    table = table.with_columns(
        pl.col("n_exons").fill_null(0),
        pl.col("exon_total").fill_null(0),
        pl.col("bad_coordinates").fill_null(False),
        pl.col("overlap").fill_null(False),
    )
    # List columns go to Python lists straight from polars: via pandas (one numpy array per row) is ~4x slower.
    exon_ends = table["exon_ends"].to_list()
    missing = table.filter(pl.col("gene_id_missing_rows").list.len() > 0).select("transcript_id", "gene_id_missing_rows")
    out = table.drop("exon_ends", "gene_id_missing_rows", "strand").to_pandas()
    out["exon_ends"] = exon_ends
    missing_rows = [r for rows_ in missing["gene_id_missing_rows"].to_list() for r in rows_]
    numbers = _gtf_line_numbers(path, missing_rows) if missing_rows else {}
    missing_lines = {
        t: [numbers.get(r, r + 1) for r in rows_] for t, rows_ in zip(missing["transcript_id"], missing["gene_id_missing_rows"].to_list())
    }
    # Nearly always none: then no per-transcript lookup (~0.7 s at GENCODE scale), and one shared empty tuple.
    out["gene_id_missing_lines"] = (
        [missing_lines.get(t, ()) for t in out["transcript_id"]] if missing_lines else [()] * len(out)
    )
    exons = exons.select("record_no", "transcript_id", "seqname", "start", "end", "strand", "tx_offset")
    return out, line_quarantine, has_stop_features, exons


def _values(column: str) -> pl.Expr:
    # A line without a strand reads as "?" (unknown_strand names it); contig names are taken as written.
    return pl.col(column).fill_null("?") if column == "strand" else pl.col(column)


def _distinct_summary(column: str, name: str) -> list[pl.Expr]:
    """Per-group aggregations from which ``_join_distinct`` spells the sorted distinct values."""
    values = _values(column)
    return [
        values.min().alias(f"{name}_lo"),
        values.max().alias(f"{name}_hi"),
        values.n_unique().alias(f"{name}_n"),
        values.null_count().alias(f"{name}_nulls"),
    ]


def _join_distinct(meta: pl.DataFrame, rows: pl.DataFrame, column: str, name: str) -> pl.DataFrame:
    """``name``: the transcript's distinct values of ``column``, sorted, joined by ",".

    Spelled from min and max (one or two values: nearly always), since sorting and
    joining every group's values costs ~0.7 s per column at GENCODE scale; groups
    with more values, or a null, are joined in full.
    """
    lo, hi, n, nulls = f"{name}_lo", f"{name}_hi", f"{name}_n", f"{name}_nulls"
    meta = meta.with_columns(
        pl.when(pl.col(n) == 1).then(pl.col(lo)).otherwise(pl.concat_str(lo, hi, separator=",")).alias(name)
    )
    many = meta.filter((pl.col(n) > 2) | (pl.col(nulls) > 0)).select("transcript_id")
    if many.height:
        full = (
            rows.join(many, on="transcript_id", how="semi")
            .group_by("transcript_id")
            .agg(_values(column).unique().sort().str.join(",").alias(name))
        )
        meta = meta.update(full, on="transcript_id", include_nulls=True)
    return meta.drop(lo, hi, n, nulls)


def _gtf_cds(rows: pl.DataFrame, exons: pl.DataFrame, meta: pl.DataFrame) -> pl.DataFrame:
    """CDS (+ stop codon) features mapped to transcript coordinates, strand-aware.

    Returns per transcript: cds_start, cds_end (0-based half-open; cds_start
    moved past a partial first codon by the GTF frame of the 5'-most CDS piece),
    cds_problem ("outside" when a piece is not inside one exon, "gap" when the
    pieces do not make one contiguous stretch of the transcript, else null).
    """
    pieces = (
        rows.select("record_no", "feature", "start", "end", "frame")
        .filter(pl.col("feature").is_in([CDS, STOP_CODON]))
        .sort("record_no", "start")
    )
    # Overlapping or abutting pieces (a CDS that already holds its stop codon, a
    # stop codon right after the CDS) are merged before mapping. Sorted by record_no, a transcript's running
    # maximum of ends is a running maximum of (record_no, end) packed in one integer, so it needs no grouping by
    # window; blocks are numbered across all transcripts (the grouping below is the same).
    same = (pl.col("record_no") == pl.col("record_no").shift(1)).fill_null(False)
    record_base = pl.col("record_no").cast(pl.Int64) * RECORD_STRIDE + COORDINATE_SHIFT
    merged = (
        pieces.with_columns(
            prev_end=pl.when(same).then((record_base + pl.col("end")).cum_max().shift(1) - record_base)
        )
        .with_columns(block=(pl.col("prev_end").is_null() | (pl.col("start") > pl.col("prev_end") + 1)).cast(pl.Int64))
        .with_columns(block=pl.col("block").cum_sum())
        .group_by("record_no", "block")
        .agg(pl.col("start").min(), pl.col("end").max())
        .sort("start")
    )
    exon_keys = exons.select(
        "record_no", "strand", pl.col("start").alias("exon_start"), pl.col("end").alias("exon_end"), "tx_offset"
    ).sort("exon_start")
    mapped = merged.join_asof(
        exon_keys,
        left_on="start",
        right_on="exon_start",
        by="record_no",
        strategy="backward",
        check_sortedness=False,  # both sides are sorted on the whole column above
    ).with_columns(
        inside=pl.col("exon_start").is_not_null() & (pl.col("end") <= pl.col("exon_end")),
        minus=pl.col("strand") == "-",
    )
    mapped = mapped.with_columns(
        tx_first=pl.col("tx_offset")
        + pl.when(pl.col("minus"))
        .then(pl.col("exon_end") - pl.col("end"))
        .otherwise(pl.col("start") - pl.col("exon_start")),
        tx_last=pl.col("tx_offset")
        + pl.when(pl.col("minus"))
        .then(pl.col("exon_end") - pl.col("start"))
        .otherwise(pl.col("end") - pl.col("exon_start")),
    )
    spans = mapped.group_by("record_no").agg(
        pl.col("inside").all(),
        pl.col("tx_first").min().alias("cds_start"),
        (pl.col("tx_last").max() + 1).alias("cds_end"),
        (pl.col("end") - pl.col("start") + 1).sum().alias("covered"),
    )
    # Frame of the 5'-most CDS piece (plus: lowest start; minus: highest end).
    phase = (
        pieces.filter(pl.col("feature") == CDS)
        .join(meta.select("record_no", "strand"), on="record_no")
        .group_by("record_no")
        .agg(
            pl.col("frame")
            .sort_by(pl.when(pl.col("strand") == "-").then(-pl.col("end")).otherwise(pl.col("start")))
            .first()
            .alias("frame")
        )
        .with_columns(
            phase=pl.when(pl.col("frame").is_in(GTF_PHASES)).then(pl.col("frame").cast(pl.Int64)).otherwise(0)
        )
    )
    return (
        spans.join(phase.select("record_no", "phase"), on="record_no", how="left")
        .with_columns(
            cds_problem=pl.when(~pl.col("inside"))
            .then(pl.lit("outside"))
            .when(pl.col("covered") != pl.col("cds_end") - pl.col("cds_start"))
            .then(pl.lit("gap")),
            cds_start=pl.col("cds_start") + pl.col("phase").fill_null(0),
        )
        .select("record_no", "cds_start", "cds_end", "cds_problem")
    )


# ---------------------------------------------------------------------------
# Rules
# ---------------------------------------------------------------------------


def _empty_quarantine() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=str) for c in QUARANTINE_COLUMNS})


class _Triage:
    """Apply rules in order; a record leaves at the first rule that drops it.

    ``alive`` holds the records still in; ``quarantined`` the report rows. Each
    rule's mask and detail see only the records still alive, so a later rule
    can rely on the earlier ones (e.g. lengths only after the header parsed).
    """

    def __init__(self, table: pd.DataFrame):
        self.alive = table
        self.quarantined: list[pd.DataFrame] = []

    def _report(self, hit: pd.DataFrame, file: str, rule: str, detail: Callable[[pd.DataFrame], object], action: str):
        self.quarantined.append(
            pd.DataFrame({"file": file, "record": hit["record"], "rule": rule, "detail": detail(hit), "action": action})
        )

    def drop(
        self, rule: str, file: str, mask: Callable[[pd.DataFrame], pd.Series], detail: Callable[[pd.DataFrame], object]
    ):
        if self.alive.empty:
            return
        hit_mask = mask(self.alive).fillna(False).astype(bool)
        if hit_mask.any():
            self._report(self.alive[hit_mask], file, rule, detail, DROPPED)
            self.alive = self.alive[~hit_mask]

    def strip_cds(
        self, rule: str, file: str, mask: Callable[[pd.DataFrame], pd.Series], detail: Callable[[pd.DataFrame], object]
    ):
        """Keep the record but forget its CDS (the CDS track stays empty)."""
        if self.alive.empty:
            return
        hit_mask = mask(self.alive).fillna(False).astype(bool)
        if hit_mask.any():
            self._report(self.alive[hit_mask], file, rule, detail, KEPT_WITHOUT_CDS)
            self.alive = self.alive.copy()
            self.alive.loc[hit_mask, ["cds_start", "cds_end"]] = pd.NA

    def quarantine(self) -> pd.DataFrame:
        frames = [f for f in self.quarantined if len(f)]
        return pd.concat(frames, ignore_index=True) if frames else _empty_quarantine()


def _normalise(raw: pd.Series) -> pd.Series:
    # Lowercase (soft-masked) bases are ordinary bases; RNA U is read as T.
    return raw.str.upper().str.replace("U", "T", regex=False)


def _bad_characters(seq: str) -> str:
    return "".join(sorted(set(re.sub(f"[{DNA_ALPHABET}]", "", seq))))


def _sequence_rules(triage: _Triage, fasta: str) -> None:
    """Rules on the FASTA sequence itself (both formats)."""
    triage.drop("empty_sequence", fasta, lambda d: d["seq"].str.len() == 0, lambda d: "record has no sequence")
    triage.drop(
        "invalid_characters",
        fasta,
        lambda d: d["seq"].str.contains(f"[^{DNA_ALPHABET}]", regex=True),
        lambda d: [f"characters outside {DNA_ALPHABET}/U: {_bad_characters(s)!r}" for s in d["seq"]],
    )


def _too_long_rule(triage: _Triage, fasta: str, max_length: int) -> None:
    triage.drop(
        "too_long",
        fasta,
        lambda d: d["seq"].str.len() > max_length,
        lambda d: [f"length {n} > validate.max_length {max_length}" for n in d["seq"].str.len()],
    )


def _cds_frame_rule(triage: _Triage, file: str) -> None:
    triage.strip_cds(
        "cds_not_multiple_of_3",
        file,
        lambda d: d["cds_start"].notna() & ((d["cds_end"] - d["cds_start"]) % CODON != 0),
        lambda d: [
            f"CDS [{s}, {e}) is {e - s} nt, not a multiple of {CODON}" for s, e in zip(d["cds_start"], d["cds_end"])
        ],
    )


def _dedupe_fasta(records: pd.DataFrame, fasta: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep the first record of an id; later ones are quarantined (duplicate_id)."""
    dup = records["transcript_id"].duplicated(keep="first")
    first = records.drop_duplicates("transcript_id").set_index("transcript_id")["record_no"]
    later = records[dup]
    quarantine = pd.DataFrame(
        {
            "file": fasta,
            "record": later["record"],
            "rule": "duplicate_id",
            "detail": [
                f"record {n} repeats the id of record {first[t]}; the first is kept"
                for t, n in zip(later["transcript_id"], later["record_no"])
            ],
            "action": DROPPED,
        }
    )
    return records[~dup], quarantine


def _fasta_ids(records: pd.DataFrame, split_bar: bool) -> pd.DataFrame:
    ids = records["header"].str.split(n=1).str[0].fillna("")
    if split_bar:
        ids = ids.str.split("|").str[0]
    records = records.assign(transcript_id=ids, seq=_normalise(records["raw"])).drop(columns="raw")
    # The report names a record by its id, or by its position when the header has none.
    records["record"] = [t if t else f"record {n}" for t, n in zip(records["transcript_id"], records["record_no"])]
    return records


# ---------------------------------------------------------------------------
# The two formats
# ---------------------------------------------------------------------------


def _parse_gencode_header(header: str) -> dict:
    """Fields of a GENCODE transcript FASTA header; ``malformed`` says why it cannot be used."""
    fields = header.split("|")
    if len(fields) < GENCODE_MIN_FIELDS or not fields[GENCODE_LENGTH].strip().isdigit() or not fields[GENCODE_GENE_ID]:
        return {"malformed": f"expected ENST|ENSG|...|length|... with >= {GENCODE_MIN_FIELDS} fields: {header[:120]!r}"}
    parsed = {
        "malformed": None,
        "gene_id": fields[GENCODE_GENE_ID],
        "gene_name": fields[GENCODE_GENE_NAME] or None,
        "header_length": int(fields[GENCODE_LENGTH]),
        "biotype": None,
        "cds_start": pd.NA,
        "cds_end": pd.NA,
    }
    for field in fields[GENCODE_LENGTH + 1 :]:
        region = GENCODE_REGION.match(field)
        if region and region.group(1) == "CDS":
            # 1-based closed -> 0-based half-open
            parsed["cds_start"], parsed["cds_end"] = int(region.group(2)) - 1, int(region.group(3))
        elif not region and field and parsed["biotype"] is None:
            parsed["biotype"] = field
    return parsed


def _read_gencode(ann: Annotation, data_root: Path, max_length: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    path = _require(data_root / ann.fasta, ann)
    fasta = str(path)
    records = _fasta_ids(_read_fasta(path), split_bar=True)
    records, duplicates = _dedupe_fasta(records, fasta)
    parsed = pd.DataFrame([_parse_gencode_header(h) for h in records["header"]], index=records.index)
    table = pd.concat(
        [
            records,
            parsed.reindex(
                columns=["malformed", "gene_id", "gene_name", "header_length", "biotype", "cds_start", "cds_end"]
            ),
        ],
        axis=1,
    )

    triage = _Triage(table)
    triage.drop("malformed_header", fasta, lambda d: d["malformed"].notna(), lambda d: d["malformed"])
    _sequence_rules(triage, fasta)
    triage.drop(
        "truncated_record",
        fasta,
        lambda d: d["header_length"] != d["seq"].str.len(),
        lambda d: [f"header says {h} nt, record has {n} nt" for h, n in zip(d["header_length"], d["seq"].str.len())],
    )
    _too_long_rule(triage, fasta, max_length)
    triage.strip_cds(
        "cds_outside_exons",
        fasta,
        lambda d: (
            d["cds_start"].notna()
            & ((d["cds_start"] < 0) | (d["cds_end"] <= d["cds_start"]) | (d["cds_end"] > d["seq"].str.len()))
        ),
        lambda d: [
            f"header CDS [{s}, {e}) is not inside the {n}-nt transcript"
            for s, e, n in zip(d["cds_start"], d["cds_end"], d["seq"].str.len())
        ],
    )
    _cds_frame_rule(triage, fasta)

    kept = triage.alive.assign(exon_ends=None)
    return _finish(kept, ann), pd.concat([duplicates, triage.quarantine()], ignore_index=True)


def _read_gtf_fasta(ann: Annotation, data_root: Path, max_length: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    fasta_path = _require(data_root / ann.fasta, ann)
    gtf_path = _require(data_root / ann.gtf, ann)
    fasta, gtf = str(fasta_path), str(gtf_path)
    records = _fasta_ids(_read_fasta(fasta_path), split_bar=True)
    records, duplicates = _dedupe_fasta(records, fasta)
    structure, line_quarantine, has_stop_features, _ = _gtf_transcripts(gtf_path)

    table = records.merge(structure.drop(columns="record_no"), on="transcript_id", how="outer", indicator="source")
    table["record"] = table["record"].fillna(table["transcript_id"])
    table["cds_start"] = table["cds_start"].astype("Int64")
    table["cds_end"] = table["cds_end"].astype("Int64")

    triage = _Triage(table)
    triage.drop(
        "missing_annotation",
        fasta,
        lambda d: d["source"] == "left_only",
        lambda d: f"no transcript with this id in {gtf}",
    )
    triage.drop(
        "missing_sequence",
        gtf,
        lambda d: d["source"] == "right_only",
        lambda d: f"no FASTA record with this id in {fasta}",
    )
    _sequence_rules(triage, fasta)
    _structure_rules(triage, gtf)
    triage.drop(
        "length_mismatch",
        gtf,
        lambda d: d["exon_total"] != d["seq"].str.len(),
        lambda d: [
            f"exons sum to {x} nt ({k} exons), FASTA record has {n} nt"
            for x, k, n in zip(d["exon_total"], d["n_exons"], d["seq"].str.len())
        ],
    )
    _too_long_rule(triage, fasta, max_length)
    _gtf_cds_rules(triage, gtf)

    kept = triage.alive
    if not has_stop_features:
        kept = _add_stop_codon(kept, gtf)
    quarantine = pd.concat([duplicates, line_quarantine, triage.quarantine()], ignore_index=True)
    return _finish(kept, ann), quarantine


def _structure_rules(triage: _Triage, gtf: str) -> None:
    """Rules on a transcript's GTF lines alone (both GTF formats)."""
    triage.drop(
        "missing_attribute",
        gtf,
        # A non-empty list or tuple (bool of each: .str.len() costs ~0.15 s at GENCODE scale).
        lambda d: d["gene_id_missing_lines"].notna() & d["gene_id_missing_lines"].astype(bool),
        lambda d: [
            f"gene_id missing on GTF line(s) {', '.join(map(str, lines[:5]))}" for lines in d["gene_id_missing_lines"]
        ],
    )
    triage.drop(
        "duplicate_id",
        gtf,
        lambda d: d["n_gene_ids"] > 1,
        lambda d: [f"transcript_id used by {n} different gene_id values in the GTF" for n in d["n_gene_ids"]],
    )
    triage.drop(
        "unknown_strand",
        gtf,
        lambda d: ~d["strands"].isin(GTF_STRANDS),
        lambda d: [f"strand {s!r}; need one of {'/'.join(GTF_STRANDS)} for all lines" for s in d["strands"]],
    )
    triage.drop(
        "invalid_coordinates",
        gtf,
        lambda d: d["bad_coordinates"],
        lambda d: "an exon has no start/end, end < start or start < 1",
    )
    triage.drop("overlapping_exons", gtf, lambda d: d["overlap"], lambda d: "two exons of the transcript overlap")


def _gtf_cds_rules(triage: _Triage, gtf: str) -> None:
    triage.strip_cds(
        "cds_outside_exons",
        gtf,
        lambda d: d["cds_problem"] == "outside",
        lambda d: "a CDS/stop_codon feature is not inside one exon of the transcript",
    )
    triage.strip_cds(
        "cds_not_contiguous",
        gtf,
        lambda d: d["cds_problem"] == "gap",
        lambda d: "CDS features skip exonic bases between CDS start and end",
    )
    _cds_frame_rule(triage, gtf)


def _contig_problems(exons: pl.DataFrame, lengths: dict[str, int]) -> pl.DataFrame:
    """Per transcript with a problem (others absent): the first exon on a contig the genome lacks, and the
    first past its contig's end."""
    contigs = pl.DataFrame(
        {"seqname": list(lengths), "contig_length": list(lengths.values())},
        schema={"seqname": pl.String, "contig_length": pl.Int64},
    )
    located = exons.select("transcript_id", "seqname", "start", "end").join(contigs, on="seqname", how="left")
    # Only the few offending exons are spelled out: formatting a message for every exon costs ~0.6 s at GENCODE scale.
    offending = located.filter(pl.col("contig_length").is_null() | (pl.col("end") > pl.col("contig_length")))
    problems = offending.group_by("transcript_id").agg(
        pl.col("seqname").filter(pl.col("contig_length").is_null()).first().alias("absent_contig"),
        pl.format("exon {}:{}-{} ends past the contig end ({} nt)", "seqname", "start", "end", "contig_length")
        .filter(pl.col("end") > pl.col("contig_length"))
        .first()
        .alias("outside"),
    )
    return problems


def _read_gtf_genome(ann: Annotation, data_root: Path, max_length: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """GTF + indexed genome FASTA: exons spliced in transcript order, minus strand reverse-complemented."""
    gtf_path = _require(data_root / ann.gtf, ann)
    genome_path = _require(data_root / ann.genome, ann)
    gtf, genome_file = str(gtf_path), str(genome_path)
    try:
        genome = Genome(genome_path)
    except GenomeError as err:
        raise ValidationError(str(err)) from err
    structure, line_quarantine, has_stop_features, exons = _gtf_transcripts(gtf_path)
    problems = _contig_problems(exons, genome.lengths).to_pandas()
    table = structure.merge(problems, on="transcript_id", how="left").assign(record=lambda d: d["transcript_id"])
    table["cds_start"] = table["cds_start"].astype("Int64")
    table["cds_end"] = table["cds_end"].astype("Int64")

    triage = _Triage(table)
    triage.drop("empty_sequence", gtf, lambda d: d["n_exons"] == 0, lambda d: "no exon lines for this transcript")
    triage.drop(
        "mixed_contigs",
        gtf,
        lambda d: d["contigs"].str.contains(",", regex=False),
        lambda d: [f"lines on several contigs: {c}" for c in d["contigs"]],
    )
    _structure_rules(triage, gtf)
    triage.drop(
        "missing_sequence",
        gtf,
        lambda d: d["absent_contig"].notna(),
        lambda d: [f"contig {c!r} is not in {genome_file}" for c in d["absent_contig"]],
    )
    triage.drop("exon_outside_contig", gtf, lambda d: d["outside"].notna(), lambda d: list(d["outside"]))
    triage.drop(
        "too_long",
        gtf,
        lambda d: d["exon_total"] > max_length,
        lambda d: [f"length {n} > validate.max_length {max_length}" for n in d["exon_total"]],
    )

    alive = triage.alive
    try:
        seq, invalid = _spliced(genome, exons, alive)
    except GenomeError as err:
        raise ValidationError(str(err)) from err
    finally:
        genome.close()
    triage.alive = alive.assign(seq=seq, invalid=invalid)
    triage.drop(
        "invalid_characters",
        genome_file,
        lambda d: d["invalid"],
        lambda d: [f"characters outside {DNA_ALPHABET}/U: {_bad_characters(s)!r}" for s in d["seq"]],
    )
    _gtf_cds_rules(triage, gtf)

    kept = triage.alive
    if not has_stop_features:
        kept = _add_stop_codon(kept, gtf)
    quarantine = pd.concat([line_quarantine, triage.quarantine()], ignore_index=True)
    return _finish(kept, ann), quarantine


def _spliced(genome: Genome, exons: pl.DataFrame, alive: pd.DataFrame) -> tuple[pd.Series, np.ndarray]:
    """The mature sequence of every transcript in ``alive`` (index kept, Arrow-backed strings), and
    whether each holds a character outside the DNA alphabet."""
    record_no = alive["record_no"].to_numpy()
    if np.all(record_no[1:] > record_no[:-1]):
        # Transcripts in record order (as the GTF reader gives them) and exons already sorted by record, then
        # transcript order: a filter keeps that order, so no join and sort (~0.3 s at GENCODE scale).
        picked = exons.filter(pl.col("record_no").is_in(record_no))
        transcript = np.searchsorted(record_no, picked["record_no"].to_numpy())
    else:
        position = pl.DataFrame({"record_no": record_no}).with_row_index("transcript")
        picked = exons.join(position, on="record_no", how="inner").sort("transcript", "tx_offset")
        transcript = picked["transcript"].to_numpy()
    contigs = picked["seqname"].unique().sort().to_list()
    spec = Exons(
        transcript=transcript.astype(np.int64),
        contig=picked["seqname"].cast(pl.Enum(contigs)).to_physical().to_numpy(),
        contigs=contigs,
        start=picked["start"].to_numpy(),
        end=picked["end"].to_numpy(),
        minus=(picked["strand"] == "-").to_numpy(),
    )
    strings, invalid = splice(genome, spec, len(alive))
    return pd.Series(strings.to_pandas().array, index=alive.index, name="seq"), invalid


def _add_stop_codon(kept: pd.DataFrame, gtf: str) -> pd.DataFrame:
    """Include the stop codon in the CDS when the GTF leaves it out.

    GTF2.2 CDS features exclude the stop codon and give it as a stop_codon
    feature; a GTF without any stop_codon features (e.g. Cufflinks /
    IsoformSwitchAnalyzeR ORFs) therefore ends the CDS one codon early. GENCODE
    headers and GTFs with stop_codon features include it, so the CDS is extended
    here by one codon exactly when the CDS's own last codon is not a stop and the
    next codon in the sequence is. An ORF with no stop (3'-incomplete) is left as is.
    """
    has_cds = kept["cds_start"].notna()
    if not has_cds.any():
        return kept
    ends = kept.loc[has_cds, "cds_end"].astype(int)
    seqs = kept.loc[has_cds, "seq"]
    extend = pd.Series(
        [s[e - CODON : e] not in STOP_CODONS and s[e : e + CODON] in STOP_CODONS for s, e in zip(seqs, ends)],
        index=ends.index,
    )
    kept = kept.copy()
    kept.loc[extend[extend].index, "cds_end"] = ends[extend] + CODON
    log.info("%s: no stop_codon features; stop codon added to %d of %d CDS", gtf, int(extend.sum()), len(ends))
    return kept


def _finish(kept: pd.DataFrame, ann: Annotation) -> pd.DataFrame:
    """The surviving records as TRANSCRIPTS columns, in file order."""
    if "record_no" in kept:
        kept = kept.sort_values("record_no")
    out = kept.assign(
        annotation=ann.name,
        species=ann.species,
        assembly=ann.assembly,
        length=seq_lengths(kept["seq"]).astype("int64"),
        cds_start=kept["cds_start"].astype("Int64"),
        cds_end=kept["cds_end"].astype("Int64"),
        gene_name=kept["gene_name"].astype(object).where(kept["gene_name"].notna(), None),
        biotype=kept["biotype"].astype(object).where(kept["biotype"].notna(), None),
    )
    return out[TRANSCRIPT_COLUMNS].reset_index(drop=True)


_READERS = {
    "gencode_fasta": _read_gencode,
    "gtf_transcript_fasta": _read_gtf_fasta,
    "gtf_genome_fasta": _read_gtf_genome,
}


def read_annotation(ann: Annotation, data_root: Path, max_length: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One annotation set -> (transcripts with TRANSCRIPTS columns, quarantine with QUARANTINE columns).

    Files are ``data_root / ann.fasta`` (and ``ann.gtf``). Raises ValidationError
    only for a file that is missing or unreadable as a whole.
    """
    transcripts, quarantine = _READERS[ann.format](ann, Path(data_root), max_length)
    return transcripts, quarantine[QUARANTINE_COLUMNS].astype(str).reset_index(drop=True)


# ---------------------------------------------------------------------------
# The stage
# ---------------------------------------------------------------------------


def _top_rules(quarantine: pd.DataFrame) -> str:
    counts = Counter(quarantine["rule"])
    return ", ".join(f"{rule} ({n})" for rule, n in counts.most_common(TOP_RULES)) or "none"


def _files(ann: Annotation, data_root: Path) -> list[str]:
    return [str(data_root / f) for f in ann.files()]


@contextmanager
def _schema_failures(schema, what: str) -> Iterator[None]:
    """pandera's SchemaErrors inside as a ValidationError naming ``what`` and the first failures."""
    try:
        yield
    except pandera.errors.SchemaErrors as err:
        cases = err.failure_cases[["column", "check", "failure_case"]].head(10).to_string(index=False)
        raise ValidationError(
            f"{what} fails schema {schema.name!r} ({len(err.failure_cases)} failures):\n{cases}"
        ) from err


def _check_schema(schema, table: pd.DataFrame, what: str) -> pd.DataFrame:
    with _schema_failures(schema, what):
        return schema.validate(table, lazy=True)


@metered("validate")
def validate(
    cfg: Config, data_root: Path, transcripts_out: Path, quarantine_out: Path, summary_out: Path | None = None
) -> ValidateResult:
    """Read every annotation set, quarantine bad records, write the transcripts table.

    Writes ``quarantine_out`` (TSV, always, header even if empty) and
    ``summary_out`` (JSON) before deciding; ``transcripts_out`` (parquet) only
    when the run passes, and a stale one is removed when it does not.
    """
    with _gc_paused():
        return _validate(cfg, data_root, transcripts_out, quarantine_out, summary_out)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while the tables are built: the passes it makes over the millions of
    objects a GENCODE-scale run holds (exon lists, strings) cost ~0.4 s, and these tables make no cycles."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _validate(
    cfg: Config, data_root: Path, transcripts_out: Path, quarantine_out: Path, summary_out: Path | None
) -> ValidateResult:
    data_root, transcripts_out, quarantine_out = Path(data_root), Path(transcripts_out), Path(quarantine_out)
    limits = cfg.validate_
    tables, quarantines, per_annotation = [], [], {}
    for ann in cfg.data.annotations:
        transcripts, quarantine = read_annotation(ann, data_root, limits.max_length)
        tables.append(transcripts)
        quarantines.append((ann, quarantine))

    # Ids must be unique across sets too: the first set keeps the id.
    combined = pd.concat(tables, ignore_index=True)
    dup = combined["transcript_id"].duplicated(keep="first")
    first_set = combined.drop_duplicates("transcript_id").set_index("transcript_id")["annotation"]
    anns = {a.name: a for a in cfg.data.annotations}
    for ann, quarantine in quarantines:
        later = combined[dup & (combined["annotation"] == ann.name)]
        cross = pd.DataFrame(
            {
                "file": str(data_root / (ann.fasta or ann.gtf)),
                "record": later["transcript_id"],
                "rule": "duplicate_id",
                "detail": [
                    f"id already read from annotation {first_set[t]!r}; the first is kept"
                    for t in later["transcript_id"]
                ],
                "action": DROPPED,
            }
        )
        quarantine = pd.concat([quarantine, cross], ignore_index=True) if len(cross) else quarantine
        n_kept = int(((combined["annotation"] == ann.name) & ~dup).sum())
        n_dropped = int((quarantine["action"] == DROPPED).sum())
        per_annotation[ann.name] = {
            "files": _files(ann, data_root),
            "n_transcripts": n_kept,
            "n_dropped": n_dropped,
            "n_kept_without_cds": int((quarantine["action"] == KEPT_WITHOUT_CDS).sum()),
            "by_rule": dict(Counter(quarantine["rule"]).most_common()),
            "_quarantine": quarantine,
        }
    combined = combined[~dup].reset_index(drop=True)
    all_quarantine = pd.concat([p.pop("_quarantine") for p in per_annotation.values()], ignore_index=True)
    all_quarantine = _check_schema(QUARANTINE, all_quarantine.astype(str), "quarantine report")

    by_rule = dict(Counter(all_quarantine["rule"]).most_common())
    result = ValidateResult(n_transcripts=len(combined), n_quarantined=len(all_quarantine), by_rule=by_rule)
    write_atomic(quarantine_out, lambda p: all_quarantine.to_csv(p, sep="\t", index=False))
    if summary_out is not None:
        summary = {
            **result.to_dict(),
            "by_action": dict(Counter(all_quarantine["action"]).most_common()),
            "max_length": limits.max_length,
            "by_annotation": per_annotation,
        }
        write_atomic(Path(summary_out), lambda p: p.write_text(json.dumps(summary, indent=2) + "\n"))

    try:
        _check_limits(result, per_annotation, anns, all_quarantine, cfg, quarantine_out)
        # The table is written while the schema checks it (~0.5 s each at GENCODE scale), and only a checked one
        # is moved into place. Coerced to the schema's dtypes first, the frame written is the frame checked
        # (the pandas dtypes recorded in the file included).
        with _schema_failures(TRANSCRIPTS, "transcripts table"):
            combined = TRANSCRIPTS.coerce_dtype(combined)
        table = pyarrow.Table.from_pandas(combined, schema=PARQUET_SCHEMA, preserve_index=False)
        write_atomic_checked(
            transcripts_out,
            lambda p: pyarrow.parquet.write_table(table, p, **PARQUET_WRITE),
            lambda: _check_schema(TRANSCRIPTS, combined, "transcripts table"),
        )
    except ValidationError:
        transcripts_out.unlink(missing_ok=True)
        raise
    return result


def _check_limits(result, per_annotation, anns, quarantine, cfg: Config, quarantine_out: Path) -> None:
    limits = cfg.validate_
    if result.n_transcripts < limits.min_transcripts:
        files = [f for p in per_annotation.values() for f in p["files"]]
        raise ValidationError(
            f"validate: only {result.n_transcripts} usable transcripts from {', '.join(files)} "
            f"(validate.min_transcripts = {limits.min_transcripts}); {result.n_quarantined} quarantined, "
            f"top rules: {_top_rules(quarantine)}. See {quarantine_out}; fix the input files or the "
            "annotation formats in params.yaml."
        )
    for name, stats in per_annotation.items():
        total = stats["n_transcripts"] + stats["n_dropped"]
        share = stats["n_dropped"] / total if total else 0.0
        if share > limits.max_quarantine_fraction:
            mine = quarantine[quarantine["file"].isin(stats["files"]) & (quarantine["action"] == DROPPED)]
            raise ValidationError(
                f"validate: annotation {name!r} ({', '.join(stats['files'])}): {stats['n_dropped']} of {total} "
                f"records ({share:.1%}) quarantined and dropped, above validate.max_quarantine_fraction = "
                f"{limits.max_quarantine_fraction}; top rules: {_top_rules(mine)}. See {quarantine_out}: the input "
                f"is probably the wrong file or format (format: {anns[name].format}); raise the limit in params.yaml "
                "only if these losses are expected."
            )
