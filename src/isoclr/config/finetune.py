"""Fine-tuning by train fraction: the pretrained encoder against the same network from random weights."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt, field_validator

from isoclr.config.base import Strict


class FinetuneConfig(Strict):
    """The fine-tune stage: encoder + small head trained end to end on regression tasks of ``probe.tasks``.

    Both arms (the pretrained encoder and the same architecture from random weights) get the same
    budget, splits (the probe's, by group), train subsets and seeds; each fit stops early on the val split.
    """

    tasks: list[str] = Field(["halflife", "mrl"], min_length=1)  # names of regression tasks under probe.tasks
    # Shares of each seed's train split fitted; the subsets are nested (a smaller share is part of a larger one).
    train_fractions: list[float] = Field([1.0, 0.3, 0.1, 0.03], min_length=1)
    seeds: int = Field(3, ge=2)  # splits (the probe's seeds 0 .. seeds-1); one fit per arm and fraction on each
    max_epochs: int = Field(8, gt=0)
    max_steps: int = Field(400, gt=0)  # optimiser steps per fit at most, whatever the epochs
    patience: int = Field(2, gt=0)  # epochs without a better val loss before stopping (the best epoch is kept)
    batch_size: int = Field(32, gt=0)
    encoder_learning_rate: float = Field(5e-4, gt=0)
    head_learning_rate: float = Field(2e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    grad_clip: float = Field(1.0, gt=0)
    head_hidden: int = Field(64, gt=0)  # the head: Linear(out_dim, head_hidden), GELU, Linear(head_hidden, 1)
    # Rows per task at most (a fixed subsample, besides the task's own max_rows); "all" for no cap. A word, not
    # null: Config.to_dict() drops nulls (kfp takes none), which would bring back the default.
    max_rows: PositiveInt | Literal["all"] = 300
    min_train_rows: int = Field(20, ge=2)  # a fraction leaving fewer train rows is skipped and reported
    max_length: int = Field(1024, gt=0)  # longer transcripts keep their 3' end (3'UTR, stop codon) only
    cpu_threads: PositiveInt | Literal["auto"] = 1  # torch threads on CPU while fine-tuning ("auto": torch's)

    @field_validator("tasks")
    @classmethod
    def _unique(cls, tasks: list[str]) -> list[str]:
        if len(set(tasks)) != len(tasks):
            raise ValueError(f"finetune.tasks must be unique: {tasks}")
        return tasks

    @field_validator("train_fractions")
    @classmethod
    def _fractions(cls, fractions: list[float]) -> list[float]:
        if any(not 0 < f <= 1 for f in fractions) or 1.0 not in fractions:
            raise ValueError(f"finetune.train_fractions must lie in (0, 1] and include 1: {fractions}")
        return sorted(set(fractions), reverse=True)
