"""One reader per annotation format: files -> (transcripts table, quarantine report).

Formats (``isoclr.config.Annotation.format``):

- ``gencode_fasta``: a GENCODE transcript FASTA (:mod:`isoclr.ingest.fasta`); exons are unknown.
- ``gtf_transcript_fasta``: a GTF (exon, CDS, stop_codon features, :mod:`isoclr.ingest.gtf`) plus
  the spliced transcript sequences, FASTA ids = transcript_id.
- ``gtf_genome_fasta``: a GTF plus the genome FASTA (plain or bgzip, indexed with ``.fai``/``.gzi``,
  read beside it when there and fresh, else built in the genome cache, never beside it; plain gzip, as
  Ensembl and GENCODE publish it, is decompressed once into
  the genome cache, ``$ISOCLR_GENOME_CACHE`` or ``~/.cache/isoclr/genomes``): exons are spliced from the
  genome (:mod:`isoclr.ingest.genome`), minus strand reverse-complemented.
- ``sequence_table``: a TSV/CSV/parquet of id, gene and mature sequence (optional CDS columns),
  :mod:`isoclr.ingest.table`; exons are unknown.

With ``cds: longest_orf`` a transcript whose input gives no CDS gets its longest ORF
(:mod:`isoclr.ingest.orf`); ``cds_source`` says per transcript whether the CDS is annotated,
inferred or none.

Each reader joins what its files say per transcript, lets the format's rules
(:mod:`isoclr.ingest.rules`) quarantine what is wrong, and returns the rest in file order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl

from isoclr.config import Annotation
from isoclr.ingest.cds import add_stop_codon
from isoclr.ingest.fasta import GENCODE_FIELDS, fasta_ids, parse_gencode_header, read_fasta
from isoclr.ingest.files import ValidationError, require
from isoclr.ingest.genome import Exons, Genome, GenomeError, splice
from isoclr.ingest.gtf import gtf_transcripts
from isoclr.ingest.orf import infer_cds
from isoclr.ingest.rules import (
    QUARANTINE_COLUMNS,
    Triage,
    dedupe_fasta,
    gencode_rules,
    genome_sequence_rules,
    genome_structure_rules,
    gtf_fasta_rules,
)
from isoclr.ingest.table import read_sequence_table
from isoclr.schemas import TRANSCRIPT_FIELDS, seq_lengths, with_cds_source

TRANSCRIPT_COLUMNS = list(TRANSCRIPT_FIELDS)


def _read_gencode(ann: Annotation, data_root: Path, max_length: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    path = require(data_root / ann.fasta, ann)
    fasta = str(path)
    records = fasta_ids(read_fasta(path), split_bar=True)
    records, duplicates = dedupe_fasta(records, fasta)
    parsed = pd.DataFrame([parse_gencode_header(h) for h in records["header"]], index=records.index)
    table = pd.concat([records, parsed.reindex(columns=GENCODE_FIELDS)], axis=1)

    triage = Triage(table)
    gencode_rules(triage, fasta, max_length)
    kept = triage.alive.assign(exon_ends=None)
    return _finish(kept, ann), pd.concat([duplicates, triage.quarantine()], ignore_index=True)


def _read_gtf_fasta(ann: Annotation, data_root: Path, max_length: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    fasta_path = require(data_root / ann.fasta, ann)
    gtf_path = require(data_root / ann.gtf, ann)
    fasta, gtf = str(fasta_path), str(gtf_path)
    records = fasta_ids(read_fasta(fasta_path), split_bar=True)
    records, duplicates = dedupe_fasta(records, fasta)
    structure, line_quarantine, has_stop_features, _ = gtf_transcripts(gtf_path)

    table = records.merge(structure.drop(columns="record_no"), on="transcript_id", how="outer", indicator="source")
    table["record"] = table["record"].fillna(table["transcript_id"])
    table["cds_start"] = table["cds_start"].astype("Int64")
    table["cds_end"] = table["cds_end"].astype("Int64")

    triage = Triage(table)
    gtf_fasta_rules(triage, fasta, gtf, max_length)
    kept = triage.alive
    if not has_stop_features:
        kept = add_stop_codon(kept, gtf)
    quarantine = pd.concat([duplicates, line_quarantine, triage.quarantine()], ignore_index=True)
    return _finish(kept, ann), quarantine


def contig_problems(exons: pl.DataFrame, lengths: dict[str, int]) -> pl.DataFrame:
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
    gtf_path = require(data_root / ann.gtf, ann)
    genome_path = require(data_root / ann.genome, ann)
    gtf, genome_file = str(gtf_path), str(genome_path)
    try:
        genome = Genome(genome_path)
    except GenomeError as err:
        raise ValidationError(str(err)) from err
    structure, line_quarantine, has_stop_features, exons = gtf_transcripts(gtf_path)
    problems = contig_problems(exons, genome.lengths).to_pandas()
    table = structure.merge(problems, on="transcript_id", how="left").assign(record=lambda d: d["transcript_id"])
    table["cds_start"] = table["cds_start"].astype("Int64")
    table["cds_end"] = table["cds_end"].astype("Int64")

    triage = Triage(table)
    genome_structure_rules(triage, gtf, genome_file, max_length)
    alive = triage.alive
    try:
        seq, invalid = spliced(genome, exons, alive)
    except GenomeError as err:
        raise ValidationError(str(err)) from err
    finally:
        genome.close()
    triage.alive = alive.assign(seq=seq, invalid=invalid)
    genome_sequence_rules(triage, gtf, genome_file)

    kept = triage.alive
    if not has_stop_features:
        kept = add_stop_codon(kept, gtf)
    quarantine = pd.concat([line_quarantine, triage.quarantine()], ignore_index=True)
    return _finish(kept, ann), quarantine


def spliced(genome: Genome, exons: pl.DataFrame, alive: pd.DataFrame) -> tuple[pd.Series, np.ndarray]:
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
    out = with_cds_source(out.drop(columns="cds_source", errors="ignore"))
    return out[TRANSCRIPT_COLUMNS].reset_index(drop=True)


def _read_table(ann: Annotation, data_root: Path, max_length: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    kept, quarantine = read_sequence_table(ann, data_root, max_length)
    return _finish(kept, ann), quarantine


_READERS = {
    "gencode_fasta": _read_gencode,
    "gtf_transcript_fasta": _read_gtf_fasta,
    "gtf_genome_fasta": _read_gtf_genome,
    "sequence_table": _read_table,
}


def read_annotation(ann: Annotation, data_root: Path, max_length: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One annotation set -> (transcripts with TRANSCRIPTS columns, quarantine with QUARANTINE columns).

    Files are ``data_root / ann.fasta`` (and ``ann.gtf``). Raises ValidationError
    only for a file that is missing or unreadable as a whole.
    """
    transcripts, quarantine = _READERS[ann.format](ann, Path(data_root), max_length)
    if ann.cds == "longest_orf":
        transcripts = infer_cds(transcripts, ann.min_orf_length)
    return transcripts, quarantine[QUARANTINE_COLUMNS].astype(str).reset_index(drop=True)
