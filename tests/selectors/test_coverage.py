"""RepresentationFilter and KCenterSelector against straightforward reference code."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from datasets import Dataset
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sftselect import InvalidParameterError, LengthSelector
from sftselect.embedding import PrecomputedEmbeddings
from sftselect.selectors.coverage import kcenter_order, similarity_filter_order, unit_rows
from sftselect.selectors.dedup import RepresentationFilter
from sftselect.selectors.kcenter import KCenterSelector
from tests.helpers.strategies import vector_sets

PROPS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
THRESHOLDS = st.sampled_from([-0.2, 0.1, 0.3, 0.55, 0.8, 0.95])


def cos64(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity in float64; a zero vector has similarity 0 with everything."""
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 or nb == 0:
        return 0.0
    return float(np.dot(a, b) / (na * nb))


def deita_rule(X: np.ndarray, walk, threshold: float, drop_at_equal: bool = False) -> list[int]:
    """DEITA's IterativeFilter with batch_size=1, row by row: drop a row if any sim > threshold.

    ``drop_at_equal=True`` drops at ``sim >= threshold`` instead (this library's strict rule).
    """
    kept: list[int] = []
    for i in walk:
        sims = [cos64(X[i], X[j]) for j in kept]
        too_close = any(s >= threshold if drop_at_equal else s > threshold for s in sims)
        if not too_close:
            kept.append(int(i))
    return kept


def far_from_threshold(X: np.ndarray, threshold: float, eps: float = 1e-4) -> bool:
    """No pair's similarity is within eps of the threshold (float32 rounding cannot flip it)."""
    n = X.shape[0]
    return all(abs(cos64(X[i], X[j]) - threshold) > eps for i in range(n) for j in range(i))


def rows(n: int) -> Dataset:
    return Dataset.from_dict(
        {
            "instruction": [f"q{i}" for i in range(n)],
            "output": ["a" * (i % 5 + 1) for i in range(n)],
            "score": [float(i % 3) for i in range(n)],
        }
    )


# -- the representation filter -------------------------------------------------


def test_filter_matches_deita_rule_on_gaussian_vectors():
    """On 600 random vectors, the blocked filter keeps exactly what DEITA's row-by-row rule keeps."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=(150, 24))
    # near-duplicates, so the threshold matters
    X = np.concatenate([base, base + rng.normal(0, 0.4, base.shape)] * 2).astype(np.float32)
    walk = rng.permutation(X.shape[0])
    for threshold in (0.5, 0.8, 0.9):
        want = deita_rule(X, walk, threshold)
        got, walked = similarity_filter_order(X, walk, np.nextafter(threshold, 2.0))
        assert got.tolist() == want and walked == X.shape[0]
        strict = deita_rule(X, walk, threshold, drop_at_equal=True)
        assert similarity_filter_order(X, walk, threshold)[0].tolist() == strict


@PROPS
@given(X=vector_sets(), threshold=THRESHOLDS, block=st.integers(1, 9), data=st.data())
def test_filter_equals_reference_for_any_block_size(X, threshold, block, data):
    """For any walk and block size, the kept rows equal the row-by-row strict rule."""
    assume(far_from_threshold(X, threshold))
    walk = np.array(data.draw(st.permutations(range(X.shape[0]))), dtype=np.int64)
    got, _ = similarity_filter_order(X, walk, threshold, block=block, chunk=3)
    assert got.tolist() == deita_rule(X, walk, threshold, drop_at_equal=True)


@PROPS
@given(X=vector_sets(), threshold=THRESHOLDS, limit=st.integers(1, 45))
def test_filter_with_limit_is_a_prefix(X, threshold, limit):
    """Stopping at `limit` kept rows gives the first `limit` rows of the full walk."""
    walk = np.arange(X.shape[0])
    full, _ = similarity_filter_order(X, walk, threshold)
    part, walked = similarity_filter_order(X, walk, threshold, limit=limit)
    assert part.tolist() == full[:limit].tolist()
    assert walked <= X.shape[0]


@PROPS
@given(X=vector_sets(), threshold=THRESHOLDS)
def test_kept_rows_are_pairwise_below_the_threshold(X, threshold):
    """Every pair of kept rows has similarity below max_similarity; every dropped row has a close kept row."""
    assume(far_from_threshold(X, threshold))
    kept, _ = similarity_filter_order(X, np.arange(X.shape[0]), threshold)
    for i, j in itertools.combinations(kept.tolist(), 2):
        assert cos64(X[i], X[j]) < threshold
    for r in set(range(X.shape[0])) - set(kept.tolist()):
        assert any(cos64(X[r], X[j]) >= threshold for j in kept.tolist() if j < r)


def test_threshold_is_strict():
    """A similarity equal to max_similarity drops the row (exactly 1.0 and exactly 0.0)."""
    X = np.array([[1, 0], [2, 0], [0, 3]], dtype=np.float32)
    walk = np.arange(3)
    assert similarity_filter_order(X, walk, 1.0)[0].tolist() == [0, 2]  # sim(0, 1) == 1.0
    assert similarity_filter_order(X, walk, 0.0)[0].tolist() == [0]  # sim(0, 2) == 0.0
    assert similarity_filter_order(X, walk, 1e-6)[0].tolist() == [0, 2]


def test_selector_walks_in_the_given_order():
    """order=column walks highest score first; order=selector walks its ranking."""
    X = np.ones((4, 3), dtype=np.float32)  # all identical: only the first row walked survives
    ds = Dataset.from_dict(
        {"instruction": list("abcd"), "output": ["x", "xxxx", "xx", "xxx"], "s": [1.0, 3, 2, None]}
    )
    emb = PrecomputedEmbeddings(X)
    assert RepresentationFilter(embedder=emb).select_indices(ds).tolist() == [0]
    assert RepresentationFilter(embedder=emb, order="s").select_indices(ds).tolist() == [1]
    by_length = RepresentationFilter(embedder=emb, order=LengthSelector(unit="chars"))
    assert by_length.select_indices(ds).tolist() == [1]


def test_selector_reports_walk_and_stops_at_k():
    """With k the walk stops once k rows are kept; extra says how far it went."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 8)).astype(np.float32)
    full = RepresentationFilter(embedder=PrecomputedEmbeddings(X), max_similarity=0.5).run(rows(50))
    assert full.extra["complete"] and full.extra["walked"] == 50
    sel = RepresentationFilter(PrecomputedEmbeddings(X), 5, max_similarity=0.5).run(rows(50))
    assert sel.ranked.tolist() == full.ranked[:5].tolist()
    assert not sel.extra["complete"] and sel.extra["walked"] == int(sel.ranked[-1]) + 1


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"max_similarity": 2},
            "The 'max_similarity' parameter of RepresentationFilter must be a float in (-1, 1]. "
            "Got 2 instead.",
        ),
        ({"max_similarity": -1.0}, "'max_similarity' parameter"),
        ({"max_similarity": float("nan")}, "'max_similarity' parameter"),
        ({"max_similarity": True}, "'max_similarity' parameter"),
        ({"order": 3}, "'order' parameter of RepresentationFilter"),
        ({"text": "title"}, "'text' parameter of RepresentationFilter"),
    ],
)
def test_filter_invalid_parameters_raise(params, message):
    """Bad hyper-parameters raise InvalidParameterError with the library's message."""
    selector = RepresentationFilter(embedder=PrecomputedEmbeddings(np.ones((3, 2))), **params)
    with pytest.raises(InvalidParameterError) as err:
        selector.run(rows(3))
    assert message in str(err.value)


# -- k-center greedy -----------------------------------------------------------


def naive_kcenter(X: np.ndarray, first: int, k: int, metric: str) -> tuple[list[int], float]:
    """Farthest-point traversal with Python loops in float64 (ties: lowest index)."""

    def dist(a, b):
        if metric == "cosine":
            return 1.0 - cos64(X[a], X[b])
        return float(np.linalg.norm(X[a].astype(np.float64) - X[b]))

    picks = [first]
    while len(picks) < k:
        best, best_d = -1, -1.0
        for i in range(X.shape[0]):
            if i in picks:
                continue
            d = min(dist(i, c) for c in picks)
            if d > best_d:
                best, best_d = i, d
        picks.append(best)
    others = [i for i in range(X.shape[0]) if i not in picks]
    radius = max((min(dist(i, c) for c in picks) for i in others), default=0.0)
    return picks, radius


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_kcenter_matches_naive_reference(metric):
    """The selector's picks and radius equal a naive float64 farthest-point traversal."""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(120, 10)).astype(np.float32)
    sel = KCenterSelector(PrecomputedEmbeddings(X), 25, metric=metric, random_state=3).run(
        rows(120)
    )
    first = int(np.random.default_rng(3).integers(120))
    picks, radius = naive_kcenter(X, first, 25, metric)
    assert sel.ranked.tolist() == picks
    assert sel.extra["first_center"] == first
    assert sel.extra["radius"] == pytest.approx(radius, rel=1e-4, abs=1e-5)


@PROPS
@given(X=vector_sets(max_rows=9, max_dim=3), k=st.integers(1, 4))
def test_kcenter_is_a_two_approximation(X, k):
    """Euclidean greedy radius is at most twice the best k-subset's (1 - cos is not a metric)."""
    metric = "euclidean"
    n = X.shape[0]
    k = min(k, n)
    order, radius = kcenter_order(X, 0, metric, limit=k)
    assert sorted(order.tolist()) == sorted(set(order.tolist()))

    def dist(a, b):
        if metric == "cosine":
            return 1.0 - cos64(X[a], X[b])
        return float(np.linalg.norm(X[a].astype(np.float64) - X[b]))

    best = min(
        max(min(dist(i, c) for c in centres) for i in range(n))
        for centres in itertools.combinations(range(n), k)
    )
    assert radius <= 2 * best + 1e-5


@PROPS
@given(X=vector_sets(), metric=st.sampled_from(["cosine", "euclidean"]))
def test_kcenter_full_order_is_a_permutation_and_prefixes_agree(X, metric):
    """The full ranking is a permutation of the rows; a limited run is its prefix."""
    n = X.shape[0]
    full, radius = kcenter_order(X, n - 1, metric)
    assert sorted(full.tolist()) == list(range(n)) and radius == 0.0
    part, _ = kcenter_order(X, n - 1, metric, limit=max(1, n // 2))
    assert part.tolist() == full[: part.size].tolist()


def test_kcenter_invalid_metric_raises():
    """An unknown metric raises InvalidParameterError naming it."""
    sel = KCenterSelector(PrecomputedEmbeddings(np.ones((3, 2))), 2, metric="l1")
    with pytest.raises(InvalidParameterError, match="'metric' parameter of KCenterSelector"):
        sel.run(rows(3))


def test_kcenter_covers_better_than_the_first_rows():
    """On clustered data, k-center picks one row per blob before any second one."""
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 20, size=(6, 5))
    X = np.concatenate([c + rng.normal(0, 0.1, (20, 5)) for c in centres]).astype(np.float32)
    sel = KCenterSelector(PrecomputedEmbeddings(X), 6, metric="euclidean", random_state=0).run(
        rows(120)
    )
    assert sorted((sel.indices // 20).tolist()) == list(range(6))


def greedy_kcenter_loop(X: np.ndarray, first: int, metric: str, limit: int | None = None):
    """The k-center loop as it was before the zero-radius tail: every pick one float32
    matrix-vector product over all rows (the values the selector must reproduce exactly)."""
    n = X.shape[0]
    m = n if limit is None else min(limit, n)
    if metric == "cosine":
        P, sq = unit_rows(X), None
    else:
        P = np.ascontiguousarray(X, dtype=np.float32)
        sq = np.einsum("ij,ij->i", P, P)

    def dist(c):
        dots = P @ P[c]
        return 1.0 - dots if sq is None else np.maximum(sq + sq[c] - 2.0 * dots, 0.0)

    order = [first]
    nearest = dist(first)
    nearest[first] = -np.inf
    for _ in range(1, m):
        c = int(np.argmax(nearest))
        order.append(c)
        np.minimum(nearest, dist(c), out=nearest)
        nearest[c] = -np.inf
    radius = float(nearest.max()) if m < n else 0.0
    if sq is not None:
        radius = float(np.sqrt(max(radius, 0.0)))
    return order, max(radius, 0.0)


@st.composite
def duplicated_vectors(draw):
    """Float32 rows drawn from a few distinct ones (small integers, or Gaussian floats),
    so exact duplicates, zero rows and tied distances are common."""
    distinct = draw(st.integers(1, 12))
    n = draw(st.integers(1, 60))
    d = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if draw(st.booleans()):
        base = rng.integers(-2, 3, (distinct, d)).astype(np.float32)
    else:
        base = rng.normal(size=(distinct, d)).astype(np.float32)
    return base[rng.integers(0, distinct, n)]


@PROPS
@given(
    X=st.one_of(vector_sets(max_rows=60, max_dim=5), duplicated_vectors()),
    metric=st.sampled_from(["cosine", "euclidean"]),
    data=st.data(),
)
def test_kcenter_order_equals_the_plain_greedy_loop(X, metric, data):
    """Every pick and the radius equal the plain loop's, for any first row and limit."""
    n = X.shape[0]
    first = data.draw(st.integers(0, n - 1))
    limit = data.draw(st.one_of(st.none(), st.integers(1, n)))
    order, radius = kcenter_order(X, first, metric, limit=limit)
    expected, expected_radius = greedy_kcenter_loop(X, first, metric, limit)
    assert order.tolist() == expected
    assert radius == expected_radius


def test_kcenter_stops_computing_distances_once_the_euclidean_radius_is_zero():
    """Once every unpicked row lies at distance 0 from a centre, the rest of the order is
    the unpicked rows by index, given in one step (no further distance pass)."""
    rng = np.random.default_rng(0)
    base = rng.integers(-3, 4, (7, 4)).astype(np.float32)
    X = base[rng.integers(0, 7, 300)]
    distinct = len(np.unique(X, axis=0))
    calls: list[int] = []
    order, radius = kcenter_order(X, 5, "euclidean", on_progress=calls.append)
    assert order.tolist() == greedy_kcenter_loop(X, 5, "euclidean")[0] and radius == 0.0
    assert calls == [1] * distinct + [300 - distinct]
    part, part_radius = kcenter_order(X, 5, "euclidean", limit=distinct + 10)
    assert part.tolist() == order[: distinct + 10].tolist() and part_radius == 0.0
