"""The `probe` stage: linear probes on frozen embeddings, beside baselines.

Every feature set — the trained encoder, the same encoder trained with the
reconstruction objective (the reconstruct stage), the same architecture randomly
initialised, k-mer frequencies and, when there is one, the registry's champion —
is probed on each label set (:mod:`isoclr.tasks`) with the same splits and the
same low-data subsets (:mod:`isoclr.fitting`), so their scores pair up seed by
seed. The scores go to metrics.json (:mod:`isoclr.scores`), the rest to the
report (:mod:`isoclr.report`).
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from isoclr import champion as champions
from isoclr import report, schemas, scores
from isoclr.artifacts import PROBE_PER_SEED, PROBE_PREDICTIONS, PROBE_REPORT, PROBE_TASKS, Paths
from isoclr.config import Config
from isoclr.fitting import evaluate, model_entry, paired_entry, prediction_frame
from isoclr.kmers import kmer_features
from isoclr.metrics import StageRun
from isoclr.tasks import label_names, targets, task_table

log = logging.getLogger(__name__)

PER_SEED_LEAD = ["task", "model", "train_fraction", "seed"]  # per_seed.csv: these columns first


@dataclass(frozen=True)
class ProbeResult:
    """What the probe stage scored and wrote."""

    metrics: dict  # metrics.json
    task_types: dict[str, str]  # task -> "regression" | "classification"
    champion: str | None  # the champion version probed (None: none)
    champion_error: str | None  # why the champion could not be probed (the gate then fails closed)
    table: str = field(repr=False)  # table.md
    report: Path  # report.html, where the stage wrote it

    def record(self, meter: StageRun) -> None:
        """``isoclr_probe_metric``: every metric of every model and paired difference of every task."""
        for task, model, metric, value in scores.task_scores(self.metrics, self.task_types):
            meter.set("isoclr_probe_metric", value, task=task, model=model, metric=metric)

    def flat_scores(self) -> dict[str, float]:
        """``{"<task>.<model>.<metric>": value}``: every score, for a Kubeflow Metrics artifact."""
        return {f"{t}.{m}.{k}": v for t, m, k, v in scores.task_scores(self.metrics, self.task_types)}

    def summary(self) -> str:
        return f"{self.table}\nreport: {self.report}"


def same_weights(a, b) -> bool:
    """Whether two encoders hold identical parameters and buffers (then their embeddings are identical)."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(sa[k].shape == sb[k].shape and bool((sa[k] == sb[k]).all()) for k in sa)


def champion_encoder(cfg: Config, workdir: Path, given: champions.Given = champions.RESOLVE):
    """The champion encoder to probe on the same splits: (version, encoder, error).

    (None, None, None) when there is no champion (or ``probe.compare_champion`` is off);
    an unreadable registry or checkpoint gives (version or None, None, reason), and the
    gate then fails closed because the paired comparison is missing.
    """
    from isoclr import embed  # torch loads only when the stage runs

    version = None
    try:
        version = champions.resolve(cfg, given)
        if version is None:
            return None, None, None
        from isoclr import registry  # its backends load only when there is a champion to fetch

        folder = registry.download(cfg.registry.uri, version, Path(workdir) / scores.CHAMPION)
        return version, embed.load_encoder(folder), None
    except Exception as err:  # noqa: BLE001 - any backend's failure: recorded, and the gate fails closed on it
        log.warning("champion of %s not probed: %s", cfg.registry.uri, err)
        return version, None, f"{type(err).__name__}: {err}"


def run(
    cfg: Config, paths: Paths, *, tracks: bool = True, champion_version: champions.Given = champions.RESOLVE
) -> ProbeResult:
    """Probe every task with the trained encoder, the baselines and the champion; write results and the report.

    Reads ``paths.transcripts``, ``paths.groups``, ``paths.model``, ``paths.reconstruction_model``
    (the ``reconstruction`` baseline), the label files under
    ``paths.data_dir`` (default ``data.dir``) and, with ``tracks``, the track store
    ``paths.tracks``: rows of annotated transcripts are embedded from the memory-mapped store
    instead of re-encoded (the same numbers). ``champion_version`` names the champion to probe
    (a version id, or None for none); the default reads the registry now.

    Writes under ``paths.probe``: metrics.json (:mod:`isoclr.scores`), per_seed.csv,
    low_data.csv, table.csv, table.md (the Markdown summary), report.html
    (self-contained), tasks.json (per-task notes: rows dropped and why, split,
    tracks, skipped low-data points, champion), predictions.csv (seed 0 test rows)
    and plots/ (PNG: predicted vs measured, low-data curves, model vs baselines).
    """
    from isoclr import embed  # torch loads only when the stage runs
    from isoclr.store import TrackStore

    store = TrackStore(Path(paths.tracks)) if tracks else None
    data_root = Path(paths.data_dir if paths.data_dir is not None else cfg.data.dir)
    transcripts = schemas.TRANSCRIPTS.validate(pd.read_parquet(paths.transcripts))
    groups = schemas.GROUPS.validate(pd.read_parquet(paths.groups))
    out_dir = Path(paths.probe)
    out_dir.mkdir(parents=True, exist_ok=True)
    encoders = {
        scores.CANDIDATE: embed.load_encoder(Path(paths.model)),
        scores.RECONSTRUCTION: embed.load_encoder(Path(paths.reconstruction_model)),
        scores.RANDOM_INIT: embed.random_encoder(cfg.model, seed=cfg.train.seed),
    }
    with tempfile.TemporaryDirectory() as workdir:
        champion_version, champion, champion_error = champion_encoder(cfg, Path(workdir), champion_version)
    if champion is not None:
        encoders[scores.CHAMPION] = champion
    models = [scores.CANDIDATE, *scores.BASELINES, *([scores.CHAMPION] if champion is not None else [])]

    metrics: dict = {}
    notes: dict = {}
    per_seed: list[pd.DataFrame] = []
    prediction_rows: list[pd.DataFrame] = []
    for task in cfg.probe.tasks:
        go_dir = data_root / cfg.data.go if cfg.data.go else None
        table, task_notes = task_table(task, data_root, transcripts, groups, go_dir=go_dir)
        task_notes.update(champion=champion_version, champion_error=champion_error)
        notes[task.name] = task_notes
        log.info("probe %s: %d rows, %d groups", task.name, task_notes["n"], task_notes["n_groups"])
        features: dict[str, np.ndarray] = {}
        for name, encoder in encoders.items():
            if name == scores.CHAMPION and same_weights(encoder, encoders[scores.CANDIDATE]):
                features[name] = features[scores.CANDIDATE]  # the champion is this very model: same embeddings
                continue
            features[name] = embed.embed_table(
                encoder, table, batch_size=cfg.probe.embed_batch_size, progress=True, store=store
            )
        features[scores.KMER] = kmer_features(table["seq"].tolist(), cfg.probe.kmer_k)
        y, task_groups, names = targets(table, task), table["group"].to_numpy(), label_names(table)
        results = {name: evaluate(features[name], y, task_groups, cfg.probe, task.type, names) for name in models}
        task_notes["skipped_fractions"] = {str(f): r for f, r in results[scores.CANDIDATE]["skipped"].items()}
        metrics[task.name] = {name: model_entry(results[name], task.type) for name in models}
        if champion is not None:
            metrics[task.name][scores.CHAMPION][scores.VERSION] = champion_version
        for baseline in models[1:]:
            metrics[task.name][scores.paired_key(baseline)] = paired_entry(
                results[scores.CANDIDATE], results[baseline], task.type
            )
        for name in models:
            per_seed.append(results[name]["per_seed"].assign(task=task.name, model=name))
            prediction_rows.append(prediction_frame(task.name, name, results[name]["predictions"], names))

    per_seed_table = pd.concat(per_seed, ignore_index=True)
    per_seed_table = per_seed_table[PER_SEED_LEAD + [c for c in per_seed_table.columns if c not in PER_SEED_LEAD]]
    predictions = schemas.PROBE_PREDICTIONS.validate(pd.concat(prediction_rows, ignore_index=True))
    scores.write(paths.probe_metrics, metrics)
    (out_dir / PROBE_TASKS).write_text(json.dumps(notes, indent=2) + "\n")
    per_seed_table.to_csv(out_dir / PROBE_PER_SEED, index=False)
    predictions.to_csv(out_dir / PROBE_PREDICTIONS, index=False)
    written = report.write_report(metrics, notes, per_seed_table, predictions, cfg.probe, out_dir)
    return ProbeResult(
        metrics=metrics,
        task_types={task.name: task.type for task in cfg.probe.tasks},
        champion=champion_version if champion is not None else None,
        champion_error=champion_error,
        table=written["markdown"].read_text(),
        report=out_dir / PROBE_REPORT,
    )
