"""FacilityLocationSelector against apricot-select and straightforward reference code."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from datasets import Dataset
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sftselect import (
    Chain,
    DataFormatError,
    FacilityLocationSelector,
    InvalidParameterError,
    RandomSelector,
    load_sample,
)
from sftselect.embedding import HashingEmbedder, PrecomputedEmbeddings
from sftselect.selectors.facility_graph import DenseSimilarities, KnnSimilarities, prepare
from sftselect.selectors.facility_greedy import (
    coverage,
    facility_value,
    greedy_order,
    sample_size,
    swap_refine,
)
from tests.helpers.strategies import vector_sets


def plain_greedy(S: np.ndarray, w: np.ndarray, k: int) -> list[int]:
    """The textbook greedy on ``S[i, j] = s(i, j)`` clipped at 0: each pick the largest
    gain sum_i w_i (max(S[i, j], cur_i) - cur_i), ties to the lowest index."""
    S = np.maximum(S.astype(np.float64), 0.0)
    cur = np.zeros(S.shape[0])
    picks: list[int] = []
    for _ in range(k):
        gains = (np.maximum(S, cur[:, None]) - cur[:, None]).T @ w
        gains[picks] = -np.inf
        j = int(np.argmax(gains))
        picks.append(j)
        cur = np.maximum(cur, S[:, j])
    return picks


def unit(X: np.ndarray) -> np.ndarray:
    return X / np.linalg.norm(X, axis=1, keepdims=True)


def f_value(S: np.ndarray, w: np.ndarray, chosen) -> float:
    return float(np.maximum(S[:, list(chosen)].max(axis=1), 0.0) @ w)


@pytest.fixture(scope="module")
def sample_vectors() -> np.ndarray:
    """Hashed bag-of-words vectors of 300 real Alpaca records (the bundled sample)."""
    ds = load_sample().select(range(300))
    return HashingEmbedder(128).embed(
        [f"{r['instruction']}\n\n{r['input']}".strip() for r in ds.to_list()]
    )


def test_greedy_order_equals_apricot_facility_location(sample_vectors):
    apricot = pytest.importorskip("apricot")
    X = sample_vectors
    keep = np.linalg.norm(X, axis=1) > 0
    X = X[keep]
    k = 40
    ref = apricot.FacilityLocationSelection(k, metric="cosine", verbose=False).fit(X).ranking
    ds = Dataset.from_dict({"i": list(range(X.shape[0]))})
    ours = FacilityLocationSelector(PrecomputedEmbeddings(X), k, kernel="cosine_squared").run(ds)
    assert ours.ranked.tolist() == [int(j) for j in ref]
    # apricot on the precomputed plain-cosine matrix (clipped at 0) gives our "cosine";
    # the matrix is ours (float32): near-ties of ~1e-7 follow float32 rounding
    S = DenseSimilarities(prepare(X, "cosine"), "cosine").T.T.astype(np.float64)
    ref2 = apricot.FacilityLocationSelection(k, metric="precomputed", verbose=False).fit(S)
    ours2 = FacilityLocationSelector(PrecomputedEmbeddings(X), k).run(ds)
    assert ours2.ranked.tolist() == [int(j) for j in ref2.ranking]


@pytest.mark.parametrize("seed", range(4))
def test_lazy_greedy_equals_plain_greedy_with_weights(seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(60, 5)).astype(np.float32)
    w = rng.uniform(0, 3, size=60)
    S = unit(X.astype(np.float64)) @ unit(X.astype(np.float64)).T
    order, _ = greedy_order(DenseSimilarities(prepare(X, "cosine"), "cosine"), w, 20)
    assert order.tolist() == plain_greedy(S, w, 20)


def test_integer_weights_equal_repeated_rows():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(30, 4)).astype(np.float32)
    reps = rng.integers(1, 4, size=30)
    Xr = np.repeat(X, reps, axis=0)  # copies of a row sit next to it; the first copy wins ties
    first = np.concatenate([[0], np.cumsum(reps)[:-1]])
    weighted, _ = greedy_order(DenseSimilarities(prepare(X, "cosine"), "cosine"), reps * 1.0, 10)
    repeated, _ = greedy_order(
        DenseSimilarities(prepare(Xr, "cosine"), "cosine"), np.ones(Xr.shape[0]), 10
    )
    assert first[weighted].tolist() == repeated.tolist()


def test_weights_column_moves_the_selection():
    X = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [0.2, 0.8]], dtype=np.float32)
    ds = Dataset.from_dict({"vec": X.tolist(), "w": [1.0, 1.0, 0.0, 0.0, 0.0]})
    emb = PrecomputedEmbeddings("vec")
    assert FacilityLocationSelector(emb, 1, weights="w").select_indices(ds).tolist() in ([0], [1])
    ds2 = ds.remove_columns("w").add_column("w", [0.0, 0.0, 1.0, 1.0, 1.0])
    assert FacilityLocationSelector(emb, 1, weights="w").select_indices(ds2).tolist() == [3]


def test_swap_refinement_reaches_a_swap_local_optimum():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(40, 3)).astype(np.float32)
    w = rng.uniform(0.5, 2, size=40)
    sims = DenseSimilarities(prepare(X, "cosine"), "cosine")
    S = sims.T.T.astype(np.float64)
    greedy, _ = greedy_order(sims, w, 5)
    refined, swaps, converged = swap_refine(sims, w, greedy, max_passes=50)
    assert converged
    f_greedy, f_refined = f_value(S, w, greedy), f_value(S, w, refined)
    assert f_refined >= f_greedy - 1e-9
    assert swaps > 0 and f_refined > f_greedy  # this draw has a better set than the greedy's
    assert f_refined == pytest.approx(facility_value(sims, w, refined))
    best_swap = max(
        f_value(S, w, [x if j == m else j for j in refined])
        for m, x in itertools.product(refined, range(40))
        if x not in refined
    )
    assert best_swap <= f_refined + 1e-9


def test_swap_refinement_matches_or_beats_fasterpam():
    kmedoids = pytest.importorskip("kmedoids")
    rng = np.random.default_rng(11)
    X = rng.normal(size=(400, 8)).astype(np.float32)
    sims = DenseSimilarities(prepare(X, "cosine"), "cosine")
    w = np.ones(400)
    greedy, _ = greedy_order(sims, w, 25)
    refined, _, _ = swap_refine(sims, w, greedy, max_passes=100)
    D = 1.0 - sims.T.T.astype(np.float64)
    pam = kmedoids.fasterpam(D, greedy.copy(), max_iter=100)
    # both minimise sum_i min_j (1 - s_ij): from the same start, ours stops no worse
    assert coverage(X, refined) <= coverage(X, pam.medoids) + 1e-3
    assert coverage(X, refined) < coverage(X, greedy)


def test_stochastic_greedy_with_a_sample_as_large_as_the_pool_is_the_greedy():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(50, 4)).astype(np.float32)
    sims = DenseSimilarities(prepare(X, "cosine"), "cosine")
    w = np.ones(50)
    lazy, _ = greedy_order(sims, w, 15)
    stoch, _ = greedy_order(
        sims, w, 15, optimizer="stochastic", sample_size=50, rng=np.random.default_rng(0)
    )
    assert stoch.tolist() == lazy.tolist()
    assert sample_size(50_000, 5_000, 0.01) == 47


def test_knn_graph_with_every_neighbour_is_the_dense_objective():
    rng = np.random.default_rng(9)
    X = rng.normal(size=(70, 6)).astype(np.float32)
    P = prepare(X, "cosine")
    w = np.ones(70)
    dense, _ = greedy_order(DenseSimilarities(P, "cosine"), w, 12)
    knn, _ = greedy_order(KnnSimilarities(P, "cosine", 70), w, 12)
    assert knn.tolist() == dense.tolist()
    # fewer neighbours: the graph's rows hold each row's most similar rows
    g = KnnSimilarities(P, "cosine", 5)
    S = P @ P.T
    for i in range(70):
        assert sorted(g.sims[i].tolist(), reverse=True) == pytest.approx(
            np.sort(np.maximum(S[i], 0))[::-1][:5].tolist(), abs=1e-6
        )


def test_selector_ranking_prefix_and_refined_selection():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(120, 6)).astype(np.float32)
    ds = Dataset.from_dict({"i": list(range(120))})
    sel = FacilityLocationSelector(PrecomputedEmbeddings(X), 10, refine="swap")
    run = sel.run(ds)
    full = sel.rank_indices(ds)
    assert np.array_equal(np.sort(full[:10]), run.indices)
    plain = FacilityLocationSelector(PrecomputedEmbeddings(X), 10).run(ds)
    assert coverage(X, run.indices) <= coverage(X, plain.indices)
    assert run.extra["objective"] >= plain.extra["objective"] - 1e-9
    assert run.extra["graph"] == "dense"


def test_behind_a_chain_with_vectors_in_a_column():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(80, 5)).astype(np.float32)
    ds = Dataset.from_dict({"vec": X.tolist()})
    chain = Chain(
        RandomSelector(0.5, random_state=0),
        FacilityLocationSelector(PrecomputedEmbeddings("vec"), 8),
    )
    picked = chain.select_indices(ds)
    kept = RandomSelector(0.5, random_state=0).select_indices(ds)
    alone = FacilityLocationSelector(PrecomputedEmbeddings("vec"), 8).select_indices(
        ds.select(kept)
    )
    assert picked.tolist() == sorted(kept[alone].tolist())


def test_callable_kernel_and_its_errors():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(30, 3)).astype(np.float32)
    ds = Dataset.from_dict({"i": list(range(30))})

    def rbf(A, B):
        d2 = (A * A).sum(1)[:, None] + (B * B).sum(1)[None, :] - 2 * A @ B.T
        return np.exp(-0.5 * np.maximum(d2, 0))

    got = FacilityLocationSelector(PrecomputedEmbeddings(X), 5, kernel=rbf).run(ds)
    S = rbf(X.astype(np.float64), X.astype(np.float64))
    assert got.ranked.tolist() == plain_greedy(S, np.ones(30), 5)
    with pytest.raises(InvalidParameterError, match="kernel"):
        FacilityLocationSelector(PrecomputedEmbeddings(X), 5, kernel=lambda a, b: a).run(ds)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"kernel": "euclid"}, "'kernel'"),
        ({"optimizer": "naive"}, "'optimizer'"),
        ({"epsilon": 1.5}, "'epsilon'"),
        ({"refine": "pam"}, "'refine'"),
        ({"refine": "swap", "graph": "knn"}, "'refine'"),
        ({"n_neighbors": 0}, "'n_neighbors'"),
        ({"weights": 3}, "'weights'"),
    ],
)
def test_bad_parameters_are_one_line_errors(params, match):
    ds = Dataset.from_dict({"i": [0, 1, 2]})
    with pytest.raises(InvalidParameterError, match=match) as err:
        FacilityLocationSelector(PrecomputedEmbeddings(np.eye(3)), 2, **params).run(ds)
    assert "\n" not in str(err.value)


def test_refine_above_the_dense_limit_is_refused():
    ds = Dataset.from_dict({"i": list(range(10))})
    sel = FacilityLocationSelector(
        PrecomputedEmbeddings(np.eye(10)), 2, refine="swap", max_dense_rows=5
    )
    with pytest.raises(InvalidParameterError, match="max_dense_rows=5"):
        sel.run(ds)


def test_bad_weight_names_the_row():
    ds = Dataset.from_dict({"vec": np.eye(3).tolist(), "w": [1.0, -2.0, 1.0]})
    with pytest.raises(
        DataFormatError, match="Row 1: FacilityLocationSelector's weights column 'w'"
    ):
        FacilityLocationSelector(PrecomputedEmbeddings("vec"), 2, weights="w").run(ds)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(X=vector_sets(), data=st.data())
def test_every_lazy_pick_has_the_largest_gain(X, data):
    """Property: each pick of the lazy greedy is an argmax of the exact gain (to 1e-9), on
    matrices with duplicate rows, zero rows and ties; the knn graph with every row agrees."""
    n = X.shape[0]
    k = data.draw(st.integers(1, n))
    w = np.asarray(data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)), float)
    P = prepare(X, "cosine")
    sims = DenseSimilarities(P, "cosine")
    order, cur = greedy_order(sims, w, k)
    assert sorted(set(order.tolist())) == sorted(order.tolist()) and order.size == k
    S = sims.T.T.astype(np.float64)
    c = np.zeros(n)
    for j in order:
        gains = (np.maximum(S, c[:, None]) - c[:, None]).T @ w
        gains[[i for i in order if i in set(order[: list(order).index(j)])]] = -np.inf
        assert gains[j] >= gains.max() - 1e-9
        c = np.maximum(c, S[:, j])
    np.testing.assert_allclose(cur, c, atol=1e-6)
    knn, _ = greedy_order(KnnSimilarities(P, "cosine", n), w, k)
    assert facility_value(sims, w, knn) == pytest.approx(facility_value(sims, w, order), abs=1e-6)
