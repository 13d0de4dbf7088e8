"""k-mer frequencies: counted by hand, against a naive count, never across two sequences."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from isoclr.kmers import kmer_features
from tests.helpers import BASES


def test_kmer_frequencies_by_hand():
    f = kmer_features(["ACGTA", "AANAA", "A"], k=2)
    assert f.shape == (3, 16)
    # ACGTA: AC, CG, GT, TA once each (index = 4 * first + second, A=0 C=1 G=2 T=3)
    expected = np.zeros(16)
    expected[[1, 6, 11, 12]] = 0.25
    np.testing.assert_allclose(f[0], expected)
    # N breaks k-mers: only the two AA windows count
    assert f[1, 0] == 1.0 and f[1].sum() == 1.0
    # too short for one k-mer: an all-zero row, not NaN
    assert not f[2].any()


def test_kmers_do_not_cross_sequence_boundaries():
    f = kmer_features(["AC", "GT"], k=2)
    assert f[0, 1] == 1.0 and f[1, 11] == 1.0  # AC, GT
    assert f[:, 6].sum() == 0  # "CG" only exists across the boundary


def test_kmer_features_match_a_naive_count():
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(BASES, rng.integers(3, 40))) for _ in range(30)] + ["acgun", "GGG"]
    k = 3
    index = {"".join(p): i for i, p in enumerate(itertools.product("ACGT", repeat=k))}
    f = kmer_features(seqs, k)
    for row, seq in zip(f, seqs, strict=True):
        seq = seq.upper().replace("U", "T")
        counts = Counter(seq[i : i + k] for i in range(len(seq) - k + 1))
        counts = {kmer: c for kmer, c in counts.items() if kmer in index}
        expected = np.zeros(4**k)
        for kmer, c in counts.items():
            expected[index[kmer]] = c / sum(counts.values())
        np.testing.assert_allclose(row, expected)


def test_kmer_features_ignore_non_ascii_without_shifting_positions():
    f = kmer_features(["AßC", "ACGT"], k=2)  # "ß".upper() is "SS": must not shift the next sequence
    assert not f[0].any()
    np.testing.assert_allclose(f[1, [1, 6, 11]], 1 / 3)


def test_k_below_one_is_refused_and_no_rows_give_an_empty_matrix():
    with pytest.raises(ValueError, match="k must be >= 1"):
        kmer_features(["ACGT"], 0)
    assert kmer_features([], 3).shape == (0, 64)
