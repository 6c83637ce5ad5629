"""The shared conformance suite, run on every selector in ``conformance.CASES``."""

from __future__ import annotations

import warnings
from typing import ClassVar

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from sftselect import KTooLargeWarning, RankResult, Selector
from sftselect.core.constraints import K_CONSTRAINTS
from sftselect.testing import check_parameter_constraints
from sftselect.testing import check_selector as public_check_selector
from tests.helpers.conformance import CASES, check_selector, run_quietly
from tests.helpers.strategies import alpaca_datasets, ks, seeds

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
    from tests.helpers.strategies import _to_dataset

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


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_public_check_selector_passes(case):
    """sftselect.testing.check_selector (the checks users run on their own selectors)
    passes on every selector of the suite."""
    public_check_selector(case.make(3, 0))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_parameter_constraints_are_declared_and_enforced(case, small_alpaca):
    """Every parameter declared; an invalid value of each refused by select_indices, naming
    it, before any ranking, leaving the data and the parameters as they were."""
    check_parameter_constraints(case.make(3, 0), small_alpaca)


def exported_selector_classes() -> set[type]:
    """Every concrete Selector class a user can import from a public module of sftselect."""
    import importlib
    import inspect
    import pkgutil

    import sftselect
    from sftselect import Selector

    found = set()
    for info in pkgutil.walk_packages(sftselect.__path__, "sftselect."):
        parts = info.name.split(".")
        if any(p.startswith("_") for p in parts) or parts[1] in {"distributed", "testing"}:
            continue
        try:
            module = importlib.import_module(info.name)
        except ImportError:  # an optional extra that is not installed
            continue
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name)
            if inspect.isclass(obj) and issubclass(obj, Selector) and not inspect.isabstract(obj):
                found.add(obj)
    return found


def test_every_exported_selector_is_in_the_suite():
    """A selector the package exports but the conformance suite does not build fails here."""
    missing = {c.__qualname__ for c in exported_selector_classes()} - {
        type(case.make(3, 0)).__qualname__ for case in CASES
    }
    assert not missing, f"add these to tests/helpers/conformance.py CASES: {sorted(missing)}"


class _Broken(Selector):
    """A selector with one configurable defect, to show each check can fail."""

    _parameter_constraints: ClassVar[dict] = {
        "k": K_CONSTRAINTS,
        "defect": [str],
        "random_state": ["random_state"],
    }

    def __init__(self, k=3, *, defect="none", random_state=None):
        self.k = k
        self.defect = defect
        self.random_state = random_state

    def _rank(self, dataset, rng, limit):
        order = np.arange(len(dataset), dtype=np.int64)
        if self.defect == "unseeded":
            order = np.random.default_rng().permutation(order)
        if self.defect == "mutates" and len(dataset):
            dataset._fingerprint = "changed"
        if self.defect == "duplicates" and len(order) > 1:
            order = np.concatenate([order[:1], order])
        return RankResult(order=order, n_eligible=len(order))


class _Renamed(_Broken):
    def __init__(self, k=3, *, defect="none", random_state=None):
        super().__init__(k, defect=defect, random_state=random_state)
        self.defect = f"{defect}-"  # not the value given: clone() cannot rebuild it


@pytest.mark.parametrize(
    ("selector", "message"),
    [
        # a different draw each run: caught by the determinism check, or (when two draws
        # happen to agree) by the next run select() makes
        (_Broken(defect="unseeded"), r"same random_state gave|select\(ds\) is not ds.select"),
        (_Broken(defect="mutates"), "mutated"),
        (_Broken(defect="duplicates"), "unique and ascending"),
        (_Renamed(defect="x"), "not stored as given"),
    ],
    ids=["unseeded", "mutates", "duplicates", "not-stored-as-given"],
)
def test_check_selector_catches_each_defect(selector, message):
    """Each defect makes check_selector fail with a message naming it."""
    with pytest.raises(AssertionError, match=message):
        public_check_selector(selector)
    public_check_selector(_Broken())  # the defect-free version passes
