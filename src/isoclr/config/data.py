"""Input data and the stages that read it whole: validate, encode, splits."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from isoclr.config.base import Strict


class Annotation(Strict):
    """One annotation set: a GENCODE transcript FASTA, a GTF plus transcript FASTA, or a GTF plus genome FASTA."""

    name: str
    format: Literal["gencode_fasta", "gtf_transcript_fasta", "gtf_genome_fasta"]
    fasta: str | None = None  # transcript FASTA (gencode_fasta, gtf_transcript_fasta)
    gtf: str | None = None
    genome: str | None = None  # genome FASTA, plain, gzip or bgzip (gtf_genome_fasta; isoclr.ingest.genome)
    species: str
    assembly: str

    @model_validator(mode="after")
    def _files_when_needed(self) -> Annotation:
        needs = {
            "gencode_fasta": ("fasta",),
            "gtf_transcript_fasta": ("gtf", "fasta"),
            "gtf_genome_fasta": ("gtf", "genome"),
        }[self.format]
        missing = [key for key in needs if not getattr(self, key)]
        if missing:
            raise ValueError(f"annotation {self.name!r}: format {self.format} needs a {' and a '.join(missing)} file")
        return self

    def files(self) -> list[str]:
        """The input files of this set, in the order the reports name them."""
        return [f for f in (self.gtf, self.genome, self.fasta) if f]


class DataConfig(Strict):
    dir: str = "data"
    annotations: list[Annotation] = Field(min_length=1)
    paralogs: str
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
