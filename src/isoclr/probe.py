"""The `probe` stage: linear probes on frozen embeddings, beside baselines (DESIGN §2 Evaluation).

Each label set is declared in params.yaml (:class:`isoclr.config.ProbeTask`) and
turned into rows to embed by :func:`task_table`. Every feature set — the trained
encoder, the same architecture randomly initialised, k-mer frequencies and, when
the registry has one, the current champion — is evaluated by :func:`evaluate`
on the same splits and the same low-data subsets, so their numbers pair up seed
by seed (:func:`paired_difference`).

Protocol, per seed: a 70/15/15 split by group (homology group where genes are
known; parent UTR, shared prefix or at random where they are not: the notes say
which); features standardised with statistics of the rows that are fitted;
the penalty chosen on the val split (group-disjoint, so near-identical sequences
cannot make a small penalty look good, as leave-one-out would); the model fitted
on the train rows only and scored on the test rows. The low-data curve repeats
this with a share of the train rows (val and test unchanged); a share that leaves
fewer than ``min_train_rows`` rows (or one class) is skipped and reported.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.metrics import average_precision_score, log_loss, roc_auc_score
from sklearn.preprocessing import StandardScaler

from isoclr import schemas
from isoclr.config import CLASSIFICATION_METRICS, REGRESSION_METRICS, Config, ProbeConfig, ProbeTask
from isoclr.metrics import stage as metered
from isoclr.splits import split_by_group

log = logging.getLogger(__name__)

CANDIDATE = "isoclr"
BASELINES = ("random_init", "kmer")
CHAMPION = "champion"  # probed only when the registry has a champion
PAIRED_PREFIX = f"{CANDIDATE}_minus_"  # metrics.json key of a paired difference: isoclr_minus_<baseline>
METRICS = {"regression": REGRESSION_METRICS, "classification": CLASSIFICATION_METRICS}
CI_LEVEL = 0.95
# max_rows subsampling: fixed, so every model and every run probes the same rows.
SUBSAMPLE_SEED = 0
# How many unmatched / invalid ids an error message or the notes show.
SHOW_IDS = 5
# Logistic regression: Newton iteration cap per penalty (warm-started along the path).
LOGISTIC_MAX_ITER = 100
LOGISTIC_SOLVER = "newton-cholesky"  # second order: fast and robust when rows >> features, as here
# Low-data subsets are drawn from this stream, keyed by seed and fraction (the same for every model).
_SUBSET_STREAM = 7919
_FRACTION_KEY = 1_000_000
# k-mer counting works on chunks of rows so that rows x 4**k counters stay bounded.
_KMER_CELLS_PER_CHUNK = 1 << 24
# Ensembl ids: the version (".14") and the PAR_Y tag are not part of the identity.
_ENSEMBL_VERSION = re.compile(r"\.\d+(?:_PAR_Y)?$")
# Byte -> base code 0..3 (A C G T, either case, U read as T); 255 for anything else (N, IUPAC, junk).
_NOT_A_BASE = 255
_BASE_CODE = np.full(256, _NOT_A_BASE, dtype=np.uint8)
for _code, _bases in enumerate(("Aa", "Cc", "Gg", "TtUu")):
    for _base in _bases:
        _BASE_CODE[ord(_base)] = _code
_TRACK_COLUMNS = ["cds_start", "cds_end", "exon_ends"]


class LabelJoinError(Exception):
    """A label file none of whose ids match the transcripts (or none of whose sequences are usable)."""


# --------------------------------------------------------------------------- label sets


def unversioned_gene_id(ids: pd.Series) -> pd.Series:
    """``ENSG00000000003.14`` -> ``ENSG00000000003`` (ids without a version are left as they are)."""
    return ids.astype(str).str.replace(_ENSEMBL_VERSION, "", regex=True)


def read_labels(task: ProbeTask, data_root: Path, transcripts: pd.DataFrame | None = None) -> pd.DataFrame:
    """The label table (the file, or the transcripts table for ``source: annotation``), columns checked."""
    if task.source == "annotation":
        labels, where = transcripts.copy(), "the transcripts table"
    else:
        path = Path(data_root) / task.file
        if not path.exists():
            raise FileNotFoundError(f"probe task {task.name!r}: label file {path} does not exist")
        labels = pd.read_csv(
            path, sep=task.sep, header=None if task.header else "infer", names=task.header, low_memory=False
        )
        where = str(path)
    needed = [task.id_column, task.target]
    if _group_column(task) is not None:
        needed.append(_group_column(task))
    missing = [c for c in needed if c not in labels.columns]
    if missing:
        raise ValueError(
            f"{where}: probe task {task.name!r} needs column(s) {missing}; it has {list(labels.columns)}"
        )
    return labels


def _group_column(task: ProbeTask) -> str | None:
    """The label-file column that groups rows, or None for homology / prefix / random grouping."""
    if task.group_by in ("homology", "none") or _prefix_length(task) is not None:
        return None
    return task.group_by


def _prefix_length(task: ProbeTask) -> int | None:
    match = re.fullmatch(r"prefix(\d+)", task.group_by)
    return int(match.group(1)) if match else None


def task_table(
    task: ProbeTask,
    data_root: Path,
    transcripts: pd.DataFrame,
    groups: pd.DataFrame,
    sample_seed: int = SUBSAMPLE_SEED,
) -> tuple[pd.DataFrame, dict]:
    """Rows to embed for one task, and notes on what was dropped and why.

    Returns:
        table: columns ``id`` (the label id), ``seq``, ``target`` (float; 0/1 for
            classification), ``group`` (str); for an annotation join also
            ``transcript_id``, ``gene_id`` and, unless ``tracks: sequence``,
            ``cds_start``, ``cds_end``, ``exon_ends`` of the transcript embedded.
        notes: ``n``, ``n_label_rows``, ``dropped_na``, ``dropped_non_numeric``,
            ``dropped_other_class``, ``dropped_duplicate_ids``, ``dropped_bad_sequence``,
            ``unmatched`` (+ examples), ``n_groups``, ``split_kind``, ``tracks``,
            ``cds_track_rows``, ``splice_track_rows``, ``subsampled_from``, ``n_positive``.
    Raises:
        LabelJoinError: no label row matches (annotation join) or no sequence is usable.
    """
    where = "the transcripts table" if task.source == "annotation" else str(Path(data_root) / task.file)
    labels = read_labels(task, data_root, transcripts)
    notes: dict = {"task": task.name, "type": task.type, "file": task.file or "(annotation)",
                   "n_label_rows": len(labels)}
    if task.about:
        notes["about"] = task.about

    labels = labels[labels[task.id_column].notna()].copy()
    if task.type == "classification":
        labels = _binary_target(task, labels, notes)
    else:
        target = pd.to_numeric(labels[task.target], errors="coerce")
        was_na = labels[task.target].isna()
        notes["dropped_na"] = int(was_na.sum()) + (notes["n_label_rows"] - len(was_na))
        notes["dropped_non_numeric"] = int((target.isna() & ~was_na).sum())
        labels = labels.assign(target=target.astype(float))[target.notna()]

    if task.join in ("gene_id", "transcript_id"):
        labels["id"] = unversioned_gene_id(labels[task.id_column])
    else:
        labels["id"] = labels[task.id_column].astype(str)
    duplicated = labels["id"].duplicated()
    notes["dropped_duplicate_ids"] = int(duplicated.sum())
    labels = labels[~duplicated]

    if task.join == "sequence":
        table = _join_sequence(task, where, labels, notes)
    else:
        table = _join_annotation(task, where, labels, transcripts, groups, notes)

    if task.max_rows is not None and len(table) > task.max_rows:
        notes["subsampled_from"] = len(table)
        table = table.sample(n=task.max_rows, random_state=sample_seed).sort_index()
    table = table.reset_index(drop=True)
    if task.tracks == "sequence":
        table = table.drop(columns=[c for c in _TRACK_COLUMNS if c in table.columns])
    table["group"] = table["group"].astype(str)
    table = schemas.PROBE_ROWS.validate(table)
    notes["n"] = len(table)
    if task.type == "classification":
        notes["n_positive"] = int(table["target"].sum())
    notes["split_kind"] = _split_kind(task)
    notes["n_groups"] = int(table["group"].nunique())
    notes.update(_track_notes(task, table))
    return table, notes


def _binary_target(task: ProbeTask, labels: pd.DataFrame, notes: dict) -> pd.DataFrame:
    """Target values -> 1 (``positive``) / 0 (``negative``, or every other value); the rest dropped."""
    value = labels[task.target]
    notes["dropped_na"] = int(value.isna().sum()) + (notes["n_label_rows"] - len(value))
    value = value.astype(str)
    positive = value.isin(task.positive)
    negative = value.isin(task.negative) if task.negative else ~positive
    keep = labels[task.target].notna() & (positive | negative)
    notes["dropped_other_class"] = int((labels[task.target].notna() & ~keep).sum())
    notes["classes"] = {"positive": list(task.positive), "negative": list(task.negative or ["(all other values)"])}
    return labels.assign(target=positive.astype(float))[keep]


def _join_annotation(
    task: ProbeTask, where: str, labels: pd.DataFrame, transcripts: pd.DataFrame, groups: pd.DataFrame, notes: dict
) -> pd.DataFrame:
    """The annotation transcript for each label id: that transcript, or the gene's longest isoform."""
    key_column = {"transcript_id": "transcript_id", "gene_id": "gene_id", "gene_name": "gene_name"}[task.join]
    tx = transcripts[transcripts[key_column].notna()].copy()
    tx["_key"] = unversioned_gene_id(tx[key_column]) if task.join != "gene_name" else tx[key_column].astype(str)
    tx["_len"] = tx["seq"].str.len()
    # One transcript per key: the longest (ties: the smallest transcript id).
    tx = tx.sort_values(["_key", "_len", "transcript_id"], ascending=[True, False, True])
    representative = tx.drop_duplicates("_key").drop(columns="_len")
    matched = labels["id"].isin(representative["_key"])
    unmatched = labels.loc[~matched, "id"]
    notes["unmatched"] = int(len(unmatched))
    notes["unmatched_examples"] = unmatched.head(SHOW_IDS).tolist()
    if not matched.any():
        raise LabelJoinError(
            f"{where}: no value of column {task.id_column!r} matches a {task.join} of the "
            f"{len(representative)} annotated keys; first unmatched ids: {unmatched.head(SHOW_IDS).tolist()}; "
            f"first annotated keys: {representative['_key'].head(SHOW_IDS).tolist()}"
        )
    own = ["id", "target"] + ([_group_column(task)] if _group_column(task) else [])
    table = labels.loc[matched, own].merge(
        representative[["_key", "transcript_id", "gene_id", "seq", *_TRACK_COLUMNS]],
        left_on="id",
        right_on="_key",
        how="inner",
    ).drop(columns="_key")
    if task.group_by == "homology":
        homology = groups.drop_duplicates("transcript_id").set_index("transcript_id")["homology_group"]
        table["group"] = table["transcript_id"].map(homology)
        missing = table["group"].isna()
        # A transcript the groups table does not know is its own family: counted, not dropped.
        notes["no_homology_group"] = int(missing.sum())
        table.loc[missing, "group"] = table.loc[missing, "gene_id"]
    else:
        table["group"] = _groups_of(task, table)
    return table


def _join_sequence(task: ProbeTask, where: str, labels: pd.DataFrame, notes: dict) -> pd.DataFrame:
    """The label file carries the sequence: normalise it (upper case, U -> T), drop what is not ACGTN."""
    seq = labels["id"].str.strip().str.upper().str.replace("U", "T", regex=False)
    usable = seq.str.fullmatch(r"[ACGTN]+")
    notes["dropped_bad_sequence"] = int((~usable).sum())
    notes["dropped_bad_sequence_examples"] = labels.loc[~usable, "id"].head(SHOW_IDS).str.slice(0, 60).tolist()
    notes["unmatched"] = 0
    if not usable.any():
        raise LabelJoinError(
            f"{where}: no value of column {task.id_column!r} is a usable nucleotide sequence (ACGTN/U); "
            f"first values: {labels['id'].head(SHOW_IDS).str.slice(0, 60).tolist()}"
        )
    table = labels.loc[usable].assign(seq=seq[usable])
    table["group"] = _groups_of(task, table)
    return table[["id", "seq", "target", "group"]]


def _groups_of(task: ProbeTask, table: pd.DataFrame) -> pd.Series:
    prefix = _prefix_length(task)
    if prefix is not None:
        return table["seq"].str.slice(0, prefix)
    if task.group_by == "none":
        return pd.Series(np.arange(len(table)).astype(str), index=table.index)
    return table[task.group_by].astype(str)


def _split_kind(task: ProbeTask) -> str:
    prefix = _prefix_length(task)
    if task.group_by == "homology":
        return "by homology group (genes known)"
    if task.group_by == "none":
        return "random (no grouping known)"
    if prefix is not None:
        return f"by shared {prefix}-nt prefix (no genes known)"
    return f"by label column {task.group_by!r} (no genes known)"


def _track_notes(task: ProbeTask, table: pd.DataFrame) -> dict:
    """Which tracks the embeddings saw: a report must say when CDS / splice tracks were empty."""
    cds = int(table["cds_start"].notna().sum()) if "cds_start" in table else 0
    splice = int(table["exon_ends"].notna().sum()) if "exon_ends" in table else 0
    if task.join == "sequence":
        text = "sequence only: not annotation transcripts, so CDS and splice tracks are empty"
    elif task.tracks == "sequence":
        text = "sequence only: CDS and splice tracks left empty on purpose (the label must not leak through them)"
    else:
        text = f"annotation: CDS track on {cds} of {len(table)} rows, splice track on {splice}"
    return {"tracks": text, "cds_track_rows": cds, "splice_track_rows": splice}


# --------------------------------------------------------------------------- features


def kmer_features(seqs: Sequence[str], k: int) -> np.ndarray:
    """k-mer frequencies: ``(n, 4**k)``, each row sums to 1 (0 for a sequence with no valid k-mer).

    k-mers are indexed in lexicographic order of ACGT (``AA..A`` = 0,
    ``TT..T`` = 4**k - 1); a k-mer containing N (or any other letter) is not
    counted. All sequences are counted at once: one concatenated code array,
    a rolling base-4 index built with k vector operations, then one bincount.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    seqs = list(seqs)
    n_kmers = 4**k
    out = np.zeros((len(seqs), n_kmers), dtype=np.float64)
    rows_per_chunk = max(1, _KMER_CELLS_PER_CHUNK // n_kmers)
    for start in range(0, len(seqs), rows_per_chunk):
        chunk = seqs[start : start + rows_per_chunk]
        out[start : start + len(chunk)] = _kmer_counts(chunk, k)
    totals = out.sum(axis=1, keepdims=True)
    np.divide(out, totals, out=out, where=totals > 0)
    return out


def _kmer_counts(seqs: Sequence[str], k: int) -> np.ndarray:
    """``(len(seqs), 4**k)`` raw k-mer counts."""
    n = len(seqs)
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=n)
    # One byte per character ("?" for non-ASCII), so positions line up with ``lengths``.
    joined = "".join(seqs).encode("ascii", errors="replace")
    codes = _BASE_CODE[np.frombuffer(joined, dtype=np.uint8)]
    n_windows = len(codes) - k + 1
    if n == 0 or n_windows <= 0:
        return np.zeros((n, 4**k))
    index = np.zeros(n_windows, dtype=np.int64)
    valid = np.ones(n_windows, dtype=bool)
    for j in range(k):
        window = codes[j : j + n_windows]
        valid &= window != _NOT_A_BASE
        index = index * 4 + np.where(window == _NOT_A_BASE, 0, window)
    # A window is a k-mer of one sequence only if it starts at least k-1 before that sequence's end.
    row = np.repeat(np.arange(n), lengths)[:n_windows]
    ends = np.cumsum(lengths)
    valid &= np.arange(n_windows) + k <= ends[row]
    flat = row[valid] * 4**k + index[valid]
    return np.bincount(flat, minlength=n * 4**k).reshape(n, 4**k).astype(np.float64)


# --------------------------------------------------------------------------- statistics


def mean_ci(values: Sequence[float], level: float = CI_LEVEL) -> tuple[float, float, float]:
    """Mean and t-interval over seeds; NaN seeds are left out (all NaN -> NaN)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(v.mean())
    if len(v) == 1:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + level / 2, df=len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return mean, mean - half, mean + half


def paired_difference(a: Sequence[float], b: Sequence[float], level: float = CI_LEVEL) -> tuple[float, float, float]:
    """Mean and t-interval of ``a - b`` seed by seed (same splits), over seeds where both are finite.

    Pairing removes the split-to-split variation both models share, so the
    interval is far narrower than the difference of two unpaired intervals.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired values need the same seeds: {a.shape} vs {b.shape}")
    return mean_ci(a - b, level)


def _correlations(y: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """Pearson and Spearman r; NaN where either side is constant or there are < 2 rows."""
    if len(y) < 2 or np.ptp(y) == 0 or np.ptp(pred) == 0:
        return float("nan"), float("nan")
    return float(stats.pearsonr(y, pred).statistic), float(stats.spearmanr(y, pred).statistic)


def score(task_type: str, y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Test metrics: Pearson r, Spearman r, MSE (regression) or AUROC, AUPRC (classification; NaN on one class)."""
    if task_type == "classification":
        if len(np.unique(y)) < 2:
            return {"auroc": float("nan"), "auprc": float("nan")}
        return {"auroc": float(roc_auc_score(y, pred)), "auprc": float(average_precision_score(y, pred))}
    pearson, spearman = _correlations(y, pred)
    return {"pearson_r": pearson, "spearman_r": spearman, "mse": float(np.mean((y - pred) ** 2))}


# --------------------------------------------------------------------------- fitting


def _ridge_select(x_fit, y_fit, x_val, y_val, alphas: Sequence[float]) -> tuple[float, np.ndarray, float]:
    """Ridge on standardised ``x_fit`` (n, d) for every alpha at once; the alpha with least val MSE.

    One thin SVD gives all the solutions: w(alpha) = V diag(s / (s^2 + alpha)) U^T (y - mean y).
    Returns (alpha, w (d,), intercept).
    """
    intercept = float(y_fit.mean())
    u, s, vt = np.linalg.svd(x_fit, full_matrices=False)
    uty = u.T @ (y_fit - intercept)  # (k,)
    alphas = np.asarray(alphas, dtype=float)
    shrink = s[None, :] / (s[None, :] ** 2 + alphas[:, None])  # (n_alphas, k)
    weights = (shrink * uty[None, :]) @ vt  # (n_alphas, d)
    val_mse = (((x_val @ weights.T) + intercept - y_val[:, None]) ** 2).mean(axis=0)
    best = int(np.argmin(val_mse))
    return float(alphas[best]), weights[best], intercept


def _fit_predict(task_type: str, x: np.ndarray, y: np.ndarray, fit: np.ndarray, val: np.ndarray,
                 test: np.ndarray, alphas: Sequence[float]) -> tuple[np.ndarray, float]:
    """Standardise on the fit rows, choose the penalty on the val rows, fit, predict the test rows.

    Returns (test predictions (n_test,), chosen alpha). Regression predicts the
    target; classification the probability of the positive class.
    """
    scaler = StandardScaler().fit(x[fit])
    x_fit, x_val, x_test = (scaler.transform(x[rows]) for rows in (fit, val, test))
    if task_type == "regression":
        if len(x_val) == 0:  # no val split configured: leave-one-out over the fit rows
            model = RidgeCV(alphas=list(alphas)).fit(x_fit, y[fit])
            return model.predict(x_test), float(model.alpha_)
        alpha, w, b = _ridge_select(x_fit, y[fit], x_val, y[val], alphas)
        return x_test @ w + b, alpha
    # The penalty path from strong to weak, each fit warm-started from the last: near-separable
    # classes at a weak penalty converge in a few iterations instead of thousands. A weak-penalty fit
    # that stops at the iteration cap is still a valid candidate; the val loss judges it.
    model = LogisticRegression(solver=LOGISTIC_SOLVER, warm_start=True, max_iter=LOGISTIC_MAX_ITER)
    # Without val rows the fit rows choose (the least penalty wins: the report shows it as an edge choice).
    x_sel, y_sel = (x_val, y[val]) if len(x_val) else (x_fit, y[fit])
    best = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for alpha in sorted(alphas, reverse=True):
            model.set_params(C=1.0 / alpha).fit(x_fit, y[fit])
            loss = log_loss(y_sel, model.predict_proba(x_sel)[:, 1], labels=[0, 1])
            if best is None or loss < best[0]:
                best = (loss, alpha, model.coef_.copy(), model.intercept_.copy())
    _, alpha, coef, intercept = best
    model.coef_, model.intercept_ = coef, intercept
    return model.predict_proba(x_test)[:, 1], float(alpha)


def _edge(alpha: float, alphas: Sequence[float]) -> str:
    return "bottom" if alpha == min(alphas) else "top" if alpha == max(alphas) else ""


def probe_splits(groups: np.ndarray, cfg: ProbeConfig) -> list[np.ndarray]:
    """One ``(n,)`` array of "train" | "val" | "test" per seed; the same for every feature set of a task."""
    return [split_by_group(np.asarray(groups), cfg.fractions, seed) for seed in range(cfg.seeds)]


def low_data_rows(train_rows: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """The train rows a low-data point fits on: a seeded random share, the same for every model."""
    if fraction >= 1.0:
        return train_rows
    n = int(round(fraction * len(train_rows)))
    rng = np.random.default_rng([_SUBSET_STREAM, seed, int(round(fraction * _FRACTION_KEY))])
    return np.sort(rng.choice(train_rows, size=n, replace=False))


def _skip_reason(task_type: str, y_fit: np.ndarray, cfg: ProbeConfig) -> str | None:
    if len(y_fit) < cfg.min_train_rows:
        return f"{len(y_fit)} train rows < min_train_rows {cfg.min_train_rows}"
    if task_type == "classification" and len(np.unique(y_fit)) < 2:
        return "the train rows hold one class only"
    return None


def evaluate(
    features: np.ndarray, y: np.ndarray, groups: np.ndarray, cfg: ProbeConfig, task_type: str = "regression"
) -> dict:
    """Linear probe over ``cfg.seeds`` group-disjoint splits and every train fraction.

    Args:
        features: (n, d) one row per labelled sequence.
        y: (n,) measured target (0/1 for classification).
        groups: (n,) group of each row; a group never straddles two splits.
    Returns:
        ``per_seed``: DataFrame, one row per (train_fraction, seed) that ran, with
        ``n_train``, ``n_val``, ``n_test``, ``alpha``, ``alpha_edge`` ("top", "bottom" or "") and the metrics;
        ``skipped``: {fraction: reason} for fractions that did not run;
        for each metric (full train split) its mean and ``<metric>_ci95`` = [lo, hi];
        ``n``; ``predictions``: seed 0 test rows at the full train split
        (``index``, ``measured``, ``predicted``).
    """
    if task_type not in METRICS:
        raise ValueError(f"task type must be one of {sorted(METRICS)}, got {task_type!r}")
    features = np.asarray(features, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    groups = np.asarray(groups)
    if not (len(features) == len(y) == len(groups)):
        raise ValueError(f"features {features.shape}, y {y.shape} and groups {groups.shape} differ in length")
    rows: list[dict] = []
    skipped: dict[float, str] = {}
    predictions: dict = {}
    for seed, split in enumerate(probe_splits(groups, cfg)):
        train, val, test = (np.flatnonzero(split == s) for s in schemas.SPLITS)
        if len(train) == 0 or len(test) == 0:
            raise ValueError(
                f"seed {seed}: the split has {len(train)} train and {len(test)} test rows "
                f"({len(np.unique(groups))} groups): too few groups to probe"
            )
        for fraction in cfg.train_fractions:
            fit = low_data_rows(train, fraction, seed)
            reason = _skip_reason(task_type, y[fit], cfg)
            if reason is not None:
                skipped.setdefault(fraction, reason)
                continue
            pred, alpha = _fit_predict(task_type, features, y, fit, val, test, cfg.alphas)
            rows.append({"train_fraction": fraction, "seed": seed, "n_train": len(fit), "n_val": len(val),
                         "n_test": len(test), "alpha": alpha, "alpha_edge": _edge(alpha, cfg.alphas),
                         **score(task_type, y[test], pred)})
            if seed == 0 and fraction == 1.0:
                predictions = {"index": test.tolist(), "measured": y[test].tolist(), "predicted": pred.tolist()}
    per_seed = pd.DataFrame(rows)
    if 1.0 in skipped:
        raise ValueError(f"the full train split cannot be probed: {skipped[1.0]}")
    full = per_seed[per_seed["train_fraction"] == 1.0]
    result: dict = {"per_seed": per_seed, "skipped": skipped, "n": int(len(y)), "predictions": predictions}
    for metric in METRICS[task_type]:
        mean, lo, hi = mean_ci(full[metric])
        result[metric] = mean
        result[f"{metric}_ci95"] = [lo, hi]
    return result


# --------------------------------------------------------------------------- the stage


def champion_encoder(cfg: Config, workdir: Path) -> tuple[str | None, object | None, str | None]:
    """The registry's champion encoder, to probe on the same splits: (version, encoder, error).

    (None, None, None) when there is no champion (or ``probe.compare_champion`` is off);
    an unreadable registry or checkpoint gives (version or None, None, reason), and the
    gate then fails closed because the paired comparison is missing.
    """
    if not cfg.probe.compare_champion:
        return None, None, None
    from isoclr import embed, registry

    version = None
    try:
        version = registry.champion(cfg.registry.uri)
        if version is None:
            return None, None, None
        folder = registry.download(cfg.registry.uri, version, Path(workdir) / "champion")
        return version, embed.load_encoder(folder), None
    except Exception as err:  # any backend's failure: recorded, and the gate fails closed on it
        log.warning("champion of %s not probed: %s", cfg.registry.uri, err)
        return version, None, f"{type(err).__name__}: {err}"


@metered("probe")
def same_weights(a, b) -> bool:
    """Whether two encoders hold identical parameters and buffers (then their embeddings are identical)."""
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(
        sa[k].shape == sb[k].shape and bool((sa[k] == sb[k]).all()) for k in sa
    )


def run_probes(
    cfg: Config,
    data_root: Path,
    transcripts_path: Path,
    groups_path: Path,
    model_dir: Path,
    out_dir: Path,
    tracks_path: Path | None = None,
) -> dict:
    """Probe every task with the trained encoder, the baselines and the champion; write results and the report.

    Writes under ``out_dir``: metrics.json (``{task: {model: {metric, metric_ci95, n, ...},
    isoclr_minus_<baseline>: {metric, metric_ci95, seeds}}}``), per_seed.csv,
    low_data.csv, table.csv, table.md (the Markdown summary), report.html
    (self-contained), tasks.json (per-task notes: rows dropped and why, split,
    tracks, skipped low-data points, champion), predictions.csv (seed 0 test rows)
    and plots/ (PNG: predicted vs measured, low-data curves, model vs baselines).
    With ``tracks_path`` (the store of ``isoclr encode``), rows of annotated
    transcripts are embedded from the memory-mapped store instead of re-encoded.
    Returns the metrics dict.
    """
    from isoclr import embed, report  # torch and matplotlib load only when the stage runs
    from isoclr.store import TrackStore

    store = TrackStore(Path(tracks_path)) if tracks_path is not None else None

    transcripts = schemas.TRANSCRIPTS.validate(pd.read_parquet(transcripts_path))
    groups = schemas.GROUPS.validate(pd.read_parquet(groups_path))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    encoders = {
        CANDIDATE: embed.load_encoder(Path(model_dir)),
        "random_init": embed.random_encoder(cfg.model, seed=cfg.train.seed),
    }
    with tempfile.TemporaryDirectory() as workdir:
        champion_version, champion, champion_error = champion_encoder(cfg, Path(workdir))
    if champion is not None:
        encoders[CHAMPION] = champion
    models = [CANDIDATE, *BASELINES, *([CHAMPION] if champion is not None else [])]

    metrics: dict = {}
    notes: dict = {}
    per_seed: list[pd.DataFrame] = []
    prediction_rows: list[pd.DataFrame] = []
    for task in cfg.probe.tasks:
        table, task_notes = task_table(task, data_root, transcripts, groups)
        task_notes.update(champion=champion_version, champion_error=champion_error)
        notes[task.name] = task_notes
        log.info("probe %s: %d rows, %d groups", task.name, task_notes["n"], task_notes["n_groups"])
        features: dict[str, np.ndarray] = {}
        for name, encoder in encoders.items():
            if name == CHAMPION and same_weights(encoder, encoders[CANDIDATE]):
                features[name] = features[CANDIDATE]  # the champion is this very model: same embeddings
                continue
            features[name] = embed.embed_table(
                encoder, table, batch_size=cfg.probe.embed_batch_size, progress=True, store=store
            )
        features["kmer"] = kmer_features(table["seq"].tolist(), cfg.probe.kmer_k)
        y, task_groups = table["target"].to_numpy(), table["group"].to_numpy()
        results = {name: evaluate(features[name], y, task_groups, cfg.probe, task.type) for name in models}
        task_notes["skipped_fractions"] = {str(f): r for f, r in results[CANDIDATE]["skipped"].items()}
        metrics[task.name] = {name: _summary(results[name], task.type) for name in models}
        if champion is not None:
            metrics[task.name][CHAMPION]["version"] = champion_version
        for baseline in models[1:]:
            metrics[task.name][PAIRED_PREFIX + baseline] = _paired(results[CANDIDATE], results[baseline], task.type)
        for name in models:
            per_seed.append(results[name]["per_seed"].assign(task=task.name, model=name))
            pred = results[name]["predictions"]
            prediction_rows.append(pd.DataFrame(
                {"task": task.name, "model": name, "measured": pred["measured"], "predicted": pred["predicted"]}
            ))

    per_seed_table = pd.concat(per_seed, ignore_index=True)
    lead = ["task", "model", "train_fraction", "seed"]
    per_seed_table = per_seed_table[lead + [c for c in per_seed_table.columns if c not in lead]]
    predictions = schemas.PROBE_PREDICTIONS.validate(pd.concat(prediction_rows, ignore_index=True))
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, allow_nan=False) + "\n")
    (out_dir / "tasks.json").write_text(json.dumps(notes, indent=2) + "\n")
    per_seed_table.to_csv(out_dir / "per_seed.csv", index=False)
    predictions.to_csv(out_dir / "predictions.csv", index=False)
    report.write_report(metrics, notes, per_seed_table, predictions, cfg.probe, out_dir)
    return metrics


def _summary(result: dict, task_type: str) -> dict:
    """The flat part of an :func:`evaluate` result that goes to metrics.json (full train split)."""
    summary: dict = {}
    for metric in METRICS[task_type]:
        summary[metric] = _finite_or_none(result[metric])
        summary[f"{metric}_ci95"] = [_finite_or_none(v) for v in result[f"{metric}_ci95"]]
    full = result["per_seed"][result["per_seed"]["train_fraction"] == 1.0]
    summary["n"] = result["n"]
    summary["n_train"] = float(full["n_train"].mean())
    summary["n_test"] = float(full["n_test"].mean())
    summary["seeds"] = len(full)
    # Penalties at the grid's edges: "bottom" means the grid may be too narrow; "top" that the
    # strongest penalty won, i.e. the features carry little linear signal (predictions ~ the mean).
    summary["alpha_at_bottom"] = int((full["alpha_edge"] == "bottom").sum())
    summary["alpha_at_top"] = int((full["alpha_edge"] == "top").sum())
    return summary


def _paired(candidate: dict, baseline: dict, task_type: str) -> dict:
    """candidate - baseline per seed on the full train split: mean and 95% CI of each metric."""
    a = candidate["per_seed"].query("train_fraction == 1.0").set_index("seed")
    b = baseline["per_seed"].query("train_fraction == 1.0").set_index("seed")
    out: dict = {}
    for metric in METRICS[task_type]:
        mean, lo, hi = paired_difference(a[metric], b.loc[a.index, metric])
        out[metric] = _finite_or_none(mean)
        out[f"{metric}_ci95"] = [_finite_or_none(lo), _finite_or_none(hi)]
    out["seeds"] = len(a)
    out["paired"] = True
    return out


def _finite_or_none(value: float) -> float | None:
    """NaN is not JSON: a metric that could not be computed is written as null."""
    return float(value) if np.isfinite(value) else None
