"""Contrastive training."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from isoclr.config.base import Strict

# Kinds of positive pair, by how the second view relates to the first (isoclr.sampling).
PairType = Literal["self", "isoform", "paralog", "ortholog"]
PAIR_TYPES: tuple[str, ...] = ("self", "isoform", "paralog", "ortholog")

# train.compile: the most padded lengths (each one a compile) a run may meet.
MAX_COMPILED_LENGTHS = 8


class TrainConfig(Strict):
    """Training: objective, batches, loss, optimiser, checkpoints and GPU options.

    ``objective`` is what the train stage's encoder learns; the reconstruct stage trains the same
    encoder with these settings and the objective ``reconstruction`` (the baseline arm).

    Under DDP ``batch_genes`` is per rank; the loss sees the ``world_size * batch_genes``
    pairs of all ranks (negatives gathered across ranks).
    """

    objective: Literal["contrastive", "reconstruction"] = "contrastive"
    steps: int = Field(150, gt=0)
    batch_genes: int = Field(32, ge=2)
    learning_rate: float = Field(2e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    warmup_steps: int = Field(10, ge=0)
    temperature: float = Field(0.1, gt=0)
    loss: Literal["dcl", "ntxent"] = "dcl"
    positive_weight: bool = False  # weight each pair by log(n_isoforms + 0.4) / 0.802 of its gene
    mask_prob: float = Field(0.15, ge=0, lt=1)
    paralog_share: float = Field(0.2, ge=0, le=1)
    # Share of pairs whose second view is an ortholog's transcript, for genes that have an ortholog (Orthrus: 0.5);
    # the rest fall back to paralog_share, then another isoform, then the transcript itself.
    ortholog_share: float = Field(0.5, ge=0, le=1)
    # Loss weight of each pair by its type (isoclr.sampling.PAIR_TYPES), times positive_weight when that is on.
    pair_weights: dict[PairType, float] = Field(default_factory=lambda: dict.fromkeys(PAIR_TYPES, 1.0))
    # Probability that an ortholog pair whose transcripts both have a CDS has its second view rebuilt as the first
    # transcript's UTRs around the partner's CDS (Orthrus's UTR/CDS swap); 0 = off.
    utr_cds_swap: float = Field(0.0, ge=0, le=1)
    max_length: int = Field(2048, gt=0)
    bucket_batches: int = Field(1, ge=1)  # batches drawn at once and sorted by length; 1 = no bucketing
    pad_multiple: int = Field(1, ge=1)  # round each batch's padded length up (fewer shapes for compile/cuDNN)
    grad_clip: float = Field(1.0, gt=0)
    seed: int = 0
    checkpoint_every: int = Field(50, ge=0)  # steps between resumable checkpoints; 0 = none
    loader_workers: int = Field(0, ge=0)  # DataLoader worker processes building batches
    precision: Literal["fp32", "bf16"] = "bf16"  # autocast dtype on GPU; CPU always runs fp32
    compile: bool = False  # torch.compile the model on GPU; ignored on CPU

    @property
    def padded_lengths(self) -> int:
        """How many padded batch lengths training can meet: views are at most ``max_length``, rounded up
        to a multiple of ``pad_multiple``."""
        return -(-self.max_length // self.pad_multiple)

    @model_validator(mode="after")
    def _weights_for_every_pair_type(self) -> TrainConfig:
        missing = [t for t in PAIR_TYPES if t not in self.pair_weights]
        if missing or any(w < 0 for w in self.pair_weights.values()):
            raise ValueError(
                f"train.pair_weights needs a weight >= 0 for each of {list(PAIR_TYPES)} (missing: {missing})"
            )
        return self

    @model_validator(mode="after")
    def _masks_to_reconstruct(self) -> TrainConfig:
        if self.objective == "reconstruction" and self.mask_prob == 0:
            raise ValueError("train.objective reconstruction predicts the masked bases: mask_prob must be above 0")
        return self

    @model_validator(mode="after")
    def _compiles_few_lengths(self) -> TrainConfig:
        # The encoder's masked max-pool pins a compiled graph to its padded length: every length
        # is a compile of its own (~30 s for small on an H100, benchmarks/gpu_train.py).
        if self.compile and self.padded_lengths > MAX_COMPILED_LENGTHS:
            raise ValueError(
                f"train.compile with max_length {self.max_length} and pad_multiple {self.pad_multiple} "
                f"compiles up to {self.padded_lengths} padded lengths; at most {MAX_COMPILED_LENGTHS} are "
                f"allowed: set pad_multiple >= {-(-self.max_length // MAX_COMPILED_LENGTHS)}"
            )
        return self
