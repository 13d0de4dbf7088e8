"""k-nearest-neighbour label agreement in embedding space: the number behind a latent-space map.

A map can look structured by chance of the projection; the share of a point's
k nearest neighbours (cosine, the point itself excluded) that share its label
cannot. Single labels (family, homology group, GO root term): the share with
the same label. GO terms (multilabel): the mean Jaccard index of the point's
and each neighbour's term sets. Jaccard was picked over "shares at least one
term" because it is graded (3 of 3 terms shared counts more than 1 of 5) and
does not saturate when one term is held by most genes, as the common GO terms
are. Rows without any term are left out (as queries and as neighbours): an
empty set says "unknown", not "unlike everything". Isoforms of one gene carry
the gene's labels and nearly the same sequence, so they would agree in any
embedding: pass ``groups`` = gene id to exclude a row's own gene from its
neighbours (or keep one isoform per gene).

:func:`compare_agreement` pairs two embeddings of the same rows (model vs
random init) on disjoint random folds of the rows, so the per-fold differences
are independent given the embeddings, and gives the mean difference, its 95%
t-interval and a paired t-test p-value.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

CI_LEVEL = 0.95
MEASURES = ("jaccard", "any")
# Rows of the (block, n) similarity matrix computed at once: bounds memory at block * n * 8 bytes.
_BLOCK = 1024


def _unit(emb: np.ndarray) -> np.ndarray:
    emb = np.asarray(emb, dtype=np.float64)
    if emb.ndim != 2:
        raise ValueError(f"embeddings must be (n, d), got {emb.shape}")
    norm = np.linalg.norm(emb, axis=1, keepdims=True)
    return emb / np.where(norm > 0, norm, 1.0)  # a zero vector has cosine 0 to everything


def _group_codes(groups: Sequence | None, n: int) -> np.ndarray | None:
    if groups is None:
        return None
    codes, _ = pd.factorize(pd.Series(groups), use_na_sentinel=False)
    if len(codes) != n:
        raise ValueError(f"{len(codes)} groups for {n} rows")
    return codes


def knn(emb: np.ndarray, k: int, groups: Sequence | None = None) -> np.ndarray:
    """(n, k) indices of each row's k nearest rows by cosine similarity, nearest first, itself excluded.

    Args:
        emb: (n, d) embeddings.
        groups: (n,) optional; rows of the row's own group are not neighbours either. Pass the gene id:
            isoforms of one gene are near-copies that share every gene-level label, in any embedding.
    Exact ties at the k-th place are broken arbitrarily.
    """
    x = _unit(emb)
    n = len(x)
    codes = _group_codes(groups, n)
    largest = 1 if codes is None else int(np.bincount(codes).max())
    if not 1 <= k <= n - largest:
        raise ValueError(f"k must be in 1..{n - largest} (n = {n}, largest group {largest}), got {k}")
    out = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, _BLOCK):
        sim = x[start : start + _BLOCK] @ x.T  # (b, n)
        rows = np.arange(len(sim))
        sim[rows, start + rows] = -np.inf
        if codes is not None:
            sim[codes[start : start + _BLOCK, None] == codes[None, :]] = -np.inf
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(sim, top, axis=1), axis=1, kind="stable")
        out[start : start + len(sim)] = np.take_along_axis(top, order, axis=1)
    return out


def label_agreement(emb: np.ndarray, labels: Sequence, k: int = 10, groups: Sequence | None = None) -> dict:
    """Share of each row's k nearest neighbours with the row's own label, averaged over rows.

    Args:
        emb: (n, d) embeddings.
        labels: (n,) one label per row (no missing values).
        groups: (n,) optional, see :func:`knn`.
    Returns:
        ``agreement``; ``chance``: its expectation when neighbours are drawn at random from the rows
        allowed (sum_c n_c (n_c - 1) / (n (n - 1)) without groups);
        ``per_row``: (n,); ``n``, ``k``.
    """
    codes, _ = pd.factorize(pd.Series(labels), use_na_sentinel=True)
    if len(codes) != len(emb):
        raise ValueError(f"{len(codes)} labels for {len(emb)} embeddings")
    if (codes < 0).any():
        raise ValueError(f"{int((codes < 0).sum())} rows have no label: leave them out first")
    per_row = (codes[knn(emb, k, groups)] == codes[:, None]).mean(axis=1)
    n = len(codes)
    group = _group_codes(groups, n)
    group = np.arange(n) if group is None else group  # no groups: each row is its own
    same_label = np.bincount(codes)[codes]
    pairs = pd.DataFrame({"group": group, "label": codes})
    same_label_in_group = pairs.groupby(["group", "label"])["group"].transform("size").to_numpy()
    group_size = np.bincount(group)[group]
    chance = float(np.mean((same_label - same_label_in_group) / (n - group_size)))
    return {"agreement": float(per_row.mean()), "chance": chance, "per_row": per_row, "n": n, "k": k}


def _set_similarity(a: np.ndarray, b: np.ndarray, measure: str) -> np.ndarray:
    """Jaccard index (or 1 if any term is shared) of the term sets in rows of a (m, t) and b (m, j, t)."""
    inter = (a[:, None, :] & b).sum(axis=-1)
    if measure == "any":
        return (inter > 0).astype(np.float64)
    union = a.sum(axis=1)[:, None] + b.sum(axis=-1) - inter
    return inter / union


def _chance_sets(y: np.ndarray, measure: str, groups: np.ndarray | None = None) -> float:
    """Mean over rows of the mean term-set similarity to every row allowed as a neighbour (the random level)."""
    n = len(y)
    size = y.sum(axis=1)
    yf = y.astype(np.float64)
    per_row = np.empty(n)
    for start in range(0, n, _BLOCK):
        inter = yf[start : start + _BLOCK] @ yf.T  # (b, n)
        if measure == "any":
            sim = (inter > 0).astype(np.float64)
        else:
            sim = inter / (size[start : start + _BLOCK, None] + size[None, :] - inter)
        sim[np.arange(len(sim)), start + np.arange(len(sim))] = 0.0
        allowed = np.full(len(sim), n - 1)
        if groups is not None:
            same = groups[start : start + _BLOCK, None] == groups[None, :]
            sim[same] = 0.0
            allowed = n - same.sum(axis=1)
        per_row[start : start + len(sim)] = sim.sum(axis=1) / allowed
    return float(per_row.mean())


def multilabel_agreement(
    emb: np.ndarray, y: np.ndarray, k: int = 10, measure: str = "jaccard", groups: Sequence | None = None
) -> dict:
    """Mean term-set similarity between each row and its k nearest neighbours (rows without a term left out).

    Args:
        emb: (n, d) embeddings.
        y: (n, t) 0/1 term labels.
        measure: "jaccard" (mean Jaccard index) or "any" (share of neighbours sharing at least one term).
        groups: (n,) optional, see :func:`knn`.
    Returns:
        ``agreement``, ``chance`` (rows' mean similarity to all rows allowed as neighbours), ``per_row`` (m,) over the
        m rows kept, ``n`` = m, ``dropped_no_term``, ``k``, ``measure``.
    """
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}, got {measure!r}")
    y = np.asarray(y)
    if y.ndim != 2 or len(y) != len(emb):
        raise ValueError(f"y {y.shape} must be (n, terms) with n = {len(emb)} embeddings")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y must hold 0/1 only")
    keep = y.any(axis=1)
    y = y[keep].astype(bool)
    emb = np.asarray(emb)[keep]
    kept_groups = None if groups is None else _group_codes(groups, len(keep))[keep]
    neighbours = knn(emb, k, kept_groups)
    per_row = _set_similarity(y, y[neighbours], measure).mean(axis=1)
    return {
        "agreement": float(per_row.mean()),
        "chance": _chance_sets(y, measure, kept_groups),
        "per_row": per_row,
        "n": int(keep.sum()),
        "dropped_no_term": int((~keep).sum()),
        "k": k,
        "measure": measure,
    }


def agreement(emb: np.ndarray, labels, k: int = 10, measure: str = "jaccard", groups: Sequence | None = None) -> dict:
    """:func:`multilabel_agreement` for (n, t) 0/1 labels, :func:`label_agreement` for (n,) labels."""
    arr = np.asarray(labels)
    if arr.ndim == 2:
        return multilabel_agreement(emb, arr, k, measure, groups)
    return label_agreement(emb, labels, k, groups)


def t_interval(values: np.ndarray, level: float = CI_LEVEL) -> tuple[float, float, float]:
    """Mean and t-interval of (r,) values; the interval is NaN for fewer than 2 values."""
    v = np.asarray(values, dtype=np.float64)
    mean = float(v.mean())
    if len(v) < 2:
        return mean, float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + level / 2, df=len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return mean, mean - half, mean + half


def fold_assignment(n: int, folds: int, seed: int = 0, groups: Sequence | None = None) -> np.ndarray:
    """(n,) fold index in 0..folds-1 of each row: a seeded random deal of rows, or of whole groups with ``groups``
    (then excluding a row's own group means the same in every fold)."""
    rng = np.random.default_rng(seed)
    if groups is None:
        return rng.permutation(n) % folds
    codes = _group_codes(groups, n)
    return (rng.permutation(codes.max() + 1) % folds)[codes]


def compare_agreement(
    emb_a: np.ndarray | Sequence[np.ndarray],
    emb_b: np.ndarray | Sequence[np.ndarray],
    labels,
    k: int = 10,
    folds: int = 5,
    seed: int = 0,
    measure: str = "jaccard",
    groups: Sequence | None = None,
    fold_of: np.ndarray | None = None,
) -> dict:
    """Paired kNN agreement of two embeddings of the same rows, over ``folds`` disjoint random folds of the rows.

    Args:
        emb_a, emb_b: (n, d_a) and (n, d_b) embeddings (e.g. model and random init), or a list of them,
            one per seed; fold r uses entry r modulo the list's length, and only that fold's rows of it
            (the others may be NaN: not embedded). A used row that is not finite is an error.
        labels: (n,) single labels or (n, t) 0/1 terms (see :func:`agreement`).
        groups: (n,) optional, see :func:`knn`; a group's rows are kept in one fold.
        fold_of: (n,) optional fold of each row in 0..folds-1 (default :func:`fold_assignment` with ``seed``):
            one assignment shared by several label sets lets each seed's embedding cover only its folds.
    Returns:
        ``per_fold``: DataFrame fold, n, a, b, diff (a - b), chance; ``a``, ``b``, ``chance``: means over
        folds; ``diff`` and ``diff_ci95`` = [lo, hi] (t-interval); ``p_value``: two-sided paired t-test
        (NaN for one fold or a zero-variance difference); ``k``, ``folds``, ``seed``.
    """
    runs_a = [emb_a] if isinstance(emb_a, np.ndarray) else list(emb_a)
    runs_b = [emb_b] if isinstance(emb_b, np.ndarray) else list(emb_b)
    n = len(labels)
    if any(len(e) != n for e in runs_a + runs_b):
        raise ValueError(f"every embedding needs the {n} rows of the labels, in the same order")
    if folds < 1 or n // folds <= k:
        raise ValueError(f"{n} rows in {folds} folds leave <= k = {k} rows per fold")
    if fold_of is None:
        fold_of = fold_assignment(n, folds, seed, groups)
    fold_of = np.asarray(fold_of)
    if fold_of.shape != (n,) or not np.isin(fold_of, np.arange(folds)).all():
        raise ValueError(f"fold_of must be (n = {n},) fold indices in 0..{folds - 1}")
    group_arr = None if groups is None else np.asarray(groups, dtype=object)
    labels_arr = np.asarray(labels)
    rows = []
    for r in range(folds):
        idx = np.flatnonzero(fold_of == r)
        sub, sub_groups = labels_arr[idx], None if group_arr is None else group_arr[idx]
        emb_ra = np.asarray(runs_a[r % len(runs_a)])[idx]
        emb_rb = np.asarray(runs_b[r % len(runs_b)])[idx]
        if not (np.isfinite(emb_ra).all() and np.isfinite(emb_rb).all()):
            raise ValueError(f"fold {r}: some of its rows are not embedded (NaN or inf) in the run it uses")
        a = agreement(emb_ra, sub, k, measure, sub_groups)
        b = agreement(emb_rb, sub, k, measure, sub_groups)
        rows.append({"fold": r, "n": a["n"], "a": a["agreement"], "b": b["agreement"], "chance": a["chance"]})
    per_fold = pd.DataFrame(rows)
    per_fold.insert(4, "diff", per_fold["a"] - per_fold["b"])
    diff, lo, hi = t_interval(per_fold["diff"].to_numpy())
    p_value = float("nan")
    if folds > 1 and per_fold["diff"].std(ddof=1) > 0:
        p_value = float(stats.ttest_rel(per_fold["a"], per_fold["b"]).pvalue)
    return {
        "per_fold": per_fold,
        "a": float(per_fold["a"].mean()),
        "b": float(per_fold["b"].mean()),
        "chance": float(per_fold["chance"].mean()),
        "diff": diff,
        "diff_ci95": [lo, hi],
        "p_value": p_value,
        "k": k,
        "folds": folds,
        "seed": seed,
    }
