"""Per-term and macro AUROC / AUPRC of a multilabel probe (GO terms), skipping one-class terms.

A term whose test rows hold one class only has no AUROC. Averaging it in as
0.5 (or 0) would pull the macro mean towards chance by an amount that depends
on the split, not the model, so such a term is left out of the mean and named
in ``skipped``; the macro means are over the scored terms only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

METRICS = ("auroc", "auprc")


def multilabel_scores(y: np.ndarray, scores: np.ndarray, terms: Sequence[str] | None = None) -> dict:
    """AUROC and AUPRC (average precision) per term and their macro means.

    Args:
        y: (n, t) 0/1 labels.
        scores: (n, t) scores, higher = more likely the term (probabilities or decision values).
        terms: t names (default "0".."t-1").
    Returns:
        ``per_term``: DataFrame, one row per term: term, n, n_positive, auroc, auprc (NaN where skipped);
        ``auroc``, ``auprc``: macro means over scored terms (NaN when none is);
        ``n_terms_scored``; ``skipped``: {term: reason} for one-class terms.
    """
    y = np.asarray(y)
    scores = np.asarray(scores, dtype=np.float64)
    if y.ndim != 2 or y.shape != scores.shape:
        raise ValueError(f"y {y.shape} and scores {scores.shape} must be the same (n, terms) shape")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("y must hold 0/1 only")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite")
    terms = [str(i) for i in range(y.shape[1])] if terms is None else [str(t) for t in terms]
    if len(terms) != y.shape[1]:
        raise ValueError(f"{len(terms)} term names for {y.shape[1]} columns")
    rows, skipped = [], {}
    for j, term in enumerate(terms):
        positive = int(y[:, j].sum())
        row = {"term": term, "n": len(y), "n_positive": positive, "auroc": np.nan, "auprc": np.nan}
        if positive in (0, len(y)):
            skipped[term] = f"one class in the split ({positive} of {len(y)} rows positive)"
        else:
            row["auroc"] = float(roc_auc_score(y[:, j], scores[:, j]))
            row["auprc"] = float(average_precision_score(y[:, j], scores[:, j]))
        rows.append(row)
    per_term = pd.DataFrame(rows, columns=["term", "n", "n_positive", *METRICS])
    scored = per_term.dropna(subset=list(METRICS))
    out: dict = {"per_term": per_term, "n_terms_scored": len(scored), "skipped": skipped}
    for metric in METRICS:
        out[metric] = float(scored[metric].mean()) if len(scored) else float("nan")
    return out
