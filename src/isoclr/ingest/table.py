"""The ``sequence_table`` format: one row per transcript with its id, gene and mature sequence.

Users often hold sequences this way (assemblies, vendor panels, published cDNA sets): a TSV or CSV,
plain or gzip, or a parquet file (told by its first bytes, whatever its name), with the columns named
in ``Annotation.columns``. Every row ends in the transcripts table or in the quarantine report with
its rule (:func:`table_rules`), so the rows are conserved; a row is named by its id, or ``row N``
(1-based data row) where it has none.

The gene column holds an Ensembl gene id or a symbol. With ``Annotation.gene_map`` a symbol gets
its Ensembl gene id (:mod:`isoclr.ingest.genes`), so the set's genes join other sets' genes and
label files keyed by Ensembl gene id; the symbol stays as ``gene_name``.
"""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import pandas as pd
import polars as pl

from isoclr.alphabet import normalise
from isoclr.config import Annotation
from isoclr.coordinates import cds_inside
from isoclr.gene_ids import ENSEMBL_GENE
from isoclr.ingest.files import ValidationError, open_bytes, require
from isoclr.ingest.genes import read_gene_map, to_ensembl_genes
from isoclr.ingest.rules import Triage, cds_frame_rule, sequence_rules, too_long_rule

PARQUET_MAGIC = b"PAR1"


def read_table_file(path: Path, sep: str) -> pl.DataFrame:
    """Every column of the table as strings (parquet columns cast), or a :class:`ValidationError`."""
    try:
        raw = open_bytes(path)
        if raw[: len(PARQUET_MAGIC)] == PARQUET_MAGIC:
            frame = pl.read_parquet(io.BytesIO(raw))
            return frame.with_columns(pl.all().cast(pl.String))
        return pl.read_csv(io.BytesIO(raw), separator=sep, infer_schema=False, quote_char='"')
    except (pl.exceptions.PolarsError, OSError, EOFError, zlib.error) as err:
        raise ValidationError(
            f"{path}: cannot be read as a table separated by {sep!r} or as parquet ({err}); check the file is "
            "complete and the annotation's sep in params.yaml"
        ) from err


def _columns(ann: Annotation, frame: pl.DataFrame, path: Path) -> dict[str, str]:
    """Our name -> the file's column name, for the columns the set declares."""
    cols = ann.columns
    wanted = {"transcript_id": cols.id, "gene": cols.gene, "seq": cols.sequence}
    if (cols.cds_start is None) != (cols.cds_end is None):
        raise ValidationError(f"annotation {ann.name!r}: columns.cds_start and columns.cds_end go together")
    if cols.cds_start is not None:
        wanted |= {"cds_start_raw": cols.cds_start, "cds_end_raw": cols.cds_end}
    missing = [c for c in wanted.values() if c not in frame.columns]
    if missing:
        raise ValidationError(
            f"{path}: annotation {ann.name!r} needs column(s) {missing}; the file has {frame.columns}; "
            "name them under columns in params.yaml"
        )
    return wanted


def read_sequence_table(ann: Annotation, data_root: Path, max_length: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A sequence table -> (transcripts as the readers' columns, record_no, gene_name, biotype; quarantine)."""
    path = require(data_root / ann.table, ann)
    frame = read_table_file(path, ann.sep)
    wanted = _columns(ann, frame, path)
    table = frame.select([pl.col(theirs).alias(ours) for ours, theirs in wanted.items()]).to_pandas()
    for column in ("transcript_id", "gene"):
        table[column] = table[column].str.strip().replace("", None)
    table["record_no"] = range(len(table))
    table["record"] = table["transcript_id"].where(
        table["transcript_id"].notna(), "row " + (table.index + 1).astype(str)
    )
    table["seq"] = normalise(table["seq"].fillna("").str.strip())
    table = _cds_columns(table)

    triage = Triage(table)
    table_rules(triage, str(path), max_length)
    kept = _genes(triage.alive, ann, data_root)
    return kept.assign(biotype=None, exon_ends=None), triage.quarantine()


def _cds_columns(table: pd.DataFrame) -> pd.DataFrame:
    """1-based inclusive CDS text -> 0-based half-open ``cds_start``/``cds_end``; ``cds_problem`` says what is
    wrong with a CDS that cannot be used (not an integer, one end only)."""
    if "cds_start_raw" not in table:
        return table.assign(cds_start=pd.NA, cds_end=pd.NA, cds_problem=None).astype(
            {"cds_start": "Int64", "cds_end": "Int64"}
        )
    raw_start, raw_end = table["cds_start_raw"].str.strip(), table["cds_end_raw"].str.strip()
    given_start, given_end = raw_start.fillna("") != "", raw_end.fillna("") != ""
    start = pd.to_numeric(raw_start.where(given_start), errors="coerce")
    end = pd.to_numeric(raw_end.where(given_end), errors="coerce")
    not_integer = (given_start & (start.isna() | (start % 1 != 0))) | (given_end & (end.isna() | (end % 1 != 0)))
    one_end = given_start != given_end
    problem = pd.Series(None, index=table.index, dtype=object)
    problem[one_end] = "only one of CDS start and end is given"
    problem[not_integer] = [
        f"CDS {s!r}-{e!r} is not a pair of integers" for s, e in zip(raw_start, raw_end, strict=True)
    ]
    usable = given_start & given_end & ~not_integer
    return table.assign(
        cds_start=(start - 1).where(usable).astype("Int64"),
        cds_end=end.where(usable).astype("Int64"),
        cds_problem=problem.where(problem.notna(), None),
    )


def table_rules(triage: Triage, file: str, max_length: int) -> None:
    """Sequence-table rows: id and gene present, the first row of an id kept, the sequence usable and not too
    long; a CDS that is malformed, outside the sequence or out of frame is forgotten (the row is kept)."""
    triage.drop(
        "missing_attribute",
        file,
        lambda d: d["transcript_id"].isna() | d["gene"].isna(),
        lambda d: [f"no {'id' if pd.isna(t) else 'gene'} in this row" for t in d["transcript_id"]],
    )
    triage.drop(
        "duplicate_id",
        file,
        lambda d: d["transcript_id"].duplicated(keep="first"),
        lambda d: "an earlier row has this id; the first is kept",
    )
    sequence_rules(triage, file)
    too_long_rule(triage, file, max_length)
    triage.strip_cds("invalid_cds", file, lambda d: d["cds_problem"].notna(), lambda d: list(d["cds_problem"]))
    triage.strip_cds(
        "cds_outside_exons",
        file,
        lambda d: d["cds_start"].notna() & ~cds_inside(d["cds_start"], d["cds_end"], d["seq"].str.len()),
        lambda d: [
            f"CDS [{s}, {e}) is not inside the {n}-nt sequence"
            for s, e, n in zip(d["cds_start"], d["cds_end"], d["seq"].str.len(), strict=True)
        ],
    )
    cds_frame_rule(triage, file)


def _genes(kept: pd.DataFrame, ann: Annotation, data_root: Path) -> pd.DataFrame:
    """``gene_id`` (an Ensembl gene id where the gene column or the gene map gives one, else the symbol) and
    ``gene_name`` (the symbol, where the gene column holds one)."""
    gene = kept["gene"].astype(str)
    is_ensembl = gene.str.match(ENSEMBL_GENE)
    gene_name = gene.where(~is_ensembl, None)
    gene_id = gene.copy()
    if ann.gene_map is not None and (~is_ensembl).any():
        genes = read_gene_map(require(data_root / ann.gene_map, ann))
        mapped = to_ensembl_genes(kept["transcript_id"], gene_name, genes)
        gene_id = mapped.where(mapped.notna() & ~is_ensembl, gene)
    return kept.assign(gene_id=gene_id, gene_name=gene_name)
