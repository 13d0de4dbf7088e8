"""Probe tasks (label sets declared as data) and the gate's rules over their scores."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from isoclr.config.base import Strict
from isoclr.config.data import SplitFractions


class ProbeTask(Strict):
    """A label set declared as data: adding a task needs no code.

    ``join`` says how ``id_column`` finds the sequence to embed: ``transcript_id``
    and ``gene_id`` (Ensembl versions ignored) and ``gene_name`` (symbol) pick an
    annotation transcript (for a gene, the longest isoform); ``sequence`` means the
    label file carries the sequence itself (a 50-nt UTR, a 3'UTR fragment), whose
    CDS and splice tracks are then empty. ``source: annotation`` reads labels from a
    column of the validated transcripts table (e.g. ``biotype``) instead of a file.

    ``type: multilabel`` has several 0/1 labels per row, one logistic probe each:
    ``source: go`` takes them from the GO tables under ``data.go`` (the ``n_terms``
    most common terms of ``ontology`` at ``level`` below the root held by
    ``min_share``..``max_share`` of the labelled genes, :func:`isoclr.go_terms.select_terms`),
    joined by gene; a label file names its 0/1 columns in ``labels``.
    """

    name: str
    source: Literal["file", "annotation", "go"] = "file"
    file: str | None = None
    sep: str = ","
    header: list[str] | None = None  # column names for a file without a header row
    join: Literal["transcript_id", "gene_id", "gene_name", "sequence"]
    id_column: str | None = None  # not for source go (genes are the ids)
    target: str | None = None  # not for multilabel tasks
    type: Literal["regression", "classification", "multilabel"] = "regression"
    # classification: values of ``target`` that are the positive class, and those that are
    # the negative class (default: every other value); rows in neither are dropped and counted.
    positive: list[str] | None = None
    negative: list[str] | None = None
    group_by: str = "homology"  # homology | none (random split) | prefix<N> | a column of the label file
    # annotation: CDS / splice tracks as the annotation has them; sequence: left empty, so a
    # label the annotation gives away (a CDS means coding) cannot leak through the tracks.
    tracks: Literal["annotation", "sequence"] = "annotation"
    max_rows: int | None = Field(None, gt=0)
    about: str | None = None  # one line for the report: what the task measures and why it is here
    # A join that leaves fewer rows than this fails, naming the first unmatched ids.
    min_rows: int = Field(1, ge=1)
    # multilabel from a label file: the 0/1 columns, one probe each
    labels: list[str] | None = Field(None, min_length=1)
    # source go: which terms (see isoclr.go_terms.select_terms)
    ontology: Literal["MF", "BP", "CC"] = "MF"
    n_terms: int = Field(10, ge=1)
    level: int = Field(2, ge=1)
    min_share: float = Field(0.01, ge=0, le=1)
    max_share: float = Field(0.5, ge=0, le=1)
    drop_iea: bool = False  # drop electronic (IEA) annotations before propagation

    @model_validator(mode="after")
    def _consistent(self) -> ProbeTask:
        self._consistent_multilabel()
        if self.source != "go" and not self.id_column:
            raise ValueError(f"probe task {self.name!r}: needs an id_column")
        if self.type != "multilabel" and not self.target:
            raise ValueError(f"probe task {self.name!r}: a {self.type} task needs a target column")
        if self.source == "file" and not self.file:
            raise ValueError(f"probe task {self.name!r}: source file needs a file")
        if self.source == "annotation" and (self.file or self.join != "transcript_id"):
            raise ValueError(f"probe task {self.name!r}: source annotation takes no file and joins by transcript_id")
        if self.type == "classification" and not self.positive:
            raise ValueError(f"probe task {self.name!r}: a classification task needs the positive target values")
        if self.type == "regression" and (self.positive or self.negative):
            raise ValueError(f"probe task {self.name!r}: positive/negative are for classification tasks")
        if self.group_by == "homology" and self.join == "sequence":
            raise ValueError(
                f"probe task {self.name!r}: group_by homology needs an annotation join; "
                "use none, prefix<N> or a column of the label file"
            )
        return self

    def _consistent_multilabel(self) -> None:
        if self.source == "go" and (self.type != "multilabel" or self.file or self.join != "gene_id"):
            raise ValueError(
                f"probe task {self.name!r}: source go is a multilabel task without a file, joined by gene_id"
            )
        if self.source == "go" and self.group_by not in ("homology", "none"):
            raise ValueError(f"probe task {self.name!r}: source go groups by homology or none (no label file)")
        if self.source == "go" and self.min_share > self.max_share:
            raise ValueError(f"probe task {self.name!r}: min_share {self.min_share} > max_share {self.max_share}")
        if self.type == "multilabel" and self.source == "file" and not self.labels:
            raise ValueError(f"probe task {self.name!r}: a multilabel file task names its 0/1 columns in labels")
        if self.type == "multilabel" and (self.source == "annotation" or self.positive or self.negative or self.target):
            raise ValueError(
                f"probe task {self.name!r}: a multilabel task reads GO or the labels columns of a file "
                "(no target, positive or negative)"
            )
        if self.labels and self.type != "multilabel":
            raise ValueError(f"probe task {self.name!r}: labels columns are for multilabel tasks")


REGRESSION_METRICS = ("pearson_r", "spearman_r", "mse")
CLASSIFICATION_METRICS = ("auroc", "auprc")
# The metric a task is summarised by (curves, plots).
# Multilabel tasks: the macro mean over the terms scored (per-term values beside it).
PRIMARY_METRIC = {"regression": "pearson_r", "classification": "auroc", "multilabel": "auroc"}
# Metrics where larger is better: the ones a gate can hold a model to.
GATEABLE_METRICS = Literal["pearson_r", "spearman_r", "auroc", "auprc"]


class ProbeConfig(Strict):
    seeds: int = Field(10, ge=2)
    # Ridge penalty grid (logistic regression uses C = 1 / alpha). Features are standardised,
    # so the useful penalty grows with the number of rows: see params.yaml for the range.
    alphas: list[float] = Field([10.0**e for e in range(-4, 6)], min_length=1)
    fractions: SplitFractions = SplitFractions()
    # Low-data curve: shares of the train split used to fit (1 = all of it).
    train_fractions: list[float] = Field([1.0, 0.1, 0.01, 0.005], min_length=1)
    min_train_rows: int = Field(20, ge=2)  # a low-data point with fewer train rows is skipped (and reported)
    kmer_k: int = Field(4, ge=1, le=8)
    embed_batch_size: int = Field(64, gt=0)
    compare_champion: bool = True  # also probe the registry's champion on the same splits (paired)
    tasks: list[ProbeTask] = Field(min_length=1)

    @field_validator("tasks")
    @classmethod
    def _unique_names(cls, tasks: list[ProbeTask]) -> list[ProbeTask]:
        names = [t.name for t in tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"probe task names must be unique: {names}")
        return tasks

    @field_validator("alphas")
    @classmethod
    def _positive_alphas(cls, alphas: list[float]) -> list[float]:
        if any(a <= 0 for a in alphas):
            raise ValueError(f"probe alphas must be positive: {alphas}")
        return sorted(alphas)

    @field_validator("train_fractions")
    @classmethod
    def _fractions(cls, fractions: list[float]) -> list[float]:
        if any(not 0 < f <= 1 for f in fractions) or 1.0 not in fractions:
            raise ValueError(f"train_fractions must lie in (0, 1] and include 1: {fractions}")
        return sorted(set(fractions), reverse=True)


class GateRule(Strict):
    task: str
    metric: GATEABLE_METRICS = "pearson_r"
    min: float


class GateConfig(Strict):
    rules: list[GateRule] = Field(min_length=1)
    # The candidate may fall at most this far below the champion (mean paired difference over the
    # probe seeds, same splits), in the rule's metric.
    max_regression: float = Field(0.02, ge=0)
    # The candidate must beat the same architecture randomly initialised by more than this
    # (mean paired difference over the probe seeds, same splits).
    min_gain_over_random_init: float = 0.0
