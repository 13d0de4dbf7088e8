"""Prometheus metrics of the pipeline stages, pushed to a Pushgateway.

Batch stages do not live long enough to be scraped, so each stage run
collects a few values in its own registry and pushes them once when it ends
(job = ``metrics.job``, grouping = ``run_id`` + ``stage``); training also
pushes every ``metrics.push_every_steps`` steps and can serve ``/metrics``.
The stage runner (:mod:`isoclr.stage`) opens :func:`stage_metrics` around every
stage, whichever driver runs it, and each stage's result sets its own values.

Metrics never fail a stage: without ``metrics.pushgateway_url`` nothing is
pushed, and a failed push is a logged warning. Every metric is declared in
:data:`METRICS` and listed in docs/metrics.md (a test keeps the two in step).
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Gauge, push_to_gateway, start_http_server

from isoclr.config import Config, MetricsConfig

log = logging.getLogger(__name__)

# The pipeline sets one id for all stages of a run (kfp: the run's id); otherwise each process makes one.
RUN_ID_ENV = "ISOCLR_RUN_ID"
# torchrun sets RANK: only rank 0 of a distributed training pushes and serves.
RANK_ENV = "RANK"

# name -> (type, help, label names). Names follow Prometheus conventions: base units, `_total` counters.
METRICS: dict[str, tuple[type, str, tuple[str, ...]]] = {
    "isoclr_stage_duration_seconds": (Gauge, "Wall-clock time of the stage run.", ()),
    "isoclr_stage_success": (Gauge, "1 if the stage finished, 0 if it raised an error.", ()),
    "isoclr_records_validated_total": (Counter, "Transcripts that passed validation into the table.", ()),
    "isoclr_records_quarantined_total": (Counter, "Records sent to quarantine, by the rule they broke.", ("rule",)),
    "isoclr_track_store_transcripts": (Gauge, "Transcripts packed into the track store.", ()),
    "isoclr_track_store_bytes": (Gauge, "Packed nucleotides (one byte each) in the track store.", ()),
    "isoclr_track_store_shards": (Gauge, "Shard files of the track store.", ()),
    "isoclr_homology_groups": (Gauge, "Homology groups (connected paralog families) in the groups table.", ()),
    "isoclr_split_transcripts": (Gauge, "Transcripts assigned to each split.", ("split",)),
    "isoclr_train_step": (Gauge, "Last finished optimiser step (0-based).", ()),
    "isoclr_train_loss": (Gauge, "Training loss of the last step (the stage's objective).", ()),
    "isoclr_train_masked_accuracy": (
        Gauge,
        "Share of masked bases predicted right in the last step (reconstruction objective; chance 0.25).",
        (),
    ),
    "isoclr_train_samples_per_second": (Gauge, "Training throughput of the last step (views per second).", ()),
    "isoclr_train_learning_rate": (Gauge, "Learning rate of the last step.", ()),
    "isoclr_probe_metric": (Gauge, "Linear-probe score, mean over seeds.", ("task", "model", "metric")),
    "isoclr_finetune_metric": (
        Gauge,
        "Fine-tuning test score by train fraction, mean over seeds (arm pretrained, scratch or their difference).",
        ("task", "arm", "fraction", "metric"),
    ),
    "isoclr_latent_transcripts": (Gauge, "Transcripts embedded by the latent stage.", ()),
    "isoclr_knn_agreement": (
        Gauge,
        "kNN label agreement in embedding space (own gene excluded), mean over folds.",
        ("label", "model"),
    ),
    "isoclr_knn_agreement_difference": (
        Gauge,
        "Paired kNN label agreement of the model minus random init, mean over folds.",
        ("label",),
    ),
    "isoclr_knn_agreement_p_value": (
        Gauge,
        "Paired t-test p-value of the model minus random-init kNN agreement (NaN: undetermined).",
        ("label",),
    ),
    "isoclr_gate_passed": (Gauge, "1 if the gate passed, 0 if it failed.", ()),
    "isoclr_gate_rule_passed": (Gauge, "1 if the gate rule passed, 0 if not.", ("kind", "task", "metric")),
    "isoclr_model_registered": (Gauge, "1 if the register stage registered and promoted a model, 0 if not.", ()),
    "isoclr_registry_operations_total": (
        Counter,
        "Registry calls (list, register, set_champion, ...).",
        ("operation",),
    ),
    "isoclr_registry_failures_total": (Counter, "Registry calls that raised an error.", ("operation",)),
    "isoclr_registry_champion_conflicts_total": (
        Counter,
        "Champion compare-and-swap attempts lost to a concurrent writer (each is retried).",
        (),
    ),
}

_generated_run_id: str | None = None


def run_id() -> str:
    """``$ISOCLR_RUN_ID``, or one id per process (UTC time + random hex)."""
    global _generated_run_id
    if os.environ.get(RUN_ID_ENV):
        return os.environ[RUN_ID_ENV]
    if _generated_run_id is None:
        _generated_run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"
        log.info("metrics: run id %s (set %s to share one across stages)", _generated_run_id, RUN_ID_ENV)
    return _generated_run_id


def _primary_rank() -> bool:
    return os.environ.get(RANK_ENV, "0") == "0"


class StageRun:
    """The metrics of one stage run: its own registry, pushed as one group."""

    def __init__(self, cfg: MetricsConfig, stage: str, run: str | None = None) -> None:
        self.cfg = cfg
        self.stage = stage
        self.run_id = run or run_id()
        self.registry = CollectorRegistry()
        self._metrics: dict = {}
        self._server = None
        self._pushing: threading.Thread | None = None
        self.http_port: int | None = None

    def _metric(self, name: str):
        if name not in self._metrics:
            kind, doc, labels = METRICS[name]
            self._metrics[name] = kind(name, doc, labels, registry=self.registry)
        return self._metrics[name]

    def _child(self, name: str, labels: dict):
        metric = self._metric(name)
        return metric.labels(**{k: str(v) for k, v in labels.items()}) if labels else metric

    def set(self, name: str, value: float, **labels) -> None:
        self._child(name, labels).set(float(value))

    def inc(self, name: str, amount: float = 1, **labels) -> None:
        self._child(name, labels).inc(amount)

    def grouping_key(self) -> dict[str, str]:
        return {"run_id": self.run_id, "stage": self.stage}

    def push(self) -> bool:
        """Replace this run's group on the Pushgateway; False (with a warning) when that fails, never raises.

        ``metrics.push_timeout_seconds`` bounds the whole push, not each socket read: a gateway that
        accepts and never answers, or answers a byte at a time, costs at most that long. A push still
        hanging in the background when the next one is due makes the next one a skipped warning.
        """
        url = self.cfg.pushgateway_url
        if not url or not _primary_rank():
            return False
        if self._pushing is not None and self._pushing.is_alive():
            log.warning("metrics: the previous push to %s has not finished; %s metrics not pushed", url, self.stage)
            return False
        outcome: list[BaseException | None] = []

        def push() -> None:
            try:
                push_to_gateway(
                    url,
                    job=self.cfg.job,
                    registry=self.registry,
                    grouping_key=self.grouping_key(),
                    timeout=self.cfg.push_timeout_seconds,
                )
                outcome.append(None)
            except Exception as err:  # noqa: BLE001 -- metrics must never fail the stage
                outcome.append(err)

        self._pushing = threading.Thread(target=push, daemon=True, name=f"isoclr-push-{self.stage}")
        self._pushing.start()
        self._pushing.join(self.cfg.push_timeout_seconds)
        if not outcome:
            err: BaseException | None = TimeoutError(f"no answer within {self.cfg.push_timeout_seconds:g} s")
        else:
            err = outcome[0]
        if err is not None:
            log.warning("metrics: could not push the %s metrics to %s (the stage goes on): %s", self.stage, url, err)
            return False
        return True

    def serve(self, port: int) -> int:
        """Serve this registry on ``/metrics`` (0: a free port); returns the port."""
        if self._server is None:
            self._server, _ = start_http_server(port, registry=self.registry)
            self.http_port = self._server.server_address[1]
            log.info("metrics: serving /metrics on port %d", self.http_port)
        return self.http_port

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


_CURRENT: ContextVar[StageRun | None] = ContextVar("isoclr_stage_run", default=None)
_IN_REGISTRY_CALL: ContextVar[bool] = ContextVar("isoclr_in_registry_call", default=False)


def current() -> StageRun | None:
    """The stage run in progress in this context, if any."""
    return _CURRENT.get()


@contextmanager
def stage_metrics(cfg: Config, stage: str) -> Iterator[StageRun]:
    """Time a stage, collect what it records, push once at the end (success or not)."""
    run = StageRun(cfg.metrics, stage)
    token = _CURRENT.set(run)
    start = time.perf_counter()
    ok = False
    try:
        yield run
        ok = True
    finally:
        _CURRENT.reset(token)
        run.set("isoclr_stage_duration_seconds", time.perf_counter() - start)
        run.set("isoclr_stage_success", int(ok))
        run.close()
        run.push()


@contextmanager
def registry_operation(operation: str) -> Iterator[None]:
    """Count one outermost registry call, and its failure, in the running stage (nested calls are not counted)."""
    if _IN_REGISTRY_CALL.get():
        yield
        return
    token = _IN_REGISTRY_CALL.set(True)
    run = _CURRENT.get()
    try:
        yield
    except Exception:
        if run is not None:
            run.inc("isoclr_registry_failures_total", operation=operation)
        raise
    finally:
        _IN_REGISTRY_CALL.reset(token)
        if run is not None:
            run.inc("isoclr_registry_operations_total", operation=operation)


def count_registry_conflict() -> None:
    run = _CURRENT.get()
    if run is not None:
        run.inc("isoclr_registry_champion_conflicts_total")


def training_reporter(cfg: Config) -> Callable[[dict], None]:
    """An ``on_step`` callback for ``train_loop``: step, loss, samples/s and lr of each step.

    Pushed every ``metrics.push_every_steps`` steps and served on ``/metrics``
    while training when ``metrics.http_port`` is set; only on rank 0.
    """
    run = _CURRENT.get() or StageRun(cfg.metrics, "train")
    if not _primary_rank():
        return lambda row: None
    if cfg.metrics.http_port is not None:
        run.serve(cfg.metrics.http_port)
    every = cfg.metrics.push_every_steps

    def report(row: dict) -> None:
        run.set("isoclr_train_step", row["step"])
        run.set("isoclr_train_loss", row["loss"])
        run.set("isoclr_train_samples_per_second", row["samples_per_s"])
        run.set("isoclr_train_learning_rate", row["lr"])
        if "masked_accuracy" in row:
            run.set("isoclr_train_masked_accuracy", row["masked_accuracy"])
        if (row["step"] + 1) % every == 0:
            run.push()

    return report
