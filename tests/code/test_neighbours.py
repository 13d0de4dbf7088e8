"""kNN label agreement against a brute-force reference, and on planted structure (clusters high, shuffled chance)."""

from __future__ import annotations

import numpy as np
import pytest

from isoclr import neighbours


def _brute_knn(emb: np.ndarray, k: int, groups=None) -> list[list[int]]:
    out = []
    for i in range(len(emb)):
        sims = []
        for j in range(len(emb)):
            if j != i and (groups is None or groups[j] != groups[i]):
                cos = emb[i] @ emb[j] / (np.linalg.norm(emb[i]) * np.linalg.norm(emb[j]))
                sims.append((-cos, j))
        out.append([j for _, j in sorted(sims)[:k]])
    return out


def _jaccard(a, b) -> float:
    a, b = set(np.flatnonzero(a)), set(np.flatnonzero(b))
    return len(a & b) / len(a | b)


def _clusters(n: int, n_clusters: int, d: int = 16, spread: float = 0.3, seed: int = 0):
    rng = np.random.default_rng(seed)
    label = np.arange(n) % n_clusters
    centres = rng.normal(size=(n_clusters, d)) * 3
    return centres[label] + rng.normal(scale=spread, size=(n, d)), label


def test_knn_and_agreement_match_brute_force(monkeypatch):
    monkeypatch.setattr(neighbours, "_BLOCK", 7)  # several blocks, the last one short
    rng = np.random.default_rng(1)
    emb = rng.normal(size=(40, 5))
    labels = rng.choice(["x", "y", "z"], 40)
    ref = _brute_knn(emb, 4)
    assert neighbours.knn(emb, 4).tolist() == ref
    expected = np.mean([np.mean([labels[j] == labels[i] for j in ref[i]]) for i in range(40)])
    result = neighbours.label_agreement(emb, labels, k=4)
    assert result["agreement"] == pytest.approx(expected)
    counts = np.unique(labels, return_counts=True)[1]
    assert result["chance"] == pytest.approx(sum(c * (c - 1) for c in counts) / (40 * 39))


def test_own_group_is_not_a_neighbour_and_chance_counts_allowed_pairs_only(monkeypatch):
    monkeypatch.setattr(neighbours, "_BLOCK", 9)
    rng = np.random.default_rng(7)
    genes = np.repeat([f"g{i}" for i in range(12)], 3)
    emb = rng.normal(size=(12, 4))[np.arange(36) // 3] + 0.05 * rng.normal(size=(36, 4))  # isoforms: near-copies
    labels = np.repeat(rng.choice(["x", "y", "z"], 12), 3)  # gene-level labels copied to isoforms
    ref = _brute_knn(emb, 5, genes)
    assert neighbours.knn(emb, 5, genes).tolist() == ref
    result = neighbours.label_agreement(emb, labels, k=5, groups=genes)
    assert result["agreement"] == pytest.approx(np.mean([np.mean(labels[ref[i]] == labels[i]) for i in range(36)]))
    allowed = [[j for j in range(36) if genes[j] != genes[i]] for i in range(36)]
    assert result["chance"] == pytest.approx(np.mean([np.mean(labels[allowed[i]] == labels[i]) for i in range(36)]))
    # Without groups, a gene's own isoforms make every model look good.
    assert neighbours.label_agreement(emb, labels, k=2)["agreement"] == 1.0
    y = (rng.random((12, 4)) < 0.4).astype(int)[np.arange(36) // 3]
    y[y.sum(axis=1) == 0, 0] = 1
    multi = neighbours.multilabel_agreement(emb, y, k=5, groups=genes)
    pair_sims = [[_jaccard(y[i], y[j]) for j in allowed[i]] for i in range(36)]
    assert multi["agreement"] == pytest.approx(
        np.mean([np.mean([_jaccard(y[i], y[j]) for j in ref[i]]) for i in range(36)])
    )
    assert multi["chance"] == pytest.approx(np.mean([np.mean(p) for p in pair_sims]))
    with pytest.raises(ValueError, match="largest group 3"):
        neighbours.knn(emb, 34, genes)
    folds = neighbours.compare_agreement(emb, emb[::-1], labels, k=3, folds=3, groups=genes)
    assert folds["per_fold"]["n"].tolist() == [12, 12, 12]  # whole genes per fold


@pytest.mark.parametrize("measure", ["jaccard", "any"])
def test_multilabel_agreement_matches_brute_force(measure, monkeypatch):
    monkeypatch.setattr(neighbours, "_BLOCK", 8)
    rng = np.random.default_rng(2)
    emb = rng.normal(size=(30, 6))
    y = (rng.random((30, 5)) < 0.3).astype(int)
    y[:3] = 0  # rows without a term are left out
    kept = np.flatnonzero(y.any(axis=1))
    ref = _brute_knn(emb[kept], 3)
    sim = (
        (lambda a, b: float(len(set(np.flatnonzero(a)) & set(np.flatnonzero(b))) > 0)) if measure == "any" else _jaccard
    )
    yk = y[kept]
    expected = np.mean([np.mean([sim(yk[i], yk[j]) for j in ref[i]]) for i in range(len(kept))])
    pairs = [sim(yk[i], yk[j]) for i in range(len(kept)) for j in range(len(kept)) if i != j]
    result = neighbours.multilabel_agreement(emb, y, k=3, measure=measure)
    assert result["agreement"] == pytest.approx(expected)
    assert result["chance"] == pytest.approx(np.mean(pairs))
    assert result["n"] == len(kept) and result["dropped_no_term"] == 30 - len(kept)


def test_planted_clusters_agree_and_shuffled_labels_are_at_chance():
    emb, label = _clusters(600, 4)
    planted = neighbours.label_agreement(emb, label, k=10)
    assert planted["agreement"] > 0.99 and planted["chance"] == pytest.approx(149 / 599)
    shuffled = neighbours.label_agreement(emb, np.random.default_rng(0).permutation(label), k=10)
    assert abs(shuffled["agreement"] - shuffled["chance"]) < 0.03


def test_planted_multilabel_structure():
    emb, label = _clusters(400, 4, seed=3)
    terms = np.array([[1, 1, 0, 0, 0], [0, 1, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 1, 1]])
    y = terms[label]
    planted = neighbours.multilabel_agreement(emb, y, k=10)
    assert planted["agreement"] == pytest.approx(1.0)
    shuffled = neighbours.multilabel_agreement(emb, np.random.default_rng(0).permutation(y), k=10)
    assert abs(shuffled["agreement"] - shuffled["chance"]) < 0.04 and shuffled["chance"] < 0.5


def test_compare_model_against_random_init():
    emb, label = _clusters(500, 5, seed=4)
    noise = np.random.default_rng(5).normal(size=emb.shape)
    result = neighbours.compare_agreement(emb, [noise, noise[:, ::-1].copy()], label, k=5, folds=5)
    fold = result["per_fold"]
    assert len(fold) == 5 and fold["n"].sum() == 500
    assert result["a"] > 0.95 and abs(result["b"] - result["chance"]) < 0.1
    assert result["diff_ci95"][0] > 0.5 and result["p_value"] < 1e-4
    same = neighbours.compare_agreement(noise, noise, label, k=5, folds=4)
    assert same["diff"] == 0 and np.isnan(same["p_value"])
    two = neighbours.compare_agreement(noise, np.random.default_rng(6).normal(size=emb.shape), label, k=5, folds=5)
    assert two["p_value"] > 0.001  # two random embeddings: no real difference


def test_errors():
    emb = np.zeros((5, 2))
    with pytest.raises(ValueError, match="k must be"):
        neighbours.knn(emb, 5)
    with pytest.raises(ValueError, match="no label"):
        neighbours.label_agreement(np.eye(4), ["a", None, "b", "a"], k=1)
    with pytest.raises(ValueError, match="rows per fold"):
        neighbours.compare_agreement(np.eye(10), np.eye(10), list("ab" * 5), k=3, folds=5)


def test_compare_agreement_per_fold_matches_brute_force_on_a_given_fold_assignment():
    """Each fold's numbers are the brute-force agreement on that fold's rows alone (own gene excluded), with the
    random run the fold uses; rows outside a run's folds may be NaN (not embedded)."""
    rng = np.random.default_rng(11)
    genes = np.repeat([f"g{i}" for i in range(30)], 2)
    labels = np.repeat(rng.choice(["x", "y", "z"], 30), 2)
    model = rng.normal(size=(60, 6))
    runs = [rng.normal(size=(60, 6)) for _ in range(2)]
    fold_of = neighbours.fold_assignment(60, 4, seed=3, groups=genes)
    assert all((fold_of[genes == g] == fold_of[genes == g][0]).all() for g in set(genes))  # genes kept whole
    partial = [run.copy() for run in runs]
    for i, run in enumerate(partial):
        run[fold_of % 2 != i] = np.nan
    result = neighbours.compare_agreement(model, partial, labels, k=3, folds=4, groups=genes, fold_of=fold_of)
    for r, row in result["per_fold"].iterrows():
        idx = np.flatnonzero(fold_of == r)
        for emb, column in ((model, "a"), (runs[r % 2], "b")):
            ref = _brute_knn(emb[idx], 3, genes[idx])
            expected = np.mean([np.mean(labels[idx][ref[i]] == labels[idx][i]) for i in range(len(idx))])
            assert row[column] == pytest.approx(expected)
    with pytest.raises(ValueError, match="fold indices"):
        neighbours.compare_agreement(model, runs, labels, k=3, folds=4, groups=genes, fold_of=fold_of + 1)
