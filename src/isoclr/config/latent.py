"""The latent stage: kNN label agreement and t-SNE / UMAP maps of frozen embeddings, model vs random init."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from isoclr.config.base import Strict

# Label sets the latent stage knows: the GO root terms of one ontology (multilabel), the homology
# group (paralog family) and the annotation's biotype.
LATENT_LABELS = ("go_bp", "go_mf", "go_cc", "family", "biotype")
LatentLabel = Literal["go_bp", "go_mf", "go_cc", "family", "biotype"]


class GoLevels(Strict):
    """The GO level (is_a steps below the root) whose terms label each ontology. CC's level 1 has two terms in
    use ("cellular anatomical entity", held by nearly every gene, and "protein-containing complex"): level 2 is the
    first that tells genes apart."""

    go_bp: int = Field(1, ge=1)
    go_mf: int = Field(1, ge=1)
    go_cc: int = Field(2, ge=1)


class LatentConfig(Strict):
    """What the latent stage embeds, how it scores neighbourhoods and which maps it draws.

    The trained encoder and the same architecture randomly initialised at each of
    ``random_seeds`` embed the same ``max_points`` annotation transcripts (a seeded
    subsample). Agreement is paired over ``folds`` disjoint folds of rows; fold r uses
    random seed r mod len(random_seeds), so the CI covers rows and random inits.
    """

    k: int = Field(10, ge=1)  # neighbours per row
    random_seeds: list[int] = Field([0, 1, 2, 3, 4], min_length=1)
    folds: int = Field(5, ge=2)
    max_points: int = Field(1000, ge=10)  # rows embedded and mapped at most (seeded subsample beyond)
    sample_seed: int = 0  # the subsample, the folds and the map layouts
    labels: list[LatentLabel] = Field(list(LATENT_LABELS), min_length=1)
    measure: Literal["jaccard", "any"] = "jaccard"  # GO term-set similarity (isoclr.neighbours)
    go_level: GoLevels = GoLevels()  # per ontology: GO terms this many is_a steps below the root
    go_top_terms: int = Field(10, ge=1)  # the most common terms at that level are the labels
    go_drop_iea: bool = False  # leave out electronic (IEA) annotations
    family_min_genes: int = Field(2, ge=2)  # families with fewer genes have no neighbour to agree with
    methods: list[Literal["tsne", "umap"]] = Field(["tsne", "umap"])
    max_categories: int = Field(10, ge=1)  # colours per map; the rest are "other"
    embed_batch_size: int = Field(64, gt=0)
    threads: int = Field(1, ge=1)  # embedding (torch) and t-SNE threads; more spin on a busy machine

    @field_validator("labels", "methods")
    @classmethod
    def _unique(cls, values: list[str]) -> list[str]:
        if len(set(values)) != len(values):
            raise ValueError(f"entries must be unique: {values}")
        return values

    @field_validator("random_seeds")
    @classmethod
    def _unique_seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"random_seeds must be unique: {seeds}")
        return seeds

    @model_validator(mode="after")
    def _every_seed_used(self) -> LatentConfig:
        if len(self.random_seeds) > self.folds:
            raise ValueError(
                f"{len(self.random_seeds)} random_seeds for {self.folds} folds: fold r uses seed r mod "
                "len(random_seeds), so some seeds would never be used"
            )
        return self
