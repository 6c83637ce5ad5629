"""The shared conformance suite, run on every selector in ``conformance.CASES``."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from conformance import CASES, check_selector, run_quietly
from sftselect import KTooLargeWarning
from strategies import alpaca_datasets, ks, seeds

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
@SETTINGS
@given(dataset=alpaca_datasets(), k=ks, seed=seeds)
def test_contract_holds(case, dataset, k, seed):
    """Subset, unique, ascending, exact size, deterministic, unmutated input, rank prefix."""
    check_selector(case, dataset, k, seed)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_empty_input_gives_empty_selection(case):
    """An empty dataset yields an empty int64 selection."""
    from strategies import _to_dataset

    idx = run_quietly(case.make(5, 0), _to_dataset([])).indices
    assert idx.dtype == np.int64 and idx.size == 0


@pytest.mark.parametrize("case", [c for c in CASES if c.exact_k], ids=lambda c: c.name)
def test_k_larger_than_n_warns_and_returns_all_eligible(case, small_alpaca):
    """k > n returns every eligible row and warns."""
    with pytest.warns(KTooLargeWarning):
        sel = case.make(len(small_alpaca) + 5, 0).run(small_alpaca)
    assert sel.indices.size == sel.n_eligible


@pytest.mark.parametrize("case", [c for c in CASES if c.exact_k], ids=lambda c: c.name)
def test_k_one_returns_one_row(case, small_alpaca):
    """k = 1 returns exactly one row."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", KTooLargeWarning)
        assert case.make(1, 0).select_indices(small_alpaca).size == 1
