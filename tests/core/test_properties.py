"""Hypothesis properties of length scoring, the ranking rule and composition."""

from __future__ import annotations

import warnings

import numpy as np
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sftselect import Chain, Intersection, KTooLargeWarning, LengthSelector, RandomSelector, Union
from sftselect.core.ranking import eligible_mask, top_order
from sftselect.scoring.units import Characters, Words
from tests.helpers.strategies import alpaca_datasets, any_text, seeds

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _quiet(fn):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KTooLargeWarning)
        return fn()


@SETTINGS
@given(st.lists(any_text, max_size=30))
def test_chars_equal_python_len(texts):
    """The 'chars' unit equals Python's len() on any Unicode text."""
    got = Characters().measure(pa.array(texts, type=pa.string()))
    assert got.tolist() == [len(t) for t in texts]


@SETTINGS
@given(
    st.lists(
        st.text(
            alphabet=st.sampled_from(list("ab \t\n\x0b\x0c\r\x1c\x1f\x85\xa0\u2003\u3000\u200b.")),
            max_size=30,
        ),
        max_size=30,
    )
)
def test_words_equal_python_split(texts):
    """The 'words' unit equals len(text.split()), whitespace set included."""
    got = Words().measure(pa.array(texts, type=pa.string()))
    assert got.tolist() == [len(t.split()) for t in texts]


@SETTINGS
@given(alpaca_datasets(min_size=1, allow_empty=False), st.integers(1, 40))
def test_selected_responses_are_at_least_as_long_as_the_rest(dataset, k):
    """Every selected response is at least as long as every unselected one."""
    sel = LengthSelector(k, unit="words")
    lengths = sel.score(dataset)
    idx = _quiet(lambda: sel.select_indices(dataset))
    rest = np.setdiff1d(np.arange(len(dataset)), idx)
    if idx.size and rest.size:
        assert lengths[idx].min() >= lengths[rest].max()


@SETTINGS
@given(alpaca_datasets(min_size=1, allow_empty=False), st.integers(1, 40))
def test_stable_ties_prefer_earlier_rows(dataset, k):
    """With stable ties, a selected row at the cut length precedes every unselected one of that length."""
    sel = LengthSelector(k, unit="words")
    lengths = sel.score(dataset)
    idx = _quiet(lambda: sel.select_indices(dataset))
    cut = lengths[idx].min()
    rest = np.setdiff1d(np.arange(len(dataset)), idx)
    tied_rest = rest[lengths[rest] == cut]
    if tied_rest.size:
        assert idx[lengths[idx] == cut].max() < tied_rest.min()


@SETTINGS
@given(
    st.lists(st.integers(0, 5).map(float), max_size=50),
    st.integers(0, 50),
    seeds,
    st.sampled_from(["stable", "random"]),
)
def test_limited_order_is_prefix_of_full_order(scores, limit, seed, ties):
    """top_order with a limit is exactly the prefix of the full order (same seed)."""
    s = np.asarray(scores, dtype=np.float64)
    mask = eligible_mask(s, 1.0, None)
    full = top_order(s, mask, ties=ties, rng=np.random.default_rng(seed))
    part = top_order(s, mask, ties=ties, rng=np.random.default_rng(seed), limit=limit)
    assert part.tolist() == full[:limit].tolist()


@SETTINGS
@given(alpaca_datasets(), st.integers(1, 30), st.integers(1, 30), seeds)
def test_union_commutes(dataset, ka, kb, seed):
    """Union without k is the same set whatever the operand order."""
    a, b = LengthSelector(ka, unit="chars"), RandomSelector(kb, random_state=seed)
    ab = _quiet(lambda: Union(a, b).select_indices(dataset))
    ba = _quiet(lambda: Union(b, a).select_indices(dataset))
    assert ab.tolist() == ba.tolist()


@SETTINGS
@given(alpaca_datasets(), st.integers(1, 30), st.integers(1, 30), seeds)
def test_intersection_is_inside_each_operand(dataset, ka, kb, seed):
    """Intersection without k is inside each operand's selection."""
    a, b = LengthSelector(ka, unit="chars"), RandomSelector(kb, random_state=seed)
    both = set(_quiet(lambda: Intersection(a, b).select_indices(dataset)).tolist())
    assert both <= set(_quiet(lambda: a.select_indices(dataset)).tolist())
    assert both <= set(_quiet(lambda: b.select_indices(dataset)).tolist())


@SETTINGS
@given(alpaca_datasets(), st.integers(1, 30), st.integers(1, 30), seeds)
def test_intersection_with_k_is_inside_eligible_rows_of_each(dataset, ka, k, seed):
    """Intersection with k only picks rows each operand could pick (thresholds apply)."""
    a = LengthSelector(None, unit="words", min_length=3)
    b = RandomSelector(ka, random_state=seed)
    both = _quiet(lambda: Intersection(a, b, k=k).select_indices(dataset))
    lengths = a.score(dataset)
    assert np.all(lengths[both] >= 3)


@SETTINGS
@given(alpaca_datasets(), st.integers(1, 30), st.integers(1, 30), seeds)
def test_chain_is_inside_its_first_stage(dataset, ka, kb, seed):
    """A chain's selection is inside its first stage's selection."""
    first = RandomSelector(ka, random_state=seed)
    chained = _quiet(lambda: Chain(first, LengthSelector(kb, unit="words")).select_indices(dataset))
    assert set(chained.tolist()) <= set(_quiet(lambda: first.select_indices(dataset)).tolist())


@SETTINGS
@given(alpaca_datasets(min_size=3), seeds, st.data(), st.sampled_from(["proportional", "equal"]))
def test_random_prefix_grows_monotonically(dataset, seed, data, allocation):
    """A larger k extends a smaller k's stratified random selection (same seed).

    Both k are below the row count: with the larger k equal to n every selection
    would be a subset of it, and the property would hold for any draw.
    """
    n = len(dataset)
    k_small = data.draw(st.integers(1, n - 2), label="k_small")
    k_big = data.draw(st.integers(k_small + 1, n - 1), label="k_big")

    def pick(k):
        selector = RandomSelector(k, random_state=seed, stratify="source", allocation=allocation)
        return set(selector.select_indices(dataset).tolist())

    small, big = pick(k_small), pick(k_big)
    assert len(small) == k_small and len(big) == k_big
    assert small <= big
