"""Group-aware train/val/test splits: no group ever straddles two splits.

Used for the contrastive training split (groups = homology groups) and for the
probe splits (homology groups, parent UTRs, overlapping fragments).
"""

from __future__ import annotations

import numpy as np

from isoclr.config import SplitFractions
from isoclr.schemas import SPLITS


def split_by_group(groups: np.ndarray, fractions: SplitFractions, seed: int) -> np.ndarray:
    """Assign each item the split of its group.

    Groups are shuffled with ``seed`` and dealt to splits until each split holds
    its fraction of the *items* (not of the groups), so one large family cannot
    skew the sizes by much.

    Args:
        groups: (n,) group label of each item.
    Returns:
        (n,) array of "train" | "val" | "test".
    """
    groups = np.asarray(groups)
    labels, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(labels))
    cum = np.cumsum(counts[order]) / counts.sum()
    bounds = np.cumsum([fractions.train, fractions.val])
    # A group goes to the split in which its cumulative share lands: train up to
    # the train fraction, then val, then test.
    split_of_ranked = np.searchsorted(bounds, cum - counts[order] / counts.sum() / 2, side="right")
    split_of_group = np.empty(len(labels), dtype=int)
    split_of_group[order] = np.minimum(split_of_ranked, len(SPLITS) - 1)
    return np.asarray(SPLITS)[split_of_group][inverse]
