"""Reading annotation sets: FASTA, GTF and genome files -> one transcripts table and a quarantine report.

The validate stage (:mod:`isoclr.validate`) and embedding from files read annotations through
:func:`read_annotation`, so both apply the same rules. Modules, in reading order:

- :mod:`~isoclr.ingest.files`: finding and opening the files (plain or gzip), :class:`ValidationError`;
- :mod:`~isoclr.ingest.fasta`: FASTA records and GENCODE headers;
- :mod:`~isoclr.ingest.gtf`: GTF lines -> per-transcript exons (and :mod:`~isoclr.ingest.cds`: their CDS);
- :mod:`~isoclr.ingest.genome`: exons spliced from an indexed genome FASTA;
- :mod:`~isoclr.ingest.rules`: the quarantine rules and the triage that applies them;
- :mod:`~isoclr.ingest.readers`: one reader per format, joining the above.

Coordinates in the output are transcript coordinates (:mod:`isoclr.coordinates`), 0-based: CDS is
half-open ``[cds_start, cds_end)``, ``exon_ends`` holds the last nucleotide of every exon in
transcript order (minus strand: exon order reversed).
"""

from __future__ import annotations

from isoclr.ingest.fasta import parse_gencode_header, read_fasta
from isoclr.ingest.files import ValidationError, open_text
from isoclr.ingest.genome import GenomeError
from isoclr.ingest.readers import read_annotation
from isoclr.schemas import DROPPED, KEPT_WITHOUT_CDS

__all__ = [
    "DROPPED",
    "KEPT_WITHOUT_CDS",
    "GenomeError",
    "ValidationError",
    "open_text",
    "parse_gencode_header",
    "read_annotation",
    "read_fasta",
]
