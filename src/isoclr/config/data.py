"""Input data and the stages that read it whole: validate, encode, splits."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from isoclr.config.base import Strict


class TableColumns(Strict):
    """Column names of a ``sequence_table`` annotation set (:mod:`isoclr.ingest.table`).

    ``gene`` holds an Ensembl gene id or a gene symbol. The optional CDS columns are 1-based and inclusive,
    the end including the stop codon (as GENCODE FASTA headers give it); a row with neither is a transcript
    without an annotated CDS.
    """

    id: str = "transcript_id"
    gene: str = "gene"
    sequence: str = "sequence"
    cds_start: str | None = None
    cds_end: str | None = None


class Annotation(Strict):
    """One annotation set: a GENCODE transcript FASTA, a GTF plus transcript FASTA, a GTF plus genome FASTA, or a
    table of sequences (TSV/CSV/parquet)."""

    name: str
    format: Literal["gencode_fasta", "gtf_transcript_fasta", "gtf_genome_fasta", "sequence_table"]
    fasta: str | None = None  # transcript FASTA (gencode_fasta, gtf_transcript_fasta)
    gtf: str | None = None
    genome: str | None = None  # genome FASTA, plain, gzip or bgzip (gtf_genome_fasta; isoclr.ingest.genome)
    table: str | None = None  # sequence_table: TSV / CSV (plain or gzip) or parquet, told by its first bytes
    sep: str = "\t"  # sequence_table: field separator of a text table
    columns: TableColumns = TableColumns()
    # sequence_table: an Entrez/symbol/Ensembl gene map (columns symbol, ensembl_gene_ids,
    # ensembl_transcript_ids; isoclr.ingest.genes) that gives a symbol its Ensembl gene id.
    gene_map: str | None = None
    species: str
    assembly: str
    # Where the CDS comes from: annotated (the input's own, else none) or longest_orf (the input's own, else
    # the longest ATG-to-stop ORF of the mature sequence of at least min_orf_length nt, isoclr.ingest.orf).
    cds: Literal["annotated", "longest_orf"] = "annotated"
    min_orf_length: int = Field(300, ge=6)

    @model_validator(mode="after")
    def _files_when_needed(self) -> Annotation:
        needs = {
            "gencode_fasta": ("fasta",),
            "gtf_transcript_fasta": ("gtf", "fasta"),
            "gtf_genome_fasta": ("gtf", "genome"),
            "sequence_table": ("table",),
        }[self.format]
        missing = [key for key in needs if not getattr(self, key)]
        if missing:
            raise ValueError(f"annotation {self.name!r}: format {self.format} needs a {' and a '.join(missing)} file")
        return self

    def files(self) -> list[str]:
        """The input files of this set, in the order the reports name them."""
        return [f for f in (self.gtf, self.genome, self.fasta, self.table, self.gene_map) if f]


class OrthologTable(Strict):
    """Gene pairs across species (Ensembl Compara style, e.g. human-mouse one-to-one orthologs).

    Each value names a gene by Ensembl gene id (versioned or not), by the annotation's own gene id, or by
    symbol; a pair must link genes of two different species. Without a header row the columns are given by
    0-based position (``columns: {gene_a: 0, gene_b: 1}``).
    """

    table: str  # TSV / CSV, plain or gzip (told by its first bytes)
    sep: str = "\t"
    header: bool = True
    columns: dict[Literal["gene_a", "gene_b"], str | int] = {"gene_a": "gene_A", "gene_b": "gene_B"}


class DataConfig(Strict):
    dir: str = "data"
    annotations: list[Annotation] = Field(min_length=1)
    # Gene pairs within a species (columns gene_A, gene_B): symbols or gene ids (Ensembl, versioned or not).
    paralogs: str
    # Gene pairs across species: ortholog positives (train.ortholog_share) that also join homology groups, so
    # no family is split across train/val/test in any species. None: single-species training.
    orthologs: OrthologTable | None = None
    # Folder under ``dir`` with the GO tables (isoclr.go_terms): GO probe tasks and the latent-space maps
    # read it. None: no GO labels.
    go: str | None = None

    def path(self, name: str, root: Path | None = None) -> Path:
        """A data file's path; ``root`` replaces ``dir`` (a kfp task gets data where it is mounted)."""
        return Path(root if root is not None else self.dir) / name


class ValidateConfig(Strict):
    max_length: int = Field(12288, gt=0)
    min_transcripts: int = Field(100, ge=1)
    max_quarantine_fraction: float = Field(0.2, ge=0, le=1)


class EncodeConfig(Strict):
    # The track store is written in shards of at most this many bytes (1 byte per nucleotide).
    shard_bytes: int = Field(1 << 28, gt=0)


class SplitFractions(Strict):
    train: float = Field(0.7, gt=0)
    val: float = Field(0.15, ge=0)
    test: float = Field(0.15, gt=0)

    @model_validator(mode="after")
    def _sum_to_one(self) -> SplitFractions:
        total = self.train + self.val + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"split fractions must sum to 1, got {total}")
        return self


class SplitsConfig(Strict):
    fractions: SplitFractions = SplitFractions()
    seed: int = 0
