"""FASTA records and GENCODE headers: the sequences of the ``gencode_fasta`` and ``gtf_transcript_fasta`` formats.

A GENCODE transcript FASTA header is ``ENST|ENSG|OTTHUMG|OTTHUMT|tx name|gene name|length|biotype|``
with optional ``UTR5:a-b|CDS:a-b|UTR3:a-b|`` fields (1-based closed). Records keep their file order
(``record_no``, 1-based); sequences are normalised by :func:`isoclr.alphabet.normalise`.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from isoclr.alphabet import normalise
from isoclr.ingest.files import ValidationError, open_text

# GENCODE header: fixed fields (0-based) and the optional region fields.
GENCODE_MIN_FIELDS = 7
# The id is field 0 (read by fasta_ids); the biotype is the first later field that is no region.
GENCODE_GENE_ID, GENCODE_GENE_NAME, GENCODE_LENGTH = 1, 5, 6
GENCODE_REGION = re.compile(r"^(UTR5|CDS|UTR3):(\d+)-(\d+)$")
# The columns parse_gencode_header gives.
GENCODE_FIELDS = ["malformed", "gene_id", "gene_name", "header_length", "biotype", "cds_start", "cds_end"]


def read_fasta(path: Path) -> pd.DataFrame:
    """All records of a FASTA file: columns record_no (1-based), header, raw (sequence as written)."""
    # Imported here: the GTF + genome path needs neither.
    from Bio.SeqIO.FastaIO import SimpleFastaParser
    from tqdm import tqdm

    headers, seqs = [], []
    try:
        with open_text(path) as fh:
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


def fasta_ids(records: pd.DataFrame, split_bar: bool) -> pd.DataFrame:
    """``records`` with transcript_id (the header's first word, up to a "|" with ``split_bar``), the normalised
    seq instead of raw, and record: how the quarantine report names the record."""
    ids = records["header"].str.split(n=1).str[0].fillna("")
    if split_bar:
        ids = ids.str.split("|").str[0]
    records = records.assign(transcript_id=ids, seq=normalise(records["raw"])).drop(columns="raw")
    # The report names a record by its id, or by its position when the header has none.
    records["record"] = [
        t if t else f"record {n}" for t, n in zip(records["transcript_id"], records["record_no"], strict=True)
    ]
    return records


def parse_gencode_header(header: str) -> dict:
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
