"""K-means for embedding-based selection, with a fixed seed and a clamp rule.

``kmeans(X, n_clusters, random_state=...)`` returns ``(labels, centroids)``:
int64 labels in ``[0, C)`` and float32 centroids ``[C, d]``.

Backends:

* ``"sklearn"`` -- :class:`sklearn.cluster.KMeans` (Lloyd, k-means++ init,
  ``n_init=1``: one k-means++ seeding, which scikit-learn also uses for
  ``n_init="auto"``);
* ``"minibatch"`` -- :class:`sklearn.cluster.MiniBatchKMeans` (k-means++,
  ``n_init=1`` as scikit-learn's ``"auto"`` gives for k-means++, ``batch_size=4096``);
* ``"faiss"`` -- ``faiss.Kmeans`` (20 iterations), only when faiss is installed;
* ``"auto"`` -- ``"sklearn"`` below :data:`MINIBATCH_THRESHOLD` rows, else
  ``"minibatch"``.

The same ``X``, ``n_clusters`` and integer ``random_state`` give the same
result on the same machine and library versions.

Clamp rule: K-means cannot make more non-empty clusters than there are
distinct points, so the number of clusters used is
``C = min(n_clusters, number of distinct rows of X)``. Labels are renumbered
so that cluster 0 is the one holding the lowest row index, cluster 1 the next
new one, and so on (a canonical order independent of the backend's numbering);
empty clusters, should a backend leave any, are dropped.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ..core.validation import check_choice, param_error
from ..exceptions import MissingExtraError

__all__ = [
    "BACKENDS",
    "MINIBATCH_THRESHOLD",
    "canonical_labels",
    "clusters_used",
    "kmeans",
    "n_distinct_rows",
]

BACKENDS: tuple[str, ...] = ("auto", "sklearn", "minibatch", "faiss")

#: Rows from which ``backend="auto"`` switches to MiniBatchKMeans.
MINIBATCH_THRESHOLD = 20_000


def n_distinct_rows(X: np.ndarray) -> int:
    """The number of distinct rows of a 2-D array (-0.0 equals 0.0)."""
    if X.shape[0] == 0:
        return 0
    Xc = np.ascontiguousarray(X + np.zeros((), dtype=X.dtype))  # turns -0.0 into 0.0
    if Xc.shape[1] == 0:
        return 1
    void = Xc.view(np.dtype((np.void, Xc.dtype.itemsize * Xc.shape[1]))).ravel()
    return int(np.unique(void).size)


def clusters_used(X: np.ndarray, n_clusters: int) -> int:
    """``min(n_clusters, n_distinct_rows(X))``, reading as few rows as it needs.

    Counting distinct rows copies and sorts the data (about 3x its size at the
    peak), so the first ``max(4 * n_clusters, 1024)`` rows are tried first: when
    they already hold ``n_clusters`` distinct rows, the rest is never read.
    """
    head = max(4 * int(n_clusters), 1024)
    if X.shape[0] > head and n_distinct_rows(X[:head]) >= n_clusters:
        return int(n_clusters)
    return min(int(n_clusters), n_distinct_rows(X))


def canonical_labels(labels: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Renumber clusters by first appearance in row order; drop empty ones.

    What :func:`kmeans` returns is already in this order; an engine that assigns
    rows to centroids itself renumbers its labels with it.
    """
    _, first = np.unique(labels, return_index=True)
    used = labels[np.sort(first)]  # old ids in order of first appearance
    remap = np.full(centroids.shape[0], -1, dtype=np.int64)
    remap[used] = np.arange(used.size)
    return remap[labels], np.ascontiguousarray(centroids[used], dtype=np.float32)


def kmeans(
    X: Any,
    n_clusters: int,
    *,
    random_state: int | None = 0,
    backend: str = "auto",
) -> tuple[np.ndarray, np.ndarray]:
    """Cluster the rows of ``X``; see the module docstring for backends and clamping."""
    owner = "kmeans"
    check_choice(backend, "backend", owner, BACKENDS)
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, numbers.Integral):
        raise param_error(owner, "n_clusters", "a positive int", n_clusters)
    if n_clusters <= 0:
        raise param_error(owner, "n_clusters", "a positive int", n_clusters)
    X = np.ascontiguousarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise param_error(owner, "X", "a 2-D array", f"shape {list(X.shape)}")
    n = X.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros((0, X.shape[1]), dtype=np.float32)
    C = clusters_used(X, int(n_clusters))
    if C == 1:
        return np.zeros(n, dtype=np.int64), X.mean(axis=0, keepdims=True)
    if backend == "auto":
        backend = "sklearn" if n < MINIBATCH_THRESHOLD else "minibatch"
    seed = None if random_state is None else int(random_state)
    if backend == "faiss":
        labels, centroids = _faiss(X, C, seed)
    else:
        try:
            from sklearn.cluster import KMeans, MiniBatchKMeans
        except ImportError:
            raise MissingExtraError(
                "K-means needs scikit-learn: pip install 'sftselect[cluster]' (precomputed "
                "embeddings), or 'sftselect[embed]' to compute them too."
            ) from None
        if backend == "sklearn":
            km = KMeans(n_clusters=C, init="k-means++", n_init=1, random_state=seed)
        else:
            km = MiniBatchKMeans(
                n_clusters=C, init="k-means++", n_init=1, batch_size=4096, random_state=seed
            )
        labels = km.fit_predict(X)
        centroids = km.cluster_centers_
    return canonical_labels(np.asarray(labels, dtype=np.int64), np.asarray(centroids, np.float32))


def _faiss(X: np.ndarray, C: int, seed: int | None) -> tuple[np.ndarray, np.ndarray]:
    try:
        import faiss
    except ImportError:
        raise MissingExtraError(
            "backend='faiss' needs faiss: pip install faiss-cpu (or faiss-gpu)."
        ) from None
    km = faiss.Kmeans(X.shape[1], C, niter=20, seed=1234 if seed is None else seed, verbose=False)
    km.train(X)
    _, labels = km.index.search(X, 1)
    return labels.ravel().astype(np.int64), np.asarray(km.centroids, dtype=np.float32)
