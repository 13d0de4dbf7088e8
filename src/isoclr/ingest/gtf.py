"""GTF lines -> one row per transcript: its keys and attributes, its exons in transcript order, its CDS.

The exon, CDS and stop_codon features are read with polars; a line is placed by its
``transcript_id`` and ``gene_id`` attributes (a line without a transcript_id is quarantined by its
line number). Exons are ordered 5' to 3' (minus strand: genomic order reversed) and
``exon_ends`` holds the 0-based transcript position of every exon's last nucleotide; the CDS is
mapped into the same coordinates by :mod:`isoclr.ingest.cds`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import polars as pl

from isoclr.ingest.cds import CDS, STOP_CODON, gtf_cds
from isoclr.ingest.files import ValidationError, open_text
from isoclr.ingest.rules import DROPPED, empty_quarantine

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
EXON = "exon"
GTF_KEYS = ("transcript_id", "gene_id")  # read on every line: they place it and must agree
# Read once per transcript: each column from the first of its attributes a transcript has. GENCODE writes *_type,
# Ensembl (and Ensembl Genomes: yeast, plants) *_biotype; RefSeq has no gene_name but the symbol in `gene` (and as
# gene_id); StringTie writes none of them.
GTF_DESCRIPTIVE = {
    "gene_name": ("gene_name", "gene"),
    "transcript_type": ("transcript_type", "transcript_biotype"),
    "gene_type": ("gene_type", "gene_biotype"),
}
# GENCODE, Ensembl, RefSeq and StringTie lines start with both keys: `gene_id "G"; transcript_id "T"`. Split on
# the quotes, the pieces before each value must be exactly these: 0.8 s at GENCODE scale against 1.5 s for the
# equivalent anchored regex, itself ~2.5x faster than a search for each key anywhere.
GTF_LEADING_PIECES = ("gene_id ", "; transcript_id ")
# Fewest GTF rows worth a thread of their own when the keys are read (:func:`_on_every_core`).
ROWS_PER_THREAD = 100_000


def _attribute(name: str) -> pl.Expr:
    # Quoted or bare value; an empty value counts as missing. The name must start the attributes or follow a ';':
    # gene_name must not match StringTie's ref_gene_name, nor `gene` a free text such as `product "gene family"`.
    return pl.col("attributes").str.extract(rf'(?:^|;)\s*{name}\s+"?([^";]+)"?', 1).alias(name)


def _leading_keys(rows: pl.DataFrame) -> pl.DataFrame:
    """``rows`` with gene_id and transcript_id read where the attributes start `gene_id "G"; transcript_id "T"`
    (the values the general regex of :func:`_attribute` reads there), else null."""
    pieces = rows.select(pl.col("attributes").str.split_exact('"', 2 * len(GTF_LEADING_PIECES) - 1).struct.unnest())
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
    with open_text(path) as fh:
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
    """The exon/CDS/stop_codon rows of a GTF with their attributes extracted (polars + regex)."""
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
    """record_no -> gene_name, transcript_type, gene_type: on its first line, the value of the first attribute of
    :data:`GTF_DESCRIPTIVE` it has; else the first value on a later line, attribute by attribute.

    A regex over millions of lines costs ~2 s per attribute at GENCODE scale, so
    these are read from each transcript's first line (every attribute that gives the column), and only the
    lines of transcripts that lack one there (and mention it at all) are searched further, one attribute
    after the other.
    """
    first = rows.select("record_no", "attributes").filter(pl.col("record_no").is_first_distinct())
    found = first.select("record_no")
    for column, names in GTF_DESCRIPTIVE.items():
        # First lines, every attribute that gives the column, before any later line: an Ensembl GTF has
        # transcript_biotype on every first line, and then no line is searched for transcript_type.
        values = first.select(*(_attribute(name).alias(str(k)) for k, name in enumerate(names)))
        found = found.with_columns(pl.coalesce(values.get_columns()).alias(column))
        for name in names:
            lacking = found.filter(pl.col(column).is_null()).select("record_no")
            if not lacking.height:
                break
            later = (
                rows.join(lacking, on="record_no", how="semi")
                .filter(pl.col("attributes").str.contains(f"{name} ", literal=True))
                .select("record_no", _attribute(name).alias("later"))
                .group_by("record_no", maintain_order=True)
                .agg(pl.col("later").drop_nulls().first())
            )
            found = (
                found.join(later, on="record_no", how="left", maintain_order="left")
                .with_columns(pl.coalesce(column, "later").alias(column))
                .drop("later")
            )
    return found


def gtf_transcripts(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, bool, pl.DataFrame]:
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
    line_quarantine = empty_quarantine()
    if orphan.height:
        numbers = _gtf_line_numbers(path, orphan["row"].to_list())
        line_quarantine = pd.DataFrame(
            {
                "file": str(path),
                "record": [f"line {numbers.get(r, r + 1)}" for r in orphan["row"].to_list()],
                "rule": "missing_attribute",
                "detail": [
                    f"{f} line without transcript_id: {(a or '')[:80]!r}"
                    for f, a in zip(orphan["feature"].to_list(), orphan["attributes"].to_list(), strict=True)
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
    meta = (
        meta.join(_descriptive_attributes(rows), on="record_no", how="left", maintain_order="left")
        .with_columns(biotype=pl.coalesce("transcript_type", "gene_type"))
        .drop("transcript_type", "gene_type")
    )

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

    cds = gtf_cds(rows, exons, meta)
    table = meta.join(exon_summary, on="record_no", how="left").join(cds, on="record_no", how="left")
    table = table.with_columns(
        pl.col("n_exons").fill_null(0),
        pl.col("exon_total").fill_null(0),
        pl.col("bad_coordinates").fill_null(False),
        pl.col("overlap").fill_null(False),
    )
    # List columns go to Python lists straight from polars: via pandas (one numpy array per row) is ~4x slower.
    exon_ends = table["exon_ends"].to_list()
    missing = table.filter(pl.col("gene_id_missing_rows").list.len() > 0).select(
        "transcript_id", "gene_id_missing_rows"
    )
    out = table.drop("exon_ends", "gene_id_missing_rows", "strand").to_pandas()
    out["exon_ends"] = exon_ends
    missing_rows = [r for rows_ in missing["gene_id_missing_rows"].to_list() for r in rows_]
    numbers = _gtf_line_numbers(path, missing_rows) if missing_rows else {}
    missing_lines = {
        t: [numbers.get(r, r + 1) for r in rows_]
        for t, rows_ in zip(missing["transcript_id"], missing["gene_id_missing_rows"].to_list(), strict=True)
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
