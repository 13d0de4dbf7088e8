"""The `probe` stage: linear probes on frozen embeddings, beside two baselines (DESIGN §2 Evaluation).

Each label set is declared in params.yaml (:class:`isoclr.config.ProbeTask`) and
turned into rows to embed by :func:`task_table`. Every feature set — the
trained encoder, the same architecture randomly initialised, and k-mer
frequencies — is evaluated by :func:`evaluate` on the same group-disjoint
splits (:func:`isoclr.splits.split_by_group`), so their numbers are comparable.

Alpha selection: for every seed, RidgeCV tries ``probe.alphas`` by fitting on
the train split and scoring on the val split (group-disjoint, so near-identical
sequences cannot make a small alpha look good, as leave-one-out would), then
refits on train + val with the chosen alpha. Features are standardised with
statistics of the train split only. Test rows are never seen before scoring.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import PredefinedSplit
from sklearn.preprocessing import StandardScaler

from isoclr import schemas
from isoclr.config import Config, ProbeConfig, ProbeTask
from isoclr.splits import split_by_group

log = logging.getLogger(__name__)

MODELS = ("isoclr", "random_init", "kmer")
METRICS = ("pearson_r", "spearman_r", "mse")
CI_LEVEL = 0.95
# max_rows subsampling: fixed, so every model and every run probes the same rows.
SUBSAMPLE_SEED = 0
# How many unmatched / invalid ids an error message or the notes show.
SHOW_IDS = 5
# k-mer counting works on chunks of rows so that rows x 4**k counters stay bounded.
_KMER_CELLS_PER_CHUNK = 1 << 24
# Ensembl gene ids: the version (".14") and the PAR_Y tag are not part of the gene's identity.
_ENSEMBL_VERSION = re.compile(r"\.\d+(?:_PAR_Y)?$")
# Byte -> base code 0..3 (A C G T, either case, U read as T); 255 for anything else (N, IUPAC, junk).
_NOT_A_BASE = 255
_BASE_CODE = np.full(256, _NOT_A_BASE, dtype=np.uint8)
for _code, _bases in enumerate(("Aa", "Cc", "Gg", "TtUu")):
    for _base in _bases:
        _BASE_CODE[ord(_base)] = _code


class LabelJoinError(Exception):
    """A label file none of whose ids match the transcripts (or none of whose sequences are usable)."""


# --------------------------------------------------------------------------- label sets


def unversioned_gene_id(ids: pd.Series) -> pd.Series:
    """``ENSG00000000003.14`` -> ``ENSG00000000003`` (ids without a version are left as they are)."""
    return ids.astype(str).str.replace(_ENSEMBL_VERSION, "", regex=True)


def read_labels(task: ProbeTask, data_root: Path) -> pd.DataFrame:
    """The label file as a table, with the columns the task needs checked."""
    path = Path(data_root) / task.file
    if not path.exists():
        raise FileNotFoundError(f"probe task {task.name!r}: label file {path} does not exist")
    labels = pd.read_csv(
        path, sep=task.sep, header=None if task.header else "infer", names=task.header, low_memory=False
    )
    needed = [task.id_column, task.target]
    if _group_column(task) is not None:
        needed.append(_group_column(task))
    missing = [c for c in needed if c not in labels.columns]
    if missing:
        raise ValueError(
            f"{path}: probe task {task.name!r} needs column(s) {missing}; the file has {list(labels.columns)}"
        )
    return labels


def _group_column(task: ProbeTask) -> str | None:
    """The label-file column that groups rows, or None for homology / prefix grouping."""
    if task.group_by == "homology" or _prefix_length(task) is not None:
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
        table: columns ``id`` (the label id), ``seq``, ``target`` (float),
            ``group`` (str); for a gene_id join also ``transcript_id``,
            ``gene_id``, ``cds_start``, ``cds_end``, ``exon_ends`` of the
            representative transcript (the longest of the gene).
        notes: ``n``, ``n_label_rows``, ``dropped_na``, ``dropped_non_numeric``,
            ``dropped_duplicate_ids``, ``dropped_bad_sequence``, ``unmatched``
            (+ examples), ``n_groups``, ``split_kind``, ``subsampled_from``.
    Raises:
        LabelJoinError: no label row matches (gene_id join) or no sequence is usable.
    """
    path = Path(data_root) / task.file
    labels = read_labels(task, data_root)
    notes: dict = {"task": task.name, "file": task.file, "n_label_rows": len(labels)}

    labels = labels[labels[task.id_column].notna()].copy()
    target = pd.to_numeric(labels[task.target], errors="coerce")
    was_na = labels[task.target].isna()
    notes["dropped_na"] = int(was_na.sum()) + (notes["n_label_rows"] - len(was_na))
    notes["dropped_non_numeric"] = int((target.isna() & ~was_na).sum())
    labels = labels.assign(target=target.astype(float))[target.notna()]

    if task.join == "gene_id":
        labels["id"] = unversioned_gene_id(labels[task.id_column])
    else:
        labels["id"] = labels[task.id_column].astype(str)
    duplicated = labels["id"].duplicated()
    notes["dropped_duplicate_ids"] = int(duplicated.sum())
    labels = labels[~duplicated]

    if task.join == "gene_id":
        table = _join_gene_id(task, path, labels, transcripts, groups, notes)
    else:
        table = _join_sequence(task, path, labels, notes)

    if task.max_rows is not None and len(table) > task.max_rows:
        notes["subsampled_from"] = len(table)
        table = table.sample(n=task.max_rows, random_state=sample_seed).sort_index()
    table = table.reset_index(drop=True)
    table["group"] = table["group"].astype(str)
    table = schemas.PROBE_ROWS.validate(table)
    notes["n"] = len(table)
    notes["split_kind"] = _split_kind(task)
    notes["n_groups"] = int(table["group"].nunique())
    return table, notes


def _join_gene_id(
    task: ProbeTask, path: Path, labels: pd.DataFrame, transcripts: pd.DataFrame, groups: pd.DataFrame, notes: dict
) -> pd.DataFrame:
    """One representative transcript per labelled gene: the longest (ties: smallest transcript id)."""
    tx = transcripts.assign(gene_key=unversioned_gene_id(transcripts["gene_id"]), _len=transcripts["seq"].str.len())
    tx = tx.sort_values(["gene_key", "_len", "transcript_id"], ascending=[True, False, True])
    representative = tx.drop_duplicates("gene_key").drop(columns="_len")
    matched = labels["id"].isin(representative["gene_key"])
    unmatched = labels.loc[~matched, "id"]
    notes["unmatched"] = int(len(unmatched))
    notes["unmatched_examples"] = unmatched.head(SHOW_IDS).tolist()
    if not matched.any():
        raise LabelJoinError(
            f"{path}: no value of column {task.id_column!r} matches an (unversioned) gene_id of the "
            f"{len(representative)} annotated genes; first unmatched ids: {unmatched.head(SHOW_IDS).tolist()}; "
            f"first annotated genes: {representative['gene_key'].head(SHOW_IDS).tolist()}"
        )
    table = labels.loc[matched, ["id", "target"] + ([_group_column(task)] if _group_column(task) else [])].merge(
        representative[["gene_key", "transcript_id", "gene_id", "seq", "cds_start", "cds_end", "exon_ends"]],
        left_on="id",
        right_on="gene_key",
        how="inner",
    ).drop(columns="gene_key")
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


def _join_sequence(task: ProbeTask, path: Path, labels: pd.DataFrame, notes: dict) -> pd.DataFrame:
    """The label file carries the sequence: normalise it (upper case, U -> T), drop what is not ACGTN."""
    if task.group_by == "homology":
        raise ValueError(
            f"probe task {task.name!r}: group_by homology needs join gene_id; "
            "use prefix<N> or a column of the label file"
        )
    seq = labels["id"].str.strip().str.upper().str.replace("U", "T", regex=False)
    usable = seq.str.fullmatch(r"[ACGTN]+")
    notes["dropped_bad_sequence"] = int((~usable).sum())
    notes["dropped_bad_sequence_examples"] = labels.loc[~usable, "id"].head(SHOW_IDS).str.slice(0, 60).tolist()
    notes["unmatched"] = 0
    if not usable.any():
        raise LabelJoinError(
            f"{path}: no value of column {task.id_column!r} is a usable nucleotide sequence (ACGTN/U); "
            f"first values: {labels['id'].head(SHOW_IDS).str.slice(0, 60).tolist()}"
        )
    table = labels.loc[usable].assign(seq=seq[usable])
    table["group"] = _groups_of(task, table)
    return table[["id", "seq", "target", "group"]]


def _groups_of(task: ProbeTask, table: pd.DataFrame) -> pd.Series:
    prefix = _prefix_length(task)
    if prefix is not None:
        return table["seq"].str.slice(0, prefix)
    return table[task.group_by].astype(str)


def _split_kind(task: ProbeTask) -> str:
    prefix = _prefix_length(task)
    if task.group_by == "homology":
        return "homology_group"
    if prefix is not None:
        return f"shared {prefix}-nt prefix"
    return f"label column {task.group_by!r}"


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


# --------------------------------------------------------------------------- evaluation


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


def _correlations(y: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    """Pearson and Spearman r; NaN where either side is constant or there are < 2 rows."""
    if len(y) < 2 or np.ptp(y) == 0 or np.ptp(pred) == 0:
        return float("nan"), float("nan")
    return float(stats.pearsonr(y, pred).statistic), float(stats.spearmanr(y, pred).statistic)


def probe_splits(groups: np.ndarray, cfg: ProbeConfig) -> list[np.ndarray]:
    """One ``(n,)`` array of "train" | "val" | "test" per seed; the same for every feature set of a task."""
    return [split_by_group(np.asarray(groups), cfg.fractions, seed) for seed in range(cfg.seeds)]


def evaluate(features: np.ndarray, y: np.ndarray, groups: np.ndarray, cfg: ProbeConfig) -> dict:
    """Ridge probe over ``cfg.seeds`` group-disjoint splits.

    Args:
        features: (n, d) one row per labelled sequence.
        y: (n,) measured target.
        groups: (n,) group of each row; a group never straddles two splits.
    Returns:
        ``per_seed``: lists per metric, plus ``n_train``, ``n_val``, ``n_test``, ``alpha``;
        for each metric its mean and ``<metric>_ci95`` = [lo, hi] (t-interval over seeds);
        ``n``; ``alpha_selection``; ``predictions``: seed 0 test rows
        (``index``, ``measured``, ``predicted``).
    """
    features = np.asarray(features, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    groups = np.asarray(groups)
    if not (len(features) == len(y) == len(groups)):
        raise ValueError(f"features {features.shape}, y {y.shape} and groups {groups.shape} differ in length")
    per_seed: dict[str, list] = {m: [] for m in (*METRICS, "n_train", "n_val", "n_test", "alpha")}
    predictions: dict = {}
    for seed, split in enumerate(probe_splits(groups, cfg)):
        train, val, test = (split == s for s in schemas.SPLITS)
        if not train.any() or not test.any():
            raise ValueError(
                f"seed {seed}: the split has {train.sum()} train and {test.sum()} test rows "
                f"({len(np.unique(groups))} groups): too few groups to probe"
            )
        scaler = StandardScaler().fit(features[train])
        x = scaler.transform(features)
        fit = train | val
        if val.any():
            # Score each alpha on the val split, then refit on train + val.
            fold = np.where(val[fit], 0, -1)
            model = RidgeCV(alphas=cfg.alphas, cv=PredefinedSplit(fold)).fit(x[fit], y[fit])
        else:
            # No val split: efficient leave-one-out over train.
            model = RidgeCV(alphas=cfg.alphas).fit(x[fit], y[fit])
        pred = model.predict(x[test])
        pearson, spearman = _correlations(y[test], pred)
        per_seed["pearson_r"].append(pearson)
        per_seed["spearman_r"].append(spearman)
        per_seed["mse"].append(float(np.mean((y[test] - pred) ** 2)))
        per_seed["n_train"].append(int(fit.sum()))
        per_seed["n_val"].append(int(val.sum()))
        per_seed["n_test"].append(int(test.sum()))
        per_seed["alpha"].append(float(model.alpha_))
        if seed == 0:
            predictions = {
                "index": np.flatnonzero(test).tolist(),
                "measured": y[test].tolist(),
                "predicted": pred.tolist(),
            }
    result: dict = {"per_seed": per_seed, "n": int(len(y))}
    for metric in METRICS:
        mean, lo, hi = mean_ci(per_seed[metric])
        result[metric] = mean
        result[f"{metric}_ci95"] = [lo, hi]
    result["alpha_selection"] = "val split (group-disjoint), refit on train+val; scaler fit on train"
    result["predictions"] = predictions
    return result


# --------------------------------------------------------------------------- the stage


def run_probes(
    cfg: Config, data_root: Path, transcripts_path: Path, groups_path: Path, model_dir: Path, out_dir: Path
) -> dict:
    """Probe every task with the trained encoder and both baselines; write metrics, tables, predictions, plot.

    Writes under ``out_dir``: metrics.json (``{task: {model: {metric, metric_ci95, n, ...}}}``),
    table.csv, table.md, tasks.json (per-task notes: rows dropped and why),
    predictions.csv (seed 0 test rows) and predicted_vs_measured.png.
    Returns the metrics dict.
    """
    from isoclr import embed, report  # torch and matplotlib load only when the stage runs

    transcripts = schemas.TRANSCRIPTS.validate(pd.read_parquet(transcripts_path))
    groups = schemas.GROUPS.validate(pd.read_parquet(groups_path))
    encoders = {
        "isoclr": embed.load_encoder(Path(model_dir)),
        "random_init": embed.random_encoder(cfg.model, seed=cfg.train.seed),
    }
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    metrics: dict = {}
    notes: dict = {}
    prediction_rows: list[pd.DataFrame] = []
    for task in cfg.probe.tasks:
        table, task_notes = task_table(task, data_root, transcripts, groups)
        notes[task.name] = task_notes
        log.info("probe %s: %d rows, %d groups", task.name, task_notes["n"], task_notes["n_groups"])
        features = {
            name: embed.embed_table(encoder, table, batch_size=cfg.probe.embed_batch_size, progress=True)
            for name, encoder in encoders.items()
        }
        features["kmer"] = kmer_features(table["seq"].tolist(), cfg.probe.kmer_k)
        metrics[task.name] = {}
        for name in MODELS:
            result = evaluate(features[name], table["target"].to_numpy(), table["group"].to_numpy(), cfg.probe)
            metrics[task.name][name] = _summary(result)
            pred = result["predictions"]
            prediction_rows.append(
                pd.DataFrame(
                    {"task": task.name, "model": name, "measured": pred["measured"], "predicted": pred["predicted"]}
                )
            )

    predictions = schemas.PROBE_PREDICTIONS.validate(pd.concat(prediction_rows, ignore_index=True))
    table = report.results_table(metrics)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, allow_nan=True) + "\n")
    (out_dir / "tasks.json").write_text(json.dumps(notes, indent=2) + "\n")
    table.to_csv(out_dir / "table.csv", index=False)
    (out_dir / "table.md").write_text(report.markdown_report(table, notes, cfg.probe))
    predictions.to_csv(out_dir / "predictions.csv", index=False)
    report.plot_predictions(predictions, metrics, out_dir / "predicted_vs_measured.png")
    return metrics


def _summary(result: dict) -> dict:
    """The flat part of an :func:`evaluate` result that goes to metrics.json."""
    summary: dict = {}
    for metric in METRICS:
        summary[metric] = _finite_or_none(result[metric])
        summary[f"{metric}_ci95"] = [_finite_or_none(v) for v in result[f"{metric}_ci95"]]
    summary["n"] = result["n"]
    summary["n_train"] = float(np.mean(result["per_seed"]["n_train"]))
    summary["n_test"] = float(np.mean(result["per_seed"]["n_test"]))
    summary["seeds"] = len(result["per_seed"]["n_test"])
    return summary


def _finite_or_none(value: float) -> float | None:
    """NaN is not JSON: a metric that could not be computed is written as null."""
    return float(value) if np.isfinite(value) else None
