"""SemDeDup (Abbas et al., 2023, "SemDeDup: Data-efficient learning at web-scale
through semantic deduplication"), as NeMo Curator implements it.

The reference is NeMo Curator at commit ``6a75a1acb3ca7192feb21499acba535c2ba9afd1``
(``nemo_curator/utils/semdedup_utils.py``: ``rank_within_cluster``,
``get_semantic_matches_per_cluster``, ``_semdedup``; the clustering in
``nemo_curator/modules/semantic_dedup/clusteringmodel.py`` at
``438f8266d4c5c70f105d0ca95deb6b42add4a791``). Its steps, and here:

1. embed each row and L2-normalise the vectors (NeMo's embedding step
   normalises; here any embedder, normalised after);
2. K-means on the normalised vectors (NeMo: cuML K-means; here
   :func:`sftselect.embedding.clustering.kmeans`, seeded from ``random_state``,
   ``n_clusters`` clamped to the distinct vectors);
3. in each cluster, sort the rows by their cosine distance to the centroid,
   ``1 - cos(x, centroid)``, farthest first (NeMo's ``keep_hard=True``, which
   its pipeline always uses; a stable sort, ties in row order); then
   ``which_to_keep``: ``"hard"`` keeps that order, ``"easy"`` reverses it,
   ``"random"`` shuffles it (NeMo: ``random.shuffle``; here a permutation drawn
   from the selector's generator);
4. in that order, row ``j`` is removed when its largest cosine similarity to a
   row *before it in the order* -- kept or not, as NeMo's
   ``max(triu(E E^T, 1), dim=0)`` gives -- exceeds ``1 - eps``.

Differences, each a decision: ``keep`` also accepts the common keep policies
(``"first"``, ``"longest"``, a column, a selector): the order of step 3 is then
the policy's priority; the similarity matrix is computed in column blocks
(the same maxima, without an ``m x m`` matrix for a cluster of ``m`` rows);
``n_clusters`` defaults to 100 (NeMo's config: 1,000, for web-scale data).
In ``extra["removed_rows"]`` the ``kept`` row of a removed row is the kept row
reached by following each row's most similar earlier row (NeMo's ``max_id``),
and ``similarity`` is the cosine similarity to that kept row.
"""

from __future__ import annotations

import numbers
import os
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ...core.base import RankResult, Selector
from ...core.constraints import K_CONSTRAINTS, Interval, Options
from ...embedding.clustering import BACKENDS, kmeans
from ..embedded import CACHE_DIR, EMBEDDER, FORMAT, TEXT, embed_rows, refuse_in_memory_vectors
from ._groups import VectorsOrWhole, dedup_result, keep_constraints, keep_priority

if TYPE_CHECKING:
    from datasets import Dataset

    from ...data.formats import Format

__all__ = ["WHICH_TO_KEEP", "SemDeDup", "cluster_matches"]

#: NeMo Curator's ``which_to_keep`` values.
WHICH_TO_KEEP = ("hard", "easy", "random")

_BLOCK = 1024


def _normalised(X: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return (X / np.maximum(norms, 1e-12)).astype(np.float32)


def cluster_matches(E: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows ``E`` (normalised, in walk order): ``M[j]``, the largest cosine
    similarity of row ``j`` to a row before it (0 when none is positive, as
    NeMo's upper-triangular maximum gives), and ``M1[j]``, that row."""
    m = E.shape[0]
    M = np.zeros(m, dtype=np.float32)
    M1 = np.zeros(m, dtype=np.int64)
    for start in range(1, m, _BLOCK):
        stop = min(m, start + _BLOCK)
        sims = E[:stop] @ E[start:stop].T  # [rows before, block columns]
        rows = np.arange(stop)[:, None]
        cols = np.arange(start, stop)[None, :]
        sims = np.where(rows < cols, sims, np.float32(0.0))
        M1[start:stop] = np.argmax(sims, axis=0)
        M[start:stop] = sims[M1[start:stop], np.arange(stop - start)]
    return M, M1


class SemDeDup(Selector):
    """Drop rows whose embedding is nearly identical to an earlier row of their K-means cluster.

    Parameters
    ----------
    embedder : Embedder or PrecomputedEmbeddings
        Turns rows into vectors (normalised here).
    k : int, float or None, default None
        None keeps every row the filter keeps; a number the first ``k`` (row order).
    eps : float in (0, 1], default 0.01
        A row is removed when its cosine similarity to an earlier row of its
        cluster exceeds ``1 - eps`` (NeMo's ``eps_to_extract`` default, 0.01).
    n_clusters : int, default 100
    keep : str or Selector, default "hard"
        The order within a cluster: ``"hard"`` (farthest from the centroid
        first, so outliers are kept), ``"easy"`` (nearest first), ``"random"``,
        or a keep policy (``"first"``, ``"longest"``, a column, a selector).
    text : {"instruction", "instruction_input", "response", "example"}, default "example"
    kmeans_backend : {"auto", "sklearn", "minibatch", "faiss"}, default "auto"
    cache_dir : str, path or None
    format : str, Format or None
    random_state : int, numpy Generator or None
        Seeds K-means and ``keep="random"``.
    """

    #: ``VECTORS_THEN_GLOBAL`` when the keep rule reads only the vectors (``hard``,
    #: ``easy``, ``random``, ``first``), else ``WHOLE_DATASET`` (see :class:`._groups.VectorsOrWhole`).
    engine_kind = VectorsOrWhole()
    _k_optional = True
    _uses_random_state = True
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "embedder": EMBEDDER,
        "k": [*K_CONSTRAINTS, None],
        "eps": [Interval(numbers.Real, 0, 1, closed="right")],
        "n_clusters": [Interval(numbers.Integral, 1, None)],
        "keep": keep_constraints(WHICH_TO_KEEP),
        "text": TEXT,
        "kmeans_backend": [Options(*BACKENDS)],
        "cache_dir": CACHE_DIR,
        "format": FORMAT,
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        embedder: Any,
        k: int | float | None = None,
        *,
        eps: float = 0.01,
        n_clusters: int = 100,
        keep: Any = "hard",
        text: str = "example",
        kmeans_backend: str = "auto",
        cache_dir: str | os.PathLike[str] | None = None,
        format: str | Format | None = None,
        random_state: Any = None,
    ) -> None:
        self.embedder = embedder
        self.k = k
        self.eps = eps
        self.n_clusters = n_clusters
        self.keep = keep
        self.text = text
        self.kmeans_backend = kmeans_backend
        self.cache_dir = cache_dir
        self.format = format
        self.random_state = random_state

    def check_params(self) -> None:
        """Check the parameters against ``_parameter_constraints`` (no data needed)."""
        self._validate_params()

    def vectors_suffice(self) -> bool:
        """Whether the global step reads only the vectors: the keep rule is ``hard``,
        ``easy``, ``random`` or ``first`` (not a column, ``longest`` or a selector)."""
        return isinstance(self.keep, str) and self.keep in (*WHICH_TO_KEEP, "first")

    def check_portable(self) -> None:
        """Refuse ``PrecomputedEmbeddings`` holding an in-memory array: rebuilt in a
        worker that sees a block of rows, it cannot tell which vectors are theirs."""
        refuse_in_memory_vectors(self)

    def embed(self, dataset: Dataset) -> np.ndarray:
        """The float32 ``[len(dataset), d]`` vectors of the rows, each from its row alone."""
        self.check_params()
        return np.asarray(embed_rows(self, dataset), dtype=np.float32)

    def _priority(self, dataset: Dataset | None, n: int, rng: np.random.Generator) -> Any:
        """The keep policy's priority, or None for a rule of :data:`WHICH_TO_KEEP`."""
        if isinstance(self.keep, str) and self.keep in WHICH_TO_KEEP:
            return None
        if isinstance(self.keep, str) and self.keep == "first":
            return np.arange(n, dtype=np.int64)
        if dataset is None:
            raise RuntimeError(f"keep={self.keep!r} needs the rows, not only their vectors")
        return keep_priority(self.keep, dataset, rng, self.format, type(self).__name__)

    def _walk_orders(
        self,
        priority: np.ndarray | None,
        E: np.ndarray,
        labels: np.ndarray,
        centroids: np.ndarray,
        rng: np.random.Generator,
    ) -> list[np.ndarray]:
        """Each cluster's rows in walk order (clusters in label order)."""
        orders = []
        for c in range(centroids.shape[0]):
            rows = np.flatnonzero(labels == c)
            if priority is not None:
                orders.append(rows[np.argsort(priority[rows], kind="stable")])
                continue
            cent = centroids[c]
            cos = (E[rows] @ cent) / max(float(np.linalg.norm(cent)), 1e-8)
            hard = rows[np.argsort(-(1.0 - cos), kind="stable")]
            if self.keep == "easy":
                hard = hard[::-1]
            elif self.keep == "random":
                hard = hard[rng.permutation(hard.size)]
            orders.append(hard)
        return orders

    def _cluster(
        self, X: np.ndarray, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Normalised vectors, K-means labels and centroids (K-means seeded by one draw)."""
        E = _normalised(np.asarray(X, dtype=np.float32))
        seed = int(rng.integers(0, 2**31 - 1))
        labels, centroids = kmeans(
            E, int(self.n_clusters), random_state=seed, backend=self.kmeans_backend
        )
        return E, labels, centroids

    def cluster(self, dataset: Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(vectors, labels, centroids)``: the normalised vectors and the clustering
        :meth:`run` uses (the same when ``random_state`` is an int)."""
        self.check_params()
        rng, _ = self.resolve_seed()
        return self._cluster(embed_rows(self, dataset), rng)

    def rank_vectors(
        self, vectors: np.ndarray, rng: np.random.Generator, limit: int | None
    ) -> RankResult:
        """The global step over every row's vector (in position order, what :meth:`embed`
        gives): K-means, then the walk of each cluster (keep rules that read only vectors)."""
        self.check_params()
        return self._rank_vectors(vectors, rng, None)

    def _rank(self, dataset: Dataset, rng: np.random.Generator, limit: int | None) -> RankResult:
        self.check_params()
        if len(dataset) == 0:
            return RankResult(order=np.empty(0, dtype=np.int64), n_eligible=0)
        return self._rank_vectors(embed_rows(self, dataset), rng, dataset)

    def _rank_vectors(
        self, X: np.ndarray, rng: np.random.Generator, dataset: Dataset | None
    ) -> RankResult:
        n = X.shape[0]
        if n == 0:
            return RankResult(order=np.empty(0, dtype=np.int64), n_eligible=0)
        E, labels, centroids = self._cluster(X, rng)
        priority = self._priority(dataset, n, rng)
        threshold = 1.0 - float(self.eps)
        rep = np.arange(n, dtype=np.int64)
        for walk in self._walk_orders(priority, E, labels, centroids, rng):
            M, M1 = cluster_matches(E[walk])
            removed = threshold < M
            for j in np.flatnonzero(removed).tolist():  # walk order: M1[j] < j is settled
                rep[walk[j]] = rep[walk[M1[j]]]
        similarity = np.einsum("ij,ij->i", E, E[rep]).astype(np.float64)
        details = {
            "measure": "cosine similarity of normalised embeddings",
            "embedder": getattr(self.embedder, "identity", repr(self.embedder)),
            "eps": float(self.eps),
            "n_clusters": int(centroids.shape[0]),
            "keep": self.keep if isinstance(self.keep, str) else type(self.keep).__name__,
        }
        return dedup_result(rep, similarity, details)
