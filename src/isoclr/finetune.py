"""The `finetune` stage: does pretraining help most when labels are scarce?

For each regression task named in ``finetune.tasks`` the pretrained encoder plus a small head is trained
end to end (:func:`isoclr.finetuning.fine_tune`) on shares of the train split, against the same
architecture from random weights. Both arms of a pair get the same split (the probe's split of that seed,
by group), the same train subset (nested: a smaller share is part of a larger one), the same head
initialisation, data order and budget, so their scores pair up seed by seed. Early stopping uses the val
split; Pearson r and MSE are scored on the test split. Fine-tuned weights are thrown away: this stage
measures, it does not ship a model.

Writes under ``paths.finetune``: finetune.json (per task and fraction, per arm the mean and 95% CI of
each metric, and the paired difference pretrained - scratch), per_seed.csv, plots/<task>.png (r and MSE
against the train fraction) and report.html (the table and the plots, self-contained).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from isoclr import finetune_report, schemas
from isoclr.artifacts import FINETUNE_PER_SEED, FINETUNE_REPORT, FINETUNE_SUMMARY, Paths
from isoclr.config import Config, ProbeTask
from isoclr.errors import IsoclrError
from isoclr.finetune_report import ARMS, DIFFERENCE, METRICS, PRETRAINED, SCRATCH
from isoclr.fitting import probe_splits
from isoclr.metrics import StageRun
from isoclr.scores import ci_key, finite_or_none
from isoclr.statistics import mean_ci, paired_difference, score

log = logging.getLogger(__name__)

PER_SEED_COLUMNS = [
    "task",
    "arm",
    "train_fraction",
    "seed",
    "n_train",
    "n_val",
    "n_test",
    "epochs",
    "best_epoch",
    "best_val_loss",
    "steps",
    "pearson_r",
    "spearman_r",
    "mse",
]
# Nested train subsets per seed come from this stream (one permutation of the train rows per seed).
_SUBSET_STREAM = 7907
_TRACK_COLUMNS = ("cds_start", "cds_end", "exon_ends")


class FinetuneError(IsoclrError, ValueError):
    """A task that cannot be fine-tuned as configured (no val rows to stop on, nothing left to fit)."""


@dataclass(frozen=True)
class FinetuneResult:
    """What the fine-tune stage measured; ``summary_data`` is finetune.json."""

    summary_data: dict
    table: str = field(repr=False)  # the Markdown table of summary()
    out_dir: Path

    def scores(self):
        """(task, arm, fraction, metric, mean) for every finite mean, the paired difference as arm ``DIFFERENCE``."""
        for task, entry in self.summary_data["tasks"].items():
            for fraction, arms in entry["fractions"].items():
                for arm, values in arms.items():
                    for metric in METRICS:
                        if values.get(metric) is not None:
                            yield task, arm, fraction, metric, values[metric]

    def record(self, meter: StageRun) -> None:
        """``isoclr_finetune_metric{task, arm, fraction, metric}``: the mean over seeds of every score."""
        for task, arm, fraction, metric, value in self.scores():
            meter.set("isoclr_finetune_metric", value, task=task, arm=arm, fraction=fraction, metric=metric)

    def flat_scores(self) -> dict[str, float]:
        """``{"<task>.<arm>.<fraction>.<metric>": mean}``, for a Kubeflow Metrics artifact."""
        return {f"{t}.{a}.{f}.{m}": v for t, a, f, m, v in self.scores()}

    def summary(self) -> str:
        return f"{self.table}\nreport: {self.out_dir / FINETUNE_REPORT}"


def nested_subsets(train_rows: np.ndarray, fractions: list[float], seed: int) -> dict[float, np.ndarray]:
    """Per fraction the train rows fitted: the first ``round(fraction * n)`` of one seeded permutation, so a
    smaller share is always part of a larger one (the curve then moves by the rows removed, not by redraws).
    Each subset is sorted; fraction 1 is every train row."""
    order = np.random.default_rng([_SUBSET_STREAM, seed]).permutation(np.asarray(train_rows))
    return {f: np.sort(order[: int(round(f * len(order)))]) for f in fractions}


def packed_rows(table: pd.DataFrame, store, max_length: int):
    """:class:`isoclr.finetuning.Rows` of the task's rows, each cropped to its last ``max_length`` nucleotides.

    Annotation rows with track columns read their packed bytes from the track ``store`` (the same bytes
    :func:`isoclr.tracks.pack` gives); other rows are packed here.
    """
    from isoclr import tracks
    from isoclr.finetuning import Rows
    from isoclr.store import StoreError

    use_store = store is not None and "transcript_id" in table.columns and set(_TRACK_COLUMNS) <= set(table.columns)
    packed = []
    for row in table.itertuples(index=False):
        tid = getattr(row, "transcript_id", None)
        if use_store and isinstance(tid, str) and tid in store:
            if store.length(tid) != len(row.seq):
                raise StoreError(
                    f"{tid}: {len(row.seq)} nt in the table, {store.length(tid)} in {store.path}: rerun encode"
                )
            data = store.packed(tid)
        else:
            data = tracks.pack(row.seq, *(getattr(row, c, None) for c in _TRACK_COLUMNS))
        packed.append(np.array(data[-max_length:], dtype=np.uint8))
    return Rows(packed)


def arm_encoder(arm: str, pretrained, cfg: Config, seed: int):
    """The encoder an arm starts from: a copy of the pretrained one, or the architecture from random weights
    seeded by ``train.seed + seed`` (the seed the pair's head gets), so each split has its own random start."""
    from isoclr.embed import random_encoder

    if arm == PRETRAINED:
        return copy.deepcopy(pretrained)
    return random_encoder(cfg.model, seed=cfg.train.seed + seed)


def _capped(task: ProbeTask, max_rows: int | str) -> ProbeTask:
    """The task with ``finetune.max_rows`` as its row cap where that is lower ("all": the task's own)."""
    limits = [n for n in (task.max_rows, max_rows) if isinstance(n, int)]
    return task.model_copy(update={"max_rows": min(limits) if limits else None})


def finetune_task(
    cfg: Config, task: ProbeTask, table: pd.DataFrame, rows, pretrained, device, progress: bool = False
) -> tuple[list, dict]:
    """Every (seed, fraction, arm) fit of one task: per-seed rows (:data:`PER_SEED_COLUMNS`), skipped fractions."""
    from tqdm import tqdm

    from isoclr.finetuning import build_head, fine_tune

    ft = cfg.finetune
    bar = tqdm(total=ft.seeds * len(ft.train_fractions) * len(ARMS), desc=f"finetune {task.name}", disable=not progress)
    y, groups = table["target"].to_numpy(dtype=np.float64), table["group"].to_numpy()
    splits = probe_splits(groups, cfg.probe.model_copy(update={"seeds": ft.seeds}))
    per_seed, skipped = [], {}
    for seed, split in enumerate(splits):
        train, val, test = (np.flatnonzero(split == s) for s in schemas.SPLITS)
        if len(val) == 0 or len(test) == 0:
            raise FinetuneError(
                f"fine-tune task {task.name!r}, seed {seed}: {len(val)} val and {len(test)} test rows "
                f"({len(np.unique(groups))} groups); early stopping needs val rows (probe.fractions.val > 0)"
            )
        for fraction, fit in nested_subsets(train, ft.train_fractions, seed).items():
            if len(fit) < ft.min_train_rows:
                skipped.setdefault(fraction, f"{len(fit)} train rows < min_train_rows {ft.min_train_rows}")
                bar.update(len(ARMS))
                continue
            for arm in ARMS:
                encoder = arm_encoder(arm, pretrained, cfg, seed)
                head = build_head(encoder.out_dim, ft.head_hidden, seed=cfg.train.seed + seed)
                done = fine_tune(encoder, head, rows, y, fit, val, test, ft, seed=seed, device=device)
                per_seed.append(
                    {
                        "task": task.name,
                        "arm": arm,
                        "train_fraction": fraction,
                        "seed": seed,
                        "n_train": len(fit),
                        "n_val": len(val),
                        "n_test": len(test),
                        "epochs": done.epochs,
                        "best_epoch": done.best_epoch,
                        "best_val_loss": done.best_val_loss,
                        "steps": done.steps,
                        **score("regression", y[test], done.predictions),
                    }
                )
                bar.update(1)
                bar.set_postfix(seed=seed, fraction=fraction, arm=arm)
    bar.close()
    if not per_seed:
        raise FinetuneError(f"fine-tune task {task.name!r}: every train fraction was skipped: {skipped}")
    return per_seed, skipped


def summarise(per_seed: pd.DataFrame) -> dict:
    """{fraction: {arm: {metric, metric_ci95, n_train, seeds, epochs}, DIFFERENCE: paired}} of one task."""
    out: dict = {}
    for fraction, rows in per_seed.groupby("train_fraction", sort=False):
        entry: dict = {}
        by_arm = {arm: rows[rows["arm"] == arm].set_index("seed").sort_index() for arm in ARMS}
        for arm, arm_rows in by_arm.items():
            values: dict = {}
            for metric in METRICS:
                mean, lo, hi = mean_ci(arm_rows[metric])
                values[metric] = finite_or_none(mean)
                values[ci_key(metric)] = [finite_or_none(lo), finite_or_none(hi)]
            values.update(
                n_train=float(arm_rows["n_train"].mean()),
                seeds=len(arm_rows),
                epochs=float(arm_rows["epochs"].mean()),
                best_epoch=float(arm_rows["best_epoch"].mean()),
            )
            entry[arm] = values
        paired: dict = {}
        a, b = by_arm[PRETRAINED], by_arm[SCRATCH]
        for metric in METRICS:
            mean, lo, hi = paired_difference(a[metric], b.loc[a.index, metric])
            paired[metric] = finite_or_none(mean)
            paired[ci_key(metric)] = [finite_or_none(lo), finite_or_none(hi)]
        paired.update(seeds=len(a), paired=True)
        entry[DIFFERENCE] = paired
        out[str(float(fraction))] = entry
    return out


def _device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@contextlib.contextmanager
def _cpu_threads(threads: int | str, device) -> Iterator[None]:
    """torch's intra-op threads set to ``threads`` on CPU for the block, restored afterwards."""
    import torch

    before = torch.get_num_threads()
    if isinstance(threads, int) and device.type == "cpu":
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run(cfg: Config, paths: Paths, *, tracks: bool = True, progress: bool = True) -> FinetuneResult:
    """Fine-tune the model of ``paths.model`` and a scratch twin on every task of ``finetune.tasks``.

    Reads ``paths.transcripts``, ``paths.groups``, ``paths.model``, the tasks' label files under
    ``paths.data_dir`` (default ``data.dir``) and, with ``tracks``, the track store ``paths.tracks``.
    Runs on the GPU when there is one (fp32), else on CPU, where a run repeats bit for bit; ``progress``
    shows a bar per task.
    """
    from isoclr.embed import load_encoder
    from isoclr.store import TrackStore
    from isoclr.tasks import task_table

    start = time.perf_counter()
    ft = cfg.finetune
    store = TrackStore(Path(paths.tracks)) if tracks else None
    data_root = Path(paths.data_dir if paths.data_dir is not None else cfg.data.dir)
    transcripts = schemas.TRANSCRIPTS.validate(pd.read_parquet(paths.transcripts))
    groups = schemas.GROUPS.validate(pd.read_parquet(paths.groups))
    pretrained = load_encoder(Path(paths.model))
    device = _device()
    declared = {t.name: t for t in cfg.probe.tasks}
    out_dir = Path(paths.finetune)
    out_dir.mkdir(parents=True, exist_ok=True)

    tasks: dict = {}
    per_seed: list[dict] = []
    for name in ft.tasks:
        task = _capped(declared[name], ft.max_rows)
        table, notes = task_table(task, data_root, transcripts, groups)
        rows = packed_rows(table, store, ft.max_length)
        cropped = int((table["seq"].str.len() > ft.max_length).sum())
        log.info("finetune %s: %d rows (%d cropped to %d nt) on %s", name, len(table), cropped, ft.max_length, device)
        with _cpu_threads(ft.cpu_threads, device):
            task_rows, skipped = finetune_task(cfg, task, table, rows, pretrained, device, progress)
        per_seed += task_rows
        tasks[name] = {
            "n": notes["n"],
            "n_groups": notes["n_groups"],
            "split_kind": notes["split_kind"],
            "tracks": notes["tracks"],
            "cropped_to_max_length": cropped,
            "skipped_fractions": {str(f): reason for f, reason in skipped.items()},
            "fractions": summarise(pd.DataFrame(task_rows)),
        }
    per_seed_table = pd.DataFrame(per_seed, columns=PER_SEED_COLUMNS)
    data = {
        "tasks": tasks,
        "arms": {
            PRETRAINED: str(paths.model),
            SCRATCH: f"random init, seed train.seed + split seed ({cfg.train.seed} + s)",
        },
        "device": str(device),
        "seconds": round(time.perf_counter() - start, 1),
        "settings": ft.model_dump(mode="json"),
    }
    (out_dir / FINETUNE_SUMMARY).write_text(json.dumps(data, indent=2) + "\n")
    per_seed_table.to_csv(out_dir / FINETUNE_PER_SEED, index=False)
    table_md = finetune_report.write_report(data, out_dir)
    return FinetuneResult(summary_data=data, table=table_md, out_dir=out_dir)
