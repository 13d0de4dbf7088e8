"""Pandera schemas for the tables that cross a stage boundary.

Every stage validates what it writes and what it reads, so a broken file is
caught where it enters, with the column and rule named.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow
import pyarrow.compute

SPLITS = ["train", "val", "test"]

# The transcript alphabet after normalisation (U read as T, upper case).
DNA = b"ACGTN"
# Bytes of the concatenated sequences scanned per step: the temporary copy stays in the allocator's heap and in
# cache (64 MiB steps cost ~0.3 s more at GENCODE scale, in page faults of fresh memory).
_SCAN_BYTES = 1 << 20


def dna_only(seq: pd.Series) -> pd.Series:
    """Per row: the sequence is non-empty and holds only ACGTN (the regex ``^[ACGTN]+$``).

    One pass over the column's concatenated bytes (a per-row regex costs ~2 s at
    GENCODE scale); rows are looked at one by one only where a bad byte exists.
    Nulls count as passing here, as in pandera's built-in string checks (the
    column's ``nullable`` decides about them).
    """
    arr = pyarrow.array(seq, type=pyarrow.large_string(), from_pandas=True)
    if isinstance(arr, pyarrow.ChunkedArray):  # an Arrow-backed column of several chunks
        arr = arr.combine_chunks()
    n = len(arr)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + n + 1] if n else np.zeros(1, np.int64)
    data = arr.buffers()[2]
    view = memoryview(data)[offsets[0] : offsets[-1]] if data is not None else memoryview(b"")
    ok = np.diff(offsets) > 0
    if any(bytes(view[i : i + _SCAN_BYTES]).translate(None, DNA) for i in range(0, len(view), _SCAN_BYTES)):
        allowed = np.zeros(256, dtype=bool)
        allowed[np.frombuffer(DNA, np.uint8)] = True
        bad = np.flatnonzero(~allowed[np.frombuffer(view, np.uint8)])
        ok[np.searchsorted(offsets - offsets[0], bad, side="right") - 1] = False
    valid = arr.is_valid().to_numpy(zero_copy_only=False)
    return pd.Series(ok | ~valid, index=seq.index)


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


TRANSCRIPTS = pa.DataFrameSchema(
    {
        "transcript_id": pa.Column(str, unique=True),
        "gene_id": pa.Column(str),
        "gene_name": pa.Column(str, nullable=True),
        "annotation": pa.Column(str),
        "species": pa.Column(str),
        "assembly": pa.Column(str),
        "biotype": pa.Column(str, nullable=True),
        # Upper-case DNA alphabet: U is read as T, anything outside ACGTN is quarantined.
        "seq": pa.Column(str, pa.Check(dna_only, error="str_matches('^[ACGTN]+$')")),
        "length": pa.Column(int, pa.Check.gt(0)),
        # Transcript coordinates, 0-based half-open; null where the CDS is unknown or absent.
        "cds_start": pa.Column("Int64", pa.Check.ge(0), nullable=True),
        "cds_end": pa.Column("Int64", pa.Check.gt(0), nullable=True),
        # 0-based position of the last nucleotide of every exon; null where exons are unknown.
        "exon_ends": pa.Column(object, nullable=True),
    },
    checks=[
        pa.Check(length_is_len_seq, error="length equals len(seq)"),
        pa.Check(
            lambda df: df["cds_end"].isna() | (df["cds_end"] <= df["length"]),
            error="CDS ends inside the transcript",
        ),
        pa.Check(
            lambda df: df["cds_start"].isna() | (df["cds_start"] < df["cds_end"]),
            error="CDS start before CDS end",
        ),
    ],
    strict=True,
    coerce=True,
    name="transcripts",
)

QUARANTINE = pa.DataFrameSchema(
    {
        "file": pa.Column(str),
        "record": pa.Column(str),  # transcript id, FASTA header or GTF line number
        "rule": pa.Column(str),
        "detail": pa.Column(str),
        # dropped: the record is not in the output; kept_without_cds: kept, CDS track left empty.
        "action": pa.Column(str, pa.Check.isin(["dropped", "kept_without_cds"])),
    },
    strict=True,
    coerce=True,
    name="quarantine",
)

GROUPS = pa.DataFrameSchema(
    {
        "transcript_id": pa.Column(str, unique=True),
        "gene_id": pa.Column(str),
        "gene_name": pa.Column(str, nullable=True),
        "n_isoforms": pa.Column(int, pa.Check.ge(1)),
        "homology_group": pa.Column(str),
        "split": pa.Column(str, pa.Check.isin(SPLITS)),
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
    ],
    strict=True,
    coerce=True,
    name="groups",
)

# --------------------------------------------------------------------------- probe (isoclr.probe)

# Rows a probe task embeds: one per labelled sequence. Not strict: a gene_id join
# also carries the representative transcript's id, CDS and exon ends.
PROBE_ROWS = pa.DataFrameSchema(
    {
        "id": pa.Column(str),
        "seq": pa.Column(str, pa.Check(dna_only, error="str_matches('^[ACGTN]+$')")),
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
        "measured": pa.Column(float),
        "predicted": pa.Column(float),
    },
    strict=True,
    coerce=True,
    name="probe_predictions",
)
