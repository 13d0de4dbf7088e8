import numpy as np
import pytest

from isoclr.config import SplitFractions
from isoclr.splits import split_by_group


@pytest.mark.parametrize("seed", range(5))
def test_no_group_in_two_splits(seed):
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(300), rng.integers(1, 8, 300))
    split = split_by_group(groups, SplitFractions(), seed)
    for g in np.unique(groups):
        assert len(set(split[groups == g])) == 1


def test_sizes_follow_fractions_of_items():
    groups = np.repeat(np.arange(1000), 3)
    split = split_by_group(groups, SplitFractions(train=0.6, val=0.2, test=0.2), 0)
    shares = {s: np.mean(split == s) for s in ("train", "val", "test")}
    assert shares["train"] == pytest.approx(0.6, abs=0.01)
    assert shares["val"] == pytest.approx(0.2, abs=0.01)
    assert shares["test"] == pytest.approx(0.2, abs=0.01)


def test_seed_changes_assignment_and_is_reproducible():
    groups = np.arange(200)
    a = split_by_group(groups, SplitFractions(), 1)
    assert (a == split_by_group(groups, SplitFractions(), 1)).all()
    assert (a != split_by_group(groups, SplitFractions(), 2)).any()


def test_fractions_must_sum_to_one():
    with pytest.raises(ValueError, match="sum to 1"):
        SplitFractions(train=0.7, val=0.2, test=0.2)
