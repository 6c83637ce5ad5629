"""RandomSelector: seeding, uniformity and stratified apportionment."""

from __future__ import annotations

import numpy as np
import pytest
from datasets import Dataset

from sftselect import InvalidParameterError, MissingColumnError, RandomSelector


def test_same_seed_same_subset_and_generator_accepted():
    """An int seed always gives the same subset; a Generator is accepted."""
    ds = Dataset.from_dict({"x": list(range(100))})
    a = RandomSelector(10, random_state=42).select_indices(ds)
    assert a.tolist() == RandomSelector(10, random_state=42).select_indices(ds).tolist()
    g = RandomSelector(10, random_state=np.random.default_rng(42)).select_indices(ds)
    assert g.tolist() == a.tolist()


def test_no_seed_is_recorded_in_provenance():
    """random_state=None draws fresh entropy and records it, so the run can be repeated."""
    ds = Dataset.from_dict({"x": list(range(100))})
    sel = RandomSelector(10).run(ds)
    entropy = int(sel.provenance()["seed"]["entropy"])
    again = RandomSelector(10, random_state=np.random.default_rng(entropy)).select_indices(ds)
    assert again.tolist() == sel.indices.tolist()


def test_inclusion_is_uniform():
    """Each row is included about k/n of the time over many seeds."""
    ds = Dataset.from_dict({"x": list(range(20))})
    counts = np.zeros(20)
    for seed in range(2000):
        counts[RandomSelector(5, random_state=seed).select_indices(ds)] += 1
    assert np.all(np.abs(counts / 2000 - 0.25) < 0.05)


def test_stratified_proportional_counts_follow_strata_sizes():
    """Proportional stratification gives each stratum its Webster share of k."""
    ds = Dataset.from_dict({"src": ["a"] * 600 + ["b"] * 300 + ["c"] * 100})
    idx = RandomSelector(100, random_state=0, stratify="src").select_indices(ds)
    counts = {s: int(np.sum(np.asarray(ds["src"])[idx] == s)) for s in "abc"}
    assert counts == {"a": 60, "b": 30, "c": 10}


def test_stratified_equal_allocation():
    """Equal allocation takes the same number from each stratum while they last."""
    ds = Dataset.from_dict({"src": ["a"] * 600 + ["b"] * 300 + ["c"] * 5})
    idx = RandomSelector(90, random_state=0, stratify="src", allocation="equal").select_indices(ds)
    counts = {s: int(np.sum(np.asarray(ds["src"])[idx] == s)) for s in "abc"}
    # 90 of 600/300/5: c gives all 5, a and b share 85; which gets the odd row is seeded
    assert counts["c"] == 5 and sorted([counts["a"], counts["b"]]) == [42, 43]


def test_bad_parameters():
    """k=None, a missing stratify column and an unknown allocation are clear errors."""
    ds = Dataset.from_dict({"x": [1, 2, 3]})
    with pytest.raises(InvalidParameterError, match="The 'k' parameter of RandomSelector"):
        RandomSelector(None).select_indices(ds)
    with pytest.raises(MissingColumnError, match="Columns found"):
        RandomSelector(1, stratify="src").select_indices(ds)
    with pytest.raises(InvalidParameterError, match="'allocation'"):
        RandomSelector(1, allocation="even").select_indices(ds)
    with pytest.raises(InvalidParameterError, match="'random_state'"):
        RandomSelector(1, random_state="seed").select_indices(ds)
