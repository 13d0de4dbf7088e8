"""The `train` stage: contrastive pretraining on isoform, paralog and ortholog pairs (or the reconstruction baseline).

Batches come from :class:`isoclr.sampling.PairSampler` (pairs by gene, ortholog and paralog
positives, crop and base masking, length-bucketed). Each pair's loss weight is
``train.pair_weights`` of its type, times the isoform-count weight with ``train.positive_weight``
(:func:`isoclr.losses.pair_weights`); the summary counts the pairs of each type. The loss sees the
projections of every rank (DDP under torchrun, negatives gathered with
gradients), with same-homology-group items masked out of the negatives.
Checkpoints every ``checkpoint_every`` steps hold model, optimiser, scheduler,
RNG and sampler state (:mod:`isoclr.checkpoint`); ``resume`` continues from the
last one and reaches the weights an uninterrupted run reaches (bit-identical on CPU).

``train.objective: reconstruction`` trains the same encoder on the same batches to predict the
masked bases from its per-position representation (:class:`isoclr.models.ReconstructionModel`,
:func:`isoclr.losses.masked_base_loss`); the `reconstruct` stage runs this loop with that objective, beside the
contrastive model. Under DDP each rank's reconstruction loss is over its own masked bases (DDP
averages the gradients).

Entry: :func:`run`, through the stage runner (``isoclr train``, one process or
one rank of ``torchrun --nproc_per_node=N -m isoclr.cli train OPTIONS``).
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from isoclr import distributed, metrics, provenance
from isoclr.artifacts import LAST_CHECKPOINT, Paths
from isoclr.atomic import write_atomic
from isoclr.checkpoint import load_training_state, save_training_state, set_rng_state, write_encoder
from isoclr.config import Config, TrainConfig
from isoclr.config.train import PAIR_TYPES
from isoclr.errors import IsoclrError
from isoclr.losses import LOSSES, MaskedBaseLoss, masked_base_accuracy, pair_weights
from isoclr.models import ContrastiveModel, build_model, count_parameters
from isoclr.sampling import Batch, PairSampler, StepBatches
from isoclr.schemas import GROUPS, TRANSCRIPTS
from isoclr.store import StoreError, TrackStore
from isoclr.tracks import CHANNELS

# The reported final loss is the mean over the last steps: one step's loss is noisy.
FINAL_LOSS_WINDOW = 10
LOG_COLUMNS = ("step", "loss", "lr", "samples_per_s")
# The reconstruction objective also logs the share of masked bases predicted right (chance: 0.25).
ACCURACY = "masked_accuracy"
# Views per gene: the two sides of a positive pair.
VIEWS = 2
# Transcript ids named in the message about a stale track store.
STALE_EXAMPLES = 5


class TrainingSetError(IsoclrError, ValueError):
    """The transcripts and groups tables do not make a training set (stale, or without negatives)."""


def read_training_set(transcripts_path: Path, groups_path: Path) -> pd.DataFrame:
    """Train-split transcripts with their gene and homology group (and the groups table's ``orthologs``, the
    partner gene ids, when it has them), in transcript-id order.

    Both tables are validated against their schemas; a groups table that names
    transcripts missing from the transcripts table is an error (stale input).
    """
    transcripts = TRANSCRIPTS.validate(pd.read_parquet(transcripts_path))
    groups = GROUPS.validate(pd.read_parquet(groups_path))
    missing = set(groups["transcript_id"]) - set(transcripts["transcript_id"])
    if missing:
        raise TrainingSetError(
            f"{groups_path}: {len(missing)} transcripts are not in {transcripts_path} "
            f"(e.g. {sorted(missing)[0]}); rerun the pairs stage"
        )
    # species and ortholog partners (gene ids) when the groups table carries them (multi-species pairs stage)
    extra = [c for c in ("species", "orthologs") if c in groups.columns and c not in transcripts.columns]
    table = transcripts.drop(columns=["gene_id", "gene_name"]).merge(
        groups[groups["split"] == "train"][["transcript_id", "gene_id", "homology_group", *extra]], on="transcript_id"
    )
    if table.empty:
        raise TrainingSetError(f"{groups_path}: no transcripts in the train split")
    if table["homology_group"].nunique() < 2:
        raise TrainingSetError(f"{groups_path}: the train split has one homology group, so no negatives")
    return table.sort_values("transcript_id", ignore_index=True)


def open_training_store(path: Path, table: pd.DataFrame) -> TrackStore:
    """The track store at ``path``, checked to hold every training transcript at its table length.

    Raises:
        StoreError: not a store, or a stale one (transcripts absent or of another length).
    """
    store = TrackStore(path)
    ids = table["transcript_id"]
    present = ids.isin(store.index["transcript_id"])
    if not present.all():
        missing = ids[~present].tolist()
        raise StoreError(
            f"{path}: {len(missing)} of {len(ids)} training transcripts are not in the track store "
            f"(e.g. {', '.join(missing[:STALE_EXAMPLES])}); it is stale: rerun `isoclr encode`"
        )
    stored = store.index.set_index("transcript_id")["length"].reindex(ids).to_numpy()
    differ = stored != table["seq"].str.len().to_numpy()
    if differ.any():
        changed = ids[differ].tolist()
        raise StoreError(
            f"{path}: {len(changed)} training transcripts have another length in the track store "
            f"(e.g. {', '.join(changed[:STALE_EXAMPLES])}); it is stale: rerun `isoclr encode`"
        )
    return store


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Learning-rate multiplier at ``step`` (0-based): linear warm-up, then cosine decay to 0."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def make_loss(cfg: TrainConfig) -> nn.Module:
    if cfg.objective == "reconstruction":
        return MaskedBaseLoss()
    return LOSSES[cfg.loss](cfg.temperature)


def log_columns(cfg: TrainConfig) -> tuple[str, ...]:
    """The step log's columns for ``cfg.objective``."""
    return LOG_COLUMNS + ((ACCURACY,) if cfg.objective == "reconstruction" else ())


def batch_loss(
    model: nn.Module,
    loss_fn: nn.Module,
    batch: Batch,
    weighted: bool = False,
    type_weights: Sequence[float] | None = None,
) -> Tensor:
    """Contrastive loss of one batch laid out as :class:`isoclr.sampling.Batch`; pairs weighted by
    :func:`~isoclr.losses.pair_weights` (``type_weights``: one per :data:`~isoclr.config.train.PAIR_TYPES`, times
    the isoform-count weight when ``weighted``).

    Under DDP the projections, groups and weights of all ranks are gathered first,
    so every rank computes the same loss over the global batch.
    """
    _, z = model(batch.x, batch.lengths)
    z1, z2 = z.float().chunk(VIEWS)
    groups = batch.groups.to(z.device)
    weights = pair_weights(batch.pair_types, batch.n_isoforms, type_weights, weighted)
    weights = weights.to(z.device) if weights is not None else None
    z1, z2, groups = distributed.gather(z1), distributed.gather(z2), distributed.gather(groups)
    weights = distributed.gather(weights) if weights is not None else None
    return loss_fn(z1, z2, groups, weights)


def reconstruction_batch_loss(model: nn.Module, loss_fn: nn.Module, batch: Batch) -> tuple[Tensor, Tensor]:
    """Masked-base loss and accuracy of one batch with ``targets`` (views of all pairs, as one set)."""
    if batch.targets is None:
        raise ValueError("the reconstruction objective needs batches with targets (PairSampler of that objective)")
    logits = model(batch.x, batch.lengths).float()
    return loss_fn(logits, batch.targets), masked_base_accuracy(logits.detach(), batch.targets)


def make_optimiser(model: nn.Module, cfg: TrainConfig):
    """AdamW with linear warm-up then cosine decay, stepped once per optimiser step."""
    optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda s: lr_factor(s, cfg.warmup_steps, cfg.steps))
    return optimiser, schedule


def _autocast(device: torch.device, cfg: TrainConfig):
    """bf16 autocast on GPU when configured; CPU always trains in fp32 (exact, deterministic)."""
    if device.type == "cuda" and cfg.precision == "bf16":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def compile_per_length(net: nn.Module, cfg: TrainConfig) -> nn.Module:
    """``torch.compile`` with one static graph per padded length.

    The masked max-pool (ceil mode) pins a graph to its length, so ``dynamic=True``
    only recompiled per length and, past dynamo's recompile limit, fell back to
    eager without a word. ``pad_multiple`` bounds the lengths (the config refuses
    more than :data:`~isoclr.config.MAX_COMPILED_LENGTHS`) and the limit is raised
    to that bound, so every length runs compiled.
    """
    dynamo = torch._dynamo.config
    limit = "recompile_limit" if hasattr(dynamo, "recompile_limit") else "cache_size_limit"
    setattr(dynamo, limit, max(getattr(dynamo, limit), cfg.padded_lengths))
    return torch.compile(net, dynamic=False)


def train_loop(
    model: ContrastiveModel | nn.Module,
    sampler: PairSampler,
    cfg: TrainConfig,
    progress: bool = False,
    on_step: Callable[[dict], None] | None = None,
    *,
    optimiser=None,
    schedule=None,
    start_step: int = 0,
    on_checkpoint: Callable[[int], None] | None = None,
    context: distributed.Context | None = None,
) -> list[dict]:
    """Run optimiser steps ``start_step .. cfg.steps - 1``; returns one log row (:func:`log_columns`) per step.

    ``on_step(row)`` is called once per optimiser step on rank 0 with step, loss,
    lr and samples_per_s (global samples, both views, over the step's wall time
    including waiting for data). ``on_checkpoint(next_step)`` is called on every
    rank after every ``cfg.checkpoint_every`` steps.
    """
    ctx = context or distributed.Context()
    model.to(ctx.device)
    if optimiser is None or schedule is None:
        optimiser, schedule = make_optimiser(model, cfg)
    net: nn.Module = DistributedDataParallel(model) if ctx.distributed else model
    if cfg.compile and ctx.device.type == "cuda":
        net = compile_per_length(net, cfg)
    loss_fn = make_loss(cfg)
    by_type = [cfg.pair_weights[t] for t in PAIR_TYPES]
    loader = DataLoader(
        StepBatches(sampler, cfg.steps),
        batch_size=None,
        sampler=range(start_step, cfg.steps),
        num_workers=cfg.loader_workers,
        pin_memory=ctx.device.type == "cuda",
    )
    net.train()
    rows: list[dict] = []
    bar = tqdm(total=cfg.steps, initial=start_step, desc="train", disable=not (progress and ctx.is_main), unit="step")
    start = time.perf_counter()
    for step, batch in zip(range(start_step, cfg.steps), loader, strict=True):
        batch = Batch(*(t.to(ctx.device, non_blocking=True) if t is not None else None for t in batch))
        extra = {}
        with _autocast(ctx.device, cfg):
            if cfg.objective == "reconstruction":
                loss, accuracy = reconstruction_batch_loss(net, loss_fn, batch)
                extra[ACCURACY] = float(accuracy)
            else:
                loss = batch_loss(net, loss_fn, batch, weighted=cfg.positive_weight, type_weights=by_type)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        lr = optimiser.param_groups[0]["lr"]
        optimiser.step()
        schedule.step()
        now = time.perf_counter()
        row = {
            "step": step,
            "loss": float(loss.detach()),
            "lr": lr,
            "samples_per_s": len(batch.x) * ctx.world_size / (now - start),
            **extra,
        }
        start = now
        rows.append(row)
        if ctx.is_main:
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.3f}", samples_s=f"{row['samples_per_s']:.0f}")
            if on_step is not None:
                on_step(row)
        due = cfg.checkpoint_every and ((step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps)
        if on_checkpoint is not None and due:
            on_checkpoint(step + 1)
    bar.close()
    return rows


@dataclass(frozen=True)
class TrainResult:
    """What a training run did; ``primary`` is False on the ranks > 0 of a torchrun job (they write nothing)."""

    steps: int
    final_loss: float | None
    first_loss: float | None
    seconds: float
    parameters: int
    out_dim: int
    resumed_from: int
    world_size: int
    objective: str = "contrastive"
    final_masked_accuracy: float | None = None  # reconstruction: mean over the last steps, as final_loss
    # Pairs sampled over the run (all steps, all ranks) by type (PAIR_TYPES), and how many were UTR/CDS swaps.
    pairs_by_type: dict[str, int] = field(default_factory=dict)
    utr_cds_swaps: int = 0
    primary: bool = True

    def as_dict(self) -> dict:
        """The run summary (``train.json``); the masked accuracy only for the reconstruction objective."""
        skip = {"primary"} | ({"final_masked_accuracy"} if self.objective != "reconstruction" else set())
        return {k: v for k, v in asdict(self).items() if k not in skip}

    def record(self, meter: metrics.StageRun) -> None:
        # The per-step reporter sets the loss of every step; a run with no step left (a resumed
        # finished run) reports its final loss instead.
        reported = meter.registry.get_sample_value("isoclr_train_loss") is not None
        if self.primary and self.final_loss is not None and not reported:
            meter.set("isoclr_train_loss", self.final_loss)
        has_accuracy = meter.registry.get_sample_value("isoclr_train_masked_accuracy") is not None
        if self.primary and self.final_masked_accuracy is not None and not has_accuracy:
            meter.set("isoclr_train_masked_accuracy", self.final_masked_accuracy)

    def summary(self) -> str:
        return json.dumps(self.as_dict(), indent=2) if self.primary else ""


def run(
    cfg: Config,
    paths: Paths,
    resume: bool = False,
    tracks: bool = True,
    *,
    progress: bool = True,
    on_step: Callable[[dict], None] | None = None,
) -> TrainResult:
    """Train the encoder on ``paths.transcripts`` and ``paths.groups``; write the model, step log and summary.

    Writes ``paths.model`` (:func:`isoclr.checkpoint.write_encoder`; its metadata records
    ``objective``), ``paths.train_log`` (:func:`log_columns`) and ``paths.train_summary``. Runs as
    one process, or as one rank of a torchrun job (rank 0 writes every file). A checkpoint goes to
    ``paths.checkpoints`` every ``train.checkpoint_every`` steps; with ``resume``, training continues
    from it (if any) and the log keeps the steps before it. With ``tracks`` the views are read from the memory-mapped
    store ``paths.tracks`` (of ``isoclr encode``) instead of encoded from the table: the same
    batches. ``on_step`` gets every log row on rank 0. The same config gives the same weights on CPU.
    """
    tc = cfg.train
    ctx = distributed.setup()
    table = read_training_set(Path(paths.transcripts), Path(paths.groups))
    random.seed(tc.seed)
    np.random.seed(tc.seed)
    torch.manual_seed(tc.seed)
    store = open_training_store(Path(paths.tracks), table) if tracks else None
    sampler = PairSampler(table, tc, seed=tc.seed, rank=ctx.rank, store=store)
    model = build_model(cfg.model, tc.objective, in_channels=len(CHANNELS))
    optimiser, schedule = make_optimiser(model, tc)
    n_params = count_parameters(model.encoder)

    checkpoint_path = Path(paths.checkpoints) / LAST_CHECKPOINT
    start_step, kept = 0, []
    if resume and checkpoint_path.is_file():
        state = load_training_state(checkpoint_path, cfg)
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        schedule.load_state_dict(state["schedule"])
        set_rng_state(state["rng"])
        start_step = int(state["next_step"])
        kept = state["log"] if "log" in state else _StepLog.read(paths.train_log, before=start_step)
    if ctx.is_main:
        print(
            f"encoder: {n_params:,} parameters, representation {model.encoder.out_dim}-d, {tc.objective} objective; "
            f"training on {len(table)} transcripts of {sampler.n_genes} genes, {tc.steps} steps, "
            f"{ctx.world_size} process(es) on {ctx.device}"
            + (f"; resuming at step {start_step} from {checkpoint_path}" if start_step else "")
        )

    log_path = Path(paths.train_log)
    start = time.perf_counter()
    try:
        with contextlib.ExitStack() as stack:
            log = stack.enter_context(_StepLog(log_path, kept, log_columns(tc))) if ctx.is_main else None
            report = metrics.training_reporter(cfg) if ctx.is_main else None  # Prometheus: pushed every N steps

            def step_done(row: dict) -> None:
                log.write(row)
                report(row)
                if on_step is not None:
                    on_step(row)

            def checkpoint(next_step: int) -> None:
                if ctx.is_main:
                    save_training_state(checkpoint_path, model, optimiser, schedule, sampler, next_step, cfg, log.rows)

            train_loop(
                model,
                sampler,
                tc,
                progress=progress,
                on_step=step_done,
                optimiser=optimiser,
                schedule=schedule,
                start_step=start_step,
                on_checkpoint=checkpoint,
                context=ctx,
            )
        run_shape = dict(
            steps=tc.steps,
            seconds=round(time.perf_counter() - start, 2),
            parameters=n_params,
            out_dim=model.encoder.out_dim,
            resumed_from=start_step,
            world_size=ctx.world_size,
            objective=tc.objective,
        )
        if not ctx.is_main:
            return TrainResult(**run_shape, final_loss=None, first_loss=None, primary=False)
        logged = pd.read_csv(log_path)
        losses = logged["loss"]
        final_loss = float(losses.tail(FINAL_LOSS_WINDOW).mean())
        accuracy = float(logged[ACCURACY].tail(FINAL_LOSS_WINDOW).mean()) if ACCURACY in logged else None
        model.cpu()
        write_encoder(
            paths.model,
            model.encoder,
            cfg.model,
            train_config=tc.model_dump(mode="json"),
            provenance=provenance.collect(),
            objective=tc.objective,
            final_loss=final_loss,
            **({"final_masked_accuracy": accuracy} if accuracy is not None else {}),
            parameters=n_params,
            out_dim=model.encoder.out_dim,
            world_size=ctx.world_size,
        )
        pairs_by_type, swaps = sampler.pair_type_counts(tc.steps, ctx.world_size)
        result = TrainResult(
            **run_shape,
            final_loss=final_loss,
            first_loss=float(losses.iloc[0]),
            final_masked_accuracy=accuracy,
            pairs_by_type=pairs_by_type,
            utr_cds_swaps=swaps,
        )
        write_atomic(Path(paths.train_summary), lambda p: p.write_text(json.dumps(result.as_dict(), indent=2) + "\n"))
        return result
    finally:
        distributed.teardown()


class _StepLog:
    """The per-step CSV (``columns``), flushed every row; it starts with the rows ``kept`` from before a resume.

    ``rows`` holds every row written so far (kept ones included), for the checkpoint.
    """

    def __init__(self, path: Path, kept: list[dict] = (), columns: tuple[str, ...] = LOG_COLUMNS) -> None:
        self.path = Path(path)
        self.rows = list(kept)
        self.columns = columns

    @staticmethod
    def read(path: Path, before: int) -> list[dict]:
        """The rows of an existing log before step ``before`` (checkpoints written without their log)."""
        if not Path(path).is_file():
            return []
        with Path(path).open(newline="") as fh:
            return [r for r in csv.DictReader(fh) if int(r["step"]) < before]

    def __enter__(self) -> _StepLog:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fh = self.path.open("w", newline="")
        self.writer = csv.DictWriter(self.fh, fieldnames=self.columns)
        self.writer.writeheader()
        self.writer.writerows(self.rows)
        return self

    def write(self, row: dict) -> None:
        self.writer.writerow(row)
        self.fh.flush()
        self.rows.append(row)

    def __exit__(self, *exc) -> None:
        self.fh.close()
