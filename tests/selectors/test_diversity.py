"""DiversitySelector and the K-means helper, on synthetic embeddings."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from datasets import Dataset
from hypothesis import HealthCheck, given, settings

from sftselect import InvalidParameterError, KTooLargeWarning
from sftselect.embedding import HashingEmbedder, PrecomputedEmbeddings
from sftselect.embedding.clustering import clusters_used, kmeans, n_distinct_rows
from sftselect.selectors.diversity import DiversitySelector, interleave_clusters
from tests.helpers.conformance import Case, check_selector, run_quietly
from tests.helpers.strategies import _to_dataset, alpaca_datasets, ks, seeds

pytest.importorskip("sklearn")


class CountingEmbedder(HashingEmbedder):
    """HashingEmbedder that counts its calls."""

    def __init__(self) -> None:
        super().__init__(16)
        self.calls = 0

    def embed(self, texts):
        self.calls += 1
        return super().embed(texts)


def blobs(sizes, d=8, spread=0.05, seed=0):
    """Well-separated Gaussian blobs: cluster c around 10 * e_c (rows grouped by blob)."""
    rng = np.random.default_rng(seed)
    parts, truth = [], []
    for c, s in enumerate(sizes):
        centre = np.zeros(d)
        centre[c % d] = 10.0 * (1 + c // d)
        parts.append(centre + rng.normal(0, spread, (s, d)))
        truth += [c] * s
    return np.concatenate(parts).astype(np.float32), np.array(truth)


def rows(n):
    return Dataset.from_dict({"instruction": [f"q{i}" for i in range(n)], "output": ["a"] * n})


def per_truth(sel, truth, n_true):
    return np.bincount(truth[sel.indices], minlength=n_true)


def make(k, X, **kw):
    kw.setdefault("random_state", 0)
    return DiversitySelector(PrecomputedEmbeddings(X), k, **kw)


def test_equal_allocation_gives_floor_or_ceil_per_cluster():
    """Equal allocation takes floor(k/C) or ceil(k/C) rows from every cluster."""
    X, truth = blobs([40, 30, 20, 25, 35])
    for k in (5, 7, 13, 50):
        sel = make(k, X, n_clusters=5).run(rows(len(X)))
        counts = per_truth(sel, truth, 5)
        assert counts.sum() == k
        assert set(counts.tolist()) <= {k // 5, -(-k // 5)}


def test_clusters_recover_the_blobs_and_labels_are_exposed():
    """K-means finds the blobs; labels are in extra and from cluster(), numbered by first row."""
    X, truth = blobs([10, 20, 30])
    selector = make(6, X, n_clusters=3)
    sel = selector.run(rows(len(X)))
    labels = sel.extra["labels"]
    assert np.array_equal(labels, truth)  # canonical numbering = order of first appearance
    assert sel.extra["cluster_sizes"].tolist() == [10, 20, 30]
    assert sel.extra["selected_per_cluster"].tolist() == [2, 2, 2]
    again, centroids = selector.cluster(rows(len(X)))
    assert np.array_equal(again, labels)
    assert centroids.shape == (3, X.shape[1])


def test_proportional_allocation_follows_cluster_sizes():
    """Proportional allocation gives each cluster its Sainte-Laguë share of k."""
    X, truth = blobs([60, 30, 10])
    sel = make(10, X, n_clusters=3, allocation="proportional").run(rows(len(X)))
    assert per_truth(sel, truth, 3).tolist() == [6, 3, 1]
    sel = make(20, X, n_clusters=3, allocation="proportional").run(rows(len(X)))
    assert per_truth(sel, truth, 3).tolist() == [12, 6, 2]


def test_small_clusters_leftover_quota_is_redistributed():
    """Clusters smaller than k/C give all their rows; the rest is shared round robin."""
    X, truth = blobs([2, 3, 50, 45])
    sel = make(21, X, n_clusters=4).run(rows(len(X)))
    counts = per_truth(sel, truth, 4)
    assert counts.tolist()[:2] == [2, 3]
    assert counts.sum() == 21 and sorted(counts.tolist()[2:]) == [8, 8]


def test_exact_k_and_determinism_under_seed():
    """Exactly k rows; the same seed gives the same rows, another seed usually other rows."""
    X, _ = blobs([40, 40, 40])
    a = make(12, X, n_clusters=3, random_state=1).select_indices(rows(120))
    b = make(12, X, n_clusters=3, random_state=1).select_indices(rows(120))
    c = make(12, X, n_clusters=3, random_state=2).select_indices(rows(120))
    assert a.size == 12 and np.array_equal(a, b) and not np.array_equal(a, c)


def test_centroid_order_picks_the_closest_rows_first():
    """within='centroid' takes, from each cluster, the rows nearest its centroid."""
    X, _ = blobs([30, 30], spread=1.0, seed=3)
    selector = make(6, X, n_clusters=2, within="centroid")
    sel = selector.run(rows(len(X)))
    labels, centroids = selector.cluster(rows(len(X)))
    dist = np.linalg.norm(X - centroids[labels], axis=1)
    for c in range(2):
        members = np.flatnonzero(labels == c)
        nearest = members[np.argsort(dist[members])[:3]]
        assert set(nearest.tolist()) <= set(sel.indices.tolist())
    ranked_dist = dist[sel.ranked]
    assert np.all(np.diff(ranked_dist[::2]) >= 0) and np.all(np.diff(ranked_dist[1::2]) >= 0)


def test_ranking_is_house_monotone():
    """A larger k extends a smaller one (prefixes of one ranking)."""
    X, _ = blobs([13, 27, 9, 51])
    ds = rows(len(X))
    for allocation in ("equal", "proportional"):
        small = set(make(9, X, n_clusters=4, allocation=allocation).select_indices(ds).tolist())
        big = set(make(23, X, n_clusters=4, allocation=allocation).select_indices(ds).tolist())
        assert small <= big


def test_interleave_clusters_equal_is_round_robin():
    """Equal interleaving visits the clusters in turn, lowest cluster number first."""
    labels = np.array([1, 1, 0, 0, 0, 2])
    order = interleave_clusters(labels, np.arange(6), "equal")
    assert order.tolist() == [2, 0, 5, 3, 1, 4]


def test_kmeans_clamps_to_distinct_rows():
    """More clusters than distinct points: as many clusters as distinct rows."""
    X = np.array([[0.0, 1.0], [0.0, 1.0], [5.0, 5.0], [-0.0, 1.0]], dtype=np.float32)
    assert n_distinct_rows(X) == 2
    labels, centroids = kmeans(X, 10, random_state=0)
    assert labels.tolist() == [0, 0, 1, 0] and centroids.shape == (2, 2)
    labels, _ = kmeans(X[:1], 3, random_state=0)
    assert labels.tolist() == [0]


@pytest.mark.parametrize("backend", ["sklearn", "minibatch"])
def test_kmeans_backends_are_deterministic(backend):
    """Each backend gives the same labels for the same seed and finds separated blobs."""
    X, truth = blobs([50, 60, 70])
    a, _ = kmeans(X, 3, random_state=5, backend=backend)
    b, _ = kmeans(X, 3, random_state=5, backend=backend)
    assert np.array_equal(a, b) and np.array_equal(a, truth)


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("n_clusters", 0),
        ("n_clusters", 2.5),
        ("allocation", "fair"),
        ("within", "far"),
        ("text", "title"),
        ("kmeans_backend", "gpu"),
    ],
)
def test_invalid_parameters_raise(param, value):
    """Bad hyper-parameters raise InvalidParameterError naming the parameter."""
    X, _ = blobs([5, 5])
    with pytest.raises(InvalidParameterError, match=f"'{param}' parameter of DiversitySelector"):
        make(3, X, **{param: value}).run(rows(10))


def test_misaligned_precomputed_embeddings_raise():
    """An array whose length is not the number of rows is rejected clearly."""
    with pytest.raises(ValueError, match=r"shape \[10, d\]"):
        make(3, np.zeros((9, 4))).run(rows(10))


def test_precomputed_column_of_vectors():
    """A column of vectors works like the same array."""
    X, _ = blobs([6, 6])
    ds = rows(12).add_column("vec", X.tolist())
    a = DiversitySelector(PrecomputedEmbeddings("vec"), 4, n_clusters=2, random_state=0)
    assert np.array_equal(a.select_indices(ds), make(4, X, n_clusters=2).select_indices(ds))


def test_text_embedder_is_cached(tmp_path):
    """With cache_dir, a second selector on the same data does not embed again."""
    emb = CountingEmbedder()
    ds = _to_dataset(
        [
            {"instruction": f"word{i} x", "input": "", "output": "y", "source": "a", "score": 0.0}
            for i in range(20)
        ]
    )
    first = DiversitySelector(emb, 5, n_clusters=3, cache_dir=tmp_path, random_state=0)
    a = first.select_indices(ds)
    b = first.clone(within="centroid").select_indices(ds)
    assert emb.calls == 1 and a.size == b.size == 5
    assert len(list(tmp_path.glob("*.npy"))) == 1


# -- the shared contract, with a fake text embedder ----------------------------

CONFORMANCE = [
    Case(
        "diversity",
        lambda k, s: DiversitySelector(HashingEmbedder(16), k, n_clusters=4, random_state=s),
    ),
    Case(
        "diversity-proportional-centroid",
        lambda k, s: DiversitySelector(
            HashingEmbedder(16),
            k,
            text="example",
            n_clusters=3,
            allocation="proportional",
            within="centroid",
            random_state=s,
        ),
    ),
]


@pytest.mark.parametrize("case", CONFORMANCE, ids=lambda c: c.name)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dataset=alpaca_datasets(), k=ks, seed=seeds)
def test_contract_holds(case, dataset, k, seed):
    """The conformance checks (subset, size, determinism, no mutation, rank prefix)."""
    check_selector(case, dataset, k, seed)


@pytest.mark.parametrize("case", CONFORMANCE, ids=lambda c: c.name)
def test_contract_edge_cases(case, small_alpaca):
    """Empty input gives nothing; k > n warns and returns all; k = 1 gives one row."""
    idx = run_quietly(case.make(5, 0), _to_dataset([])).indices
    assert idx.dtype == np.int64 and idx.size == 0
    with pytest.warns(KTooLargeWarning):
        assert case.make(len(small_alpaca) + 5, 0).run(small_alpaca).indices.size == len(
            small_alpaca
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error", KTooLargeWarning)
        assert case.make(1, 0).select_indices(small_alpaca).size == 1


def test_show_progress_reports_kmeans_and_keeps_the_selection(capsys):
    """show_progress=True prints a k-means line on stderr and selects the same rows."""
    X, _ = blobs([20, 20])
    quiet = make(6, X, n_clusters=2).select_indices(rows(40))
    assert capsys.readouterr().err == ""
    loud = make(6, X, n_clusters=2, show_progress=True).select_indices(rows(40))
    assert "k-means" in capsys.readouterr().err and np.array_equal(quiet, loud)


def test_clusters_used_equals_the_clamp_rule():
    """clusters_used is min(n_clusters, distinct rows), whether or not the head suffices."""
    rng = np.random.default_rng(0)
    distinct = rng.normal(size=(3000, 4)).astype(np.float32)
    few = np.repeat(distinct[:5], 600, axis=0)
    late = np.concatenate([np.repeat(distinct[:3], 500, axis=0), distinct[:1500]])
    for X in (distinct, few, late):
        for c in (2, 10, 100, 2000):
            assert clusters_used(X, c) == min(c, n_distinct_rows(X))


def test_leftover_rows_go_to_seeded_clusters_not_the_earliest_in_the_data():
    """With k below the cluster count, which clusters get a row depends on the seed, not on data order."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(20, 8)) * 100.0  # 20 well-separated clusters
    X = np.repeat(centres, 10, axis=0) + rng.normal(size=(200, 8))  # rows sorted by cluster
    ds = Dataset.from_dict({"instruction": ["q"] * 200, "output": ["a"] * 200})
    first_half = 0
    for seed in range(20):
        sel = DiversitySelector(PrecomputedEmbeddings(X), 10, n_clusters=20, random_state=seed)
        idx = sel.select_indices(ds)
        assert (
            idx.size == 10 and np.unique(idx // 10).size == 10
        )  # one row from each of 10 clusters
        first_half += int((idx < 100).sum())
    assert 0.3 < first_half / 200 < 0.7  # was 1.0: the earliest clusters took every leftover slot


def test_stratified_random_leftovers_are_seeded():
    """RandomSelector(stratify) gives the leftover rows of an uneven split to seeded strata."""
    from sftselect import RandomSelector

    ds = Dataset.from_dict({"output": ["x"] * 40, "source": [f"s{i // 4}" for i in range(40)]})
    counts = np.zeros(10)
    for seed in range(30):
        idx = RandomSelector(
            5, stratify="source", allocation="equal", random_state=seed
        ).select_indices(ds)
        assert np.unique(idx // 4).size == 5
        counts[np.unique(idx // 4)] += 1
    assert counts[:5].sum() < 30 * 5  # not always the first five strata
