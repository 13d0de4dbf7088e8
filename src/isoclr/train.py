"""The `train` stage: contrastive pretraining on isoform and paralog pairs.

Each step samples ``batch_genes`` genes of the train split and two views per
gene: two distinct isoforms (a single-isoform gene pairs with itself), or, with
probability ``paralog_share``, an isoform of another gene of the same homology
group as the second view. Views are cropped to a random window of at most
``max_length`` nt, a share ``mask_prob`` of positions is masked to 0.25 in the
base channels, and the batch is padded to its longest view. Items of the same
homology group are masked out of each other's negatives in the loss.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from tqdm import tqdm

from isoclr import __version__, provenance, tracks
from isoclr.atomic import write_atomic
from isoclr.config import Config, TrainConfig
from isoclr.losses import LOSSES
from isoclr.models import ContrastiveModel, count_parameters
from isoclr.schemas import GROUPS, TRANSCRIPTS

# The reported final loss is the mean over the last steps: one step's loss is noisy.
FINAL_LOSS_WINDOW = 10
LOG_COLUMNS = ("step", "loss", "lr", "samples_per_s")
# Views per gene: the two sides of a positive pair.
VIEWS = 2


def read_training_set(transcripts_path: Path, groups_path: Path) -> pd.DataFrame:
    """Train-split transcripts with their gene and homology group, in transcript-id order.

    Both tables are validated against their schemas; a groups table that names
    transcripts missing from the transcripts table is an error (stale input).
    """
    transcripts = TRANSCRIPTS.validate(pd.read_parquet(transcripts_path))
    groups = GROUPS.validate(pd.read_parquet(groups_path))
    missing = set(groups["transcript_id"]) - set(transcripts["transcript_id"])
    if missing:
        raise ValueError(
            f"{groups_path}: {len(missing)} transcripts are not in {transcripts_path} "
            f"(e.g. {sorted(missing)[0]}); rerun the pairs stage"
        )
    table = transcripts.drop(columns=["gene_id", "gene_name"]).merge(
        groups[groups["split"] == "train"][["transcript_id", "gene_id", "homology_group"]], on="transcript_id"
    )
    if table.empty:
        raise ValueError(f"{groups_path}: no transcripts in the train split")
    if table["homology_group"].nunique() < 2:
        raise ValueError(f"{groups_path}: the train split has one homology group, so no negatives")
    return table.sort_values("transcript_id", ignore_index=True)


def mask_bases(track: np.ndarray, mask_prob: float, rng: np.random.Generator) -> np.ndarray:
    """A copy of ``track`` (channels, length) with a share ``mask_prob`` of positions set to
    the uniform base (1 / number of bases) in the base channels; CDS and splice tracks kept."""
    bases = [tracks.CHANNELS.index(base) for base in tracks.BASES]
    out = track.copy()
    masked = rng.random(track.shape[1]) < mask_prob
    out[np.ix_(bases, np.flatnonzero(masked))] = 1.0 / len(bases)
    return out


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Learning-rate multiplier at ``step`` (0-based): linear warm-up, then cosine decay to 0."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


class PairSampler:
    """Draws augmented batches of positive pairs from the train-split table.

    Tracks are encoded once per transcript and cached; every random choice
    comes from ``rng`` so a seed fixes the whole stream.
    """

    def __init__(self, table: pd.DataFrame, cfg: TrainConfig, rng: np.random.Generator) -> None:
        self.table = table.reset_index(drop=True)
        self.cfg = cfg
        self.rng = rng
        gene_codes, gene_ids = pd.factorize(self.table["gene_id"], sort=True)
        group_codes, _ = pd.factorize(self.table["homology_group"], sort=True)
        # isoforms (row indices) of each gene, the group of each gene, the genes of each group
        self.isoforms = [np.flatnonzero(gene_codes == g) for g in range(len(gene_ids))]
        self.gene_group = np.array([group_codes[rows[0]] for rows in self.isoforms])
        self.group_genes = [np.flatnonzero(self.gene_group == k) for k in range(group_codes.max() + 1)]
        self._tracks: dict[int, np.ndarray] = {}

    @property
    def n_genes(self) -> int:
        return len(self.isoforms)

    def track(self, row: int) -> np.ndarray:
        """(channels, length) tracks of one transcript (cached)."""
        if row not in self._tracks:
            self._tracks[row] = tracks.encode_row(self.table.iloc[row])
        return self._tracks[row]

    def pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Row indices of the first and second view, and the homology group, of ``batch_genes`` pairs."""
        genes = self.rng.choice(self.n_genes, self.cfg.batch_genes, replace=self.n_genes < self.cfg.batch_genes)
        first, second = [], []
        for gene in genes:
            isoforms = self.isoforms[gene]
            a, b = (self.rng.choice(isoforms, 2, replace=False) if len(isoforms) > 1 else (isoforms[0],) * 2)
            paralogs = self.group_genes[self.gene_group[gene]]
            paralogs = paralogs[paralogs != gene]
            if len(paralogs) and self.rng.random() < self.cfg.paralog_share:
                b = self.rng.choice(self.isoforms[self.rng.choice(paralogs)])
            first.append(a)
            second.append(b)
        return np.array(first), np.array(second), self.gene_group[genes]

    def view(self, row: int) -> np.ndarray:
        """One augmented view: random crop to ``max_length``, then base masking."""
        cropped = tracks.crop(self.track(row), self.cfg.max_length, self.rng)
        return mask_bases(cropped, self.cfg.mask_prob, self.rng)

    def sample(self) -> tuple[Tensor, Tensor, Tensor]:
        """x (2 * batch_genes, channels, longest view), lengths (2 * batch_genes,), groups (batch_genes,).

        Rows 0..batch_genes-1 are the first views, the rest the second views in the same order.
        """
        first, second, groups = self.pairs()
        x, lengths = tracks.batch([self.view(r) for r in np.concatenate([first, second])])
        return x, lengths, torch.as_tensor(groups, dtype=torch.int64)


def make_loss(cfg: TrainConfig) -> nn.Module:
    return LOSSES[cfg.loss](cfg.temperature)


def batch_loss(model: ContrastiveModel, loss_fn: nn.Module, x: Tensor, lengths: Tensor, groups: Tensor) -> Tensor:
    """Contrastive loss of one batch laid out as :meth:`PairSampler.sample` returns it."""
    _, z = model(x, lengths)
    z1, z2 = z.chunk(VIEWS)
    return loss_fn(z1, z2, groups)


def train_loop(
    model: ContrastiveModel,
    sampler: PairSampler,
    cfg: TrainConfig,
    progress: bool = False,
    on_step: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Run ``cfg.steps`` optimiser steps; returns one log row (``LOG_COLUMNS``) per step."""
    loss_fn = make_loss(cfg)
    optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: lr_factor(s, cfg.warmup_steps, cfg.steps))
    model.train()
    rows: list[dict] = []
    bar = tqdm(range(cfg.steps), desc="train", disable=not progress, unit="step")
    for step in bar:
        start = time.perf_counter()
        x, lengths, groups = sampler.sample()
        loss = batch_loss(model, loss_fn, x, lengths, groups)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        lr = optimiser.param_groups[0]["lr"]
        optimiser.step()
        schedule.step()
        row = {
            "step": step,
            "loss": float(loss.detach()),
            "lr": lr,
            "samples_per_s": len(x) / (time.perf_counter() - start),
        }
        rows.append(row)
        bar.set_postfix(loss=f"{row['loss']:.3f}", samples_s=f"{row['samples_per_s']:.0f}")
        if on_step is not None:
            on_step(row)
    return rows


def train(
    cfg: Config,
    transcripts_path: Path,
    groups_path: Path,
    model_dir: Path,
    log_path: Path,
    progress: bool = True,
) -> dict:
    """Train the encoder; write ``model_dir/encoder.pt``, ``model_dir/meta.json`` and the step log CSV.

    The same config gives the same weights on CPU (torch and numpy are seeded
    from ``train.seed``). Returns steps, final_loss, seconds, parameters, out_dim.
    """
    tc = cfg.train
    table = read_training_set(Path(transcripts_path), Path(groups_path))
    torch.manual_seed(tc.seed)
    sampler = PairSampler(table, tc, np.random.default_rng(tc.seed))
    model = ContrastiveModel(cfg.model, in_channels=len(tracks.CHANNELS))
    n_params = count_parameters(model.encoder)
    print(
        f"encoder: {n_params:,} parameters, representation {model.encoder.out_dim}-d; "
        f"training on {len(table)} transcripts of {sampler.n_genes} genes, {tc.steps} steps"
    )

    model_dir = Path(model_dir)
    log_path = Path(log_path)
    model_dir.mkdir(parents=True, exist_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with log_path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=LOG_COLUMNS)
        writer.writeheader()

        def log(row: dict) -> None:
            writer.writerow(row)
            fh.flush()

        rows = train_loop(model, sampler, tc, progress=progress, on_step=log)
    seconds = time.perf_counter() - start
    final_loss = float(np.mean([r["loss"] for r in rows[-FINAL_LOSS_WINDOW:]]))

    meta = {
        "model_config": cfg.model.model_dump(mode="json"),
        "channels": list(tracks.CHANNELS),
        "isoclr_version": __version__,
        "train_config": tc.model_dump(mode="json"),
        "provenance": provenance.collect(),
        "final_loss": final_loss,
        "parameters": n_params,
        "out_dim": model.encoder.out_dim,
    }
    checkpoint = {"state_dict": model.encoder.state_dict(), **meta}
    write_atomic(model_dir / "encoder.pt", lambda p: torch.save(checkpoint, p))
    write_atomic(model_dir / "meta.json", lambda p: p.write_text(json.dumps(meta, indent=2) + "\n"))
    return {
        "steps": tc.steps,
        "final_loss": final_loss,
        "first_loss": rows[0]["loss"],
        "seconds": round(seconds, 2),
        "parameters": n_params,
        "out_dim": model.encoder.out_dim,
    }
