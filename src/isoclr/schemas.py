"""Pandera schemas for the tables that cross a stage boundary.

Every stage validates what it writes and what it reads, so a broken file is
caught where it enters, with the column and rule named.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow
import pyarrow.compute

from isoclr.alphabet import DNA, dna_only
from isoclr.coordinates import cds_inside

SPLITS = ["train", "val", "test"]
# What validate did with a quarantined record: dropped it, or kept it with its CDS forgotten (empty CDS track).
DROPPED, KEPT_WITHOUT_CDS = "dropped", "kept_without_cds"
# Where a transcript's CDS came from: the input (annotated), the longest ORF (inferred, isoclr.ingest.orf), or
# nowhere (none: no CDS, the CDS track stays empty).
ANNOTATED, INFERRED, NO_CDS = "annotated", "inferred", "none"
CDS_SOURCES = (ANNOTATED, INFERRED, NO_CDS)


def seq_lengths(seq: pd.Series) -> pd.Series:
    """Per row: the sequence's length in bytes, from the Arrow offsets without reading the bases (``str.len()``
    decodes every one: ~0.13 s at GENCODE scale). For the ASCII alphabet :func:`dna_only` admits, bytes and
    characters agree. Null for a null sequence."""
    lengths = pyarrow.compute.binary_length(pyarrow.array(seq, type=pyarrow.large_string(), from_pandas=True))
    return pd.Series(lengths.to_pandas(types_mapper=pd.ArrowDtype).array, index=seq.index).astype("Int64")


def length_is_len_seq(df: pd.DataFrame) -> pd.Series:
    """Per row: ``length == len(seq)``. Byte lengths (:func:`seq_lengths`) decide where they agree; the rare
    rows where they do not are measured in characters, which differ from bytes in non-ASCII text."""
    same = (seq_lengths(df["seq"]) == df["length"]).fillna(False).astype(bool)
    if not same.all():
        odd = ~same
        same[odd] = (df.loc[odd, "seq"].str.len() == df.loc[odd, "length"]).fillna(False).astype(bool)
    return same


@dataclass(frozen=True)
class Field:
    """One column of a table written as parquet: its Arrow type and what pandera checks in it.

    The pandas dtype pandera coerces to follows from the Arrow type: a string is ``str``, an integer
    ``int`` (``Int64`` where nullable), a list ``object``.
    """

    arrow: pyarrow.DataType
    nullable: bool = False
    unique: bool = False
    checks: tuple[pa.Check, ...] = ()

    def pandas(self):
        if pyarrow.types.is_string(self.arrow):
            return str
        if pyarrow.types.is_integer(self.arrow):
            return "Int64" if self.nullable else int
        if pyarrow.types.is_list(self.arrow):
            return object
        raise TypeError(f"no pandas dtype for Arrow {self.arrow}")

    def column(self) -> pa.Column:
        return pa.Column(self.pandas(), list(self.checks), nullable=self.nullable, unique=self.unique)


_DNA_ONLY = pa.Check(dna_only, error=f"str_matches('^[{DNA}]+$')")


def _cds_inside(df: pd.DataFrame) -> pd.Series:
    """Per row: no CDS (both ends null), or one inside the sequence (:func:`isoclr.coordinates.cds_inside`)."""
    start, end = df["cds_start"].astype("Int64"), df["cds_end"].astype("Int64")
    known = start.notna() | end.notna()
    return ~known | cds_inside(start, end, df["length"]).fillna(False).astype(bool)


def _source_matches_cds(df: pd.DataFrame) -> pd.Series:
    """Per row: ``cds_source`` is none exactly where the CDS is unknown."""
    return (df["cds_source"] == NO_CDS) == df["cds_start"].isna()


def with_cds_source(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with a ``cds_source`` column where it has none: annotated where a CDS is known, else none."""
    if "cds_source" in table:
        return table
    known = table["cds_start"].notna() if "cds_start" in table else pd.Series(False, index=table.index)
    return table.assign(cds_source=known.map({True: ANNOTATED, False: NO_CDS}).astype(object))


# The transcripts table, one definition for both the pandera schema and the parquet file's Arrow schema.
TRANSCRIPT_FIELDS: dict[str, Field] = {
    "transcript_id": Field(pyarrow.string(), unique=True),
    "gene_id": Field(pyarrow.string()),
    "gene_name": Field(pyarrow.string(), nullable=True),
    "annotation": Field(pyarrow.string()),
    "species": Field(pyarrow.string()),
    "assembly": Field(pyarrow.string()),
    "biotype": Field(pyarrow.string(), nullable=True),
    # Upper-case DNA alphabet: U is read as T, anything outside ACGTN is quarantined.
    "seq": Field(pyarrow.string(), checks=(_DNA_ONLY,)),
    "length": Field(pyarrow.int64(), checks=(pa.Check.gt(0),)),
    # Transcript coordinates (isoclr.coordinates), 0-based half-open; null where the CDS is unknown or absent.
    "cds_start": Field(pyarrow.int64(), nullable=True, checks=(pa.Check.ge(0),)),
    "cds_end": Field(pyarrow.int64(), nullable=True, checks=(pa.Check.gt(0),)),
    # 0-based position of the last nucleotide of every exon; null where exons are unknown.
    "exon_ends": Field(pyarrow.list_(pyarrow.int64()), nullable=True),
    "cds_source": Field(pyarrow.string(), checks=(pa.Check.isin(CDS_SOURCES),)),
}

TRANSCRIPTS = pa.DataFrameSchema(
    {name: field.column() for name, field in TRANSCRIPT_FIELDS.items()},
    checks=[
        pa.Check(length_is_len_seq, error="length equals len(seq)"),
        pa.Check(_cds_inside, error="CDS inside the transcript"),
        pa.Check(_source_matches_cds, error="cds_source is none exactly where there is no CDS"),
    ],
    strict=True,
    coerce=True,
    name="transcripts",
)
# Every field nullable, as pyarrow infers from pandas: the file's layout does not change with the checks.
TRANSCRIPTS_ARROW = pyarrow.schema([(name, field.arrow) for name, field in TRANSCRIPT_FIELDS.items()])

QUARANTINE = pa.DataFrameSchema(
    {
        "file": pa.Column(str),
        "record": pa.Column(str),  # transcript id, FASTA header or GTF line number
        "rule": pa.Column(str),
        "detail": pa.Column(str),
        # dropped: the record is not in the output; kept_without_cds: kept, CDS track left empty.
        "action": pa.Column(str, pa.Check.isin([DROPPED, KEPT_WITHOUT_CDS])),
    },
    strict=True,
    coerce=True,
    name="quarantine",
)


def _ortholog_partners(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (row of ``df``, ortholog partner), indexed by the row, with the partner's gene_id, species and
    homology_group where the partner is a gene of the table (null otherwise)."""
    pairs = df[["species", "homology_group", "orthologs"]].explode("orthologs").dropna(subset=["orthologs"])
    genes = df.drop_duplicates("gene_id").set_index("gene_id")[["species", "homology_group"]]
    found = genes.reindex(pairs["orthologs"].astype(str).to_numpy()).set_axis(pairs.index).add_suffix("_partner")
    return pd.concat([pairs, found], axis=1)


def _per_row(df: pd.DataFrame, ok: pd.Series) -> pd.Series:
    """Per row of ``df``: every one of its partners passes (``ok`` indexed by row, one entry per partner)."""
    return ok.groupby(level=0).all().reindex(df.index, fill_value=True)


def _partners_are_genes(df: pd.DataFrame) -> pd.Series:
    pairs = _ortholog_partners(df)
    is_str = pairs["orthologs"].map(lambda p: isinstance(p, str))
    return _per_row(df, is_str & pairs["species_partner"].notna())


def _partners_of_other_species(df: pd.DataFrame) -> pd.Series:
    pairs = _ortholog_partners(df)
    return _per_row(df, pairs["species_partner"] != pairs["species"])


def _partners_share_group(df: pd.DataFrame) -> pd.Series:
    pairs = _ortholog_partners(df)
    return _per_row(df, pairs["homology_group_partner"] == pairs["homology_group"])


def _lists(values: pd.Series) -> pd.Series:
    """Per row: a list (or, read back from parquet, a numpy array)."""
    return values.map(lambda v: isinstance(v, list | np.ndarray))


# The groups table (isoclr.pairs): one row per transcript. ``orthologs`` lists the joined gene ids of the row's
# gene's direct ortholog partners (sorted; empty without an ortholog table), read back as numpy arrays.
GROUPS = pa.DataFrameSchema(
    {
        "transcript_id": pa.Column(str, unique=True),
        "gene_id": pa.Column(str),
        "gene_name": pa.Column(str, nullable=True),
        "species": pa.Column(str),
        "n_isoforms": pa.Column(int, pa.Check.ge(1)),
        "homology_group": pa.Column(str),
        "split": pa.Column(str, pa.Check.isin(SPLITS)),
        "orthologs": pa.Column(object, pa.Check(_lists, error="orthologs is a list per row")),
    },
    checks=[
        pa.Check(
            lambda df: df.groupby("homology_group")["split"].nunique() == 1,
            error="a homology group lies in one split only",
        ),
        pa.Check(
            lambda df: df.groupby("gene_id")["homology_group"].nunique() == 1,
            error="all isoforms of a gene share a homology group",
        ),
        pa.Check(lambda df: df.groupby("gene_id")["species"].nunique() == 1, error="a gene is of one species"),
        pa.Check(_partners_are_genes, error="every ortholog partner is a str gene_id of this table"),
        pa.Check(_partners_of_other_species, error="every ortholog partner is a gene of another species"),
        pa.Check(_partners_share_group, error="ortholog partners share the row's homology_group"),
    ],
    strict=True,
    coerce=True,
    name="groups",
)
GROUPS_ARROW = pyarrow.schema(
    [
        ("transcript_id", pyarrow.string()),
        ("gene_id", pyarrow.string()),
        ("gene_name", pyarrow.string()),
        ("species", pyarrow.string()),
        ("n_isoforms", pyarrow.int64()),
        ("homology_group", pyarrow.string()),
        ("split", pyarrow.string()),
        ("orthologs", pyarrow.list_(pyarrow.string())),
    ]
)

# --------------------------------------------------------------------------- probe (isoclr.probe)

# Rows a probe task embeds: one per labelled sequence. Not strict: a gene_id join
# also carries the representative transcript's id, CDS and exon ends.
PROBE_ROWS = pa.DataFrameSchema(
    {
        "id": pa.Column(str),
        "seq": pa.Column(str, _DNA_ONLY),
        "target": pa.Column(float, pa.Check(lambda s: s.notna() & ~s.isin([float("inf"), float("-inf")]))),
        "group": pa.Column(str),
    },
    coerce=True,
    name="probe_rows",
)

# Seed-0 test predictions, the data of `dvc plots` (x = measured, y = predicted).
PROBE_PREDICTIONS = pa.DataFrameSchema(
    {
        "task": pa.Column(str),
        "model": pa.Column(str),
        "term": pa.Column(str),  # a multilabel task's label ("" otherwise): one row per (test row, label)
        "measured": pa.Column(float),
        "predicted": pa.Column(float),
        "threshold": pa.Column(float, nullable=True),  # classification: chosen on the val rows; NaN for regression
    },
    strict=True,
    coerce=True,
    name="probe_predictions",
)
