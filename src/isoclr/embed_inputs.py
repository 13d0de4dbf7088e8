"""What :meth:`isoclr.embed.Encoder.embed` is given, as rows it can encode and a list of what it cannot.

Sequences, a transcripts table, or annotation files (read by :mod:`isoclr.ingest`, the same
rules as the validate stage) become one rows table (``transcript_id``, ``seq`` and the optional
:data:`TRACK_COLUMNS`); :func:`encodable` packs the rows that can be embedded and lists the rest
with the reason in :data:`SKIPPED` columns, so nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pandera.pandas as pa

from isoclr import tracks
from isoclr.alphabet import NOT_IUPAC
from isoclr.errors import IsoclrError

# The optional columns that fill the CDS and splice tracks.
TRACK_COLUMNS = ("cds_start", "cds_end", "exon_ends")

NOT_EMBEDDED = "not_embedded"
EMBEDDED_WITHOUT_CDS = "embedded_without_cds"
SKIPPED = pa.DataFrameSchema(
    {
        "transcript_id": pa.Column(str),
        "reason": pa.Column(str),
        "action": pa.Column(str, pa.Check.isin([NOT_EMBEDDED, EMBEDDED_WITHOUT_CDS])),
    },
    strict=True,
    coerce=True,
    name="embed_skipped",
)


class EmbedInputError(IsoclrError, ValueError):
    """What embed was given cannot be used as a whole (a missing column, files that do not go together,
    an unknown precision or device): the CLI reports it as one error line."""


def empty_skipped() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=str) for c in SKIPPED.columns})


def sequence_rows(sequences, cds, exon_ends, ids) -> pd.DataFrame:
    """Rows of plain sequences: a string, a list (ids ``seq0``, ... unless ``ids``) or an id -> sequence mapping."""
    if isinstance(sequences, str):
        sequences = [sequences]
    if isinstance(sequences, Mapping):
        if ids is not None:
            raise EmbedInputError("ids come from the mapping's keys; do not pass ids with a mapping")
        ids, sequences = list(sequences.keys()), list(sequences.values())
    sequences = list(sequences)
    ids = [f"seq{i}" for i in range(len(sequences))] if ids is None else [str(i) for i in ids]
    for name, values in (("ids", ids), ("cds", cds), ("exon_ends", exon_ends)):
        if values is not None and len(values) != len(sequences):
            raise EmbedInputError(f"{name} has {len(values)} entries for {len(sequences)} sequences")
    spans = list(cds) if cds is not None else [None] * len(sequences)
    return pd.DataFrame(
        {
            "transcript_id": ids,
            "seq": sequences,
            "cds_start": [s[0] if s is not None else None for s in spans],
            "cds_end": [s[1] if s is not None else None for s in spans],
            "exon_ends": list(exon_ends) if exon_ends is not None else [None] * len(sequences),
        }
    )


def table_rows(table: pd.DataFrame) -> pd.DataFrame:
    """Rows of a table with ``seq`` (ids ``row0``, ... without a ``transcript_id`` column)."""
    if "seq" not in table.columns:
        raise EmbedInputError(f"embed needs a 'seq' column in the table, got {list(table.columns)}")
    rows = table.reset_index(drop=True)
    ids = rows["transcript_id"].astype(str) if "transcript_id" in rows else pd.Series([f"row{i}" for i in rows.index])
    return pd.DataFrame({"transcript_id": ids, "seq": rows["seq"], **{c: rows.get(c) for c in TRACK_COLUMNS}})


def file_rows(gtf, fasta, genome, max_length: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Transcripts from annotation files by the validate stage's readers; its quarantine becomes ``skipped``."""
    if gtf is not None and (fasta is None) == (genome is None):
        raise EmbedInputError("a GTF needs exactly one of fasta (spliced transcripts) or genome (to splice exons from)")
    if gtf is None and fasta is None:
        raise EmbedInputError("a genome FASTA needs its GTF")
    from isoclr.config import Annotation
    from isoclr.ingest import read_annotation

    files = {k: str(Path(v).resolve()) for k, v in (("gtf", gtf), ("fasta", fasta), ("genome", genome)) if v}
    if gtf is None and not _gencode_headers(Path(fasta)):
        return _plain_fasta(Path(fasta)), empty_skipped()
    fmt = "gencode_fasta" if gtf is None else ("gtf_transcript_fasta" if fasta else "gtf_genome_fasta")
    ann = Annotation(name="embed", format=fmt, species="unknown", assembly="unknown", **files)
    table, quarantine = read_annotation(ann, Path("/"), max_length)
    skipped = pd.DataFrame(
        {
            "transcript_id": quarantine["record"],
            "reason": quarantine["rule"] + ": " + quarantine["detail"],
            "action": np.where(quarantine["action"] == "dropped", NOT_EMBEDDED, EMBEDDED_WITHOUT_CDS),
        }
    )
    return table_rows(table), skipped


def _gencode_headers(path: Path) -> bool:
    """Whether the FASTA's first header is a GENCODE one (so it carries the CDS)."""
    from Bio.SeqIO.FastaIO import SimpleFastaParser

    from isoclr.ingest import open_text, parse_gencode_header

    with open_text(path) as fh:
        first = next(SimpleFastaParser(fh), None)
    return first is not None and parse_gencode_header(first[0])["malformed"] is None


def _plain_fasta(path: Path) -> pd.DataFrame:
    from Bio.SeqIO.FastaIO import SimpleFastaParser

    from isoclr.ingest import open_text

    with open_text(path) as fh:
        records = [(header.split()[0] if header.split() else "", seq) for header, seq in SimpleFastaParser(fh)]
    return sequence_rows([s for _, s in records], None, None, [i for i, _ in records])


def encodable(rows: pd.DataFrame, max_length: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows that can be embedded, each with its packed bytes; the rest with the reason (:data:`SKIPPED`)."""
    packed, keep, bad = [], [], []
    seen: set[str] = set()
    for i, row in enumerate(rows.itertuples(index=False)):
        seq = row.seq if isinstance(row.seq, str) else ""
        problem = None
        if row.transcript_id in seen:
            problem = "duplicate id: the first is embedded"
        elif not seq:
            problem = "empty sequence"
        elif len(seq) > max_length:
            problem = f"length {len(seq)} > max_length {max_length}"
        elif found := NOT_IUPAC.findall(seq):
            problem = f"characters outside the nucleotide alphabet: {''.join(sorted(set(found)))[:20]!r}"
        if problem is None:
            try:
                packed.append(tracks.pack(seq, row.cds_start, row.cds_end, row.exon_ends))
                keep.append(i)
            except (ValueError, TypeError) as err:
                problem = str(err)
        seen.add(row.transcript_id)
        if problem is not None:
            bad.append({"transcript_id": row.transcript_id, "reason": problem, "action": NOT_EMBEDDED})
    kept = rows.iloc[keep][["transcript_id"]].reset_index(drop=True).assign(packed=pd.Series(packed, dtype=object))
    return kept, pd.DataFrame(bad, columns=list(SKIPPED.columns))
