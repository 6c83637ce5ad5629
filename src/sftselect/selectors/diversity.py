"""DiversitySelector: cluster the embeddings, then take rows from every cluster.

The diversity baseline this reproduces embeds every example with LLaMA-2
(hidden states, average-pooled), runs K-means with 100 clusters, and samples
examples from each cluster. The paper does **not** publish which text is
embedded, which layer, how many rows each cluster gives, or how rows are picked
inside a cluster. Cherry LLM's public code takes 10 rows from each of 100
clusters (equal allocation). The defaults here follow that: ``n_clusters=100``,
``allocation="equal"``, ``within="random"``, ``text="instruction_input"``;
``HFEmbedder(llama2_path, pooling="mean")`` gives the paper's average pooling
of the last layer.

The ranking. K-means (:func:`sftselect.embedding.clustering.kmeans`, seeded from
``random_state``) labels each row with a cluster. Rows of each cluster are
ordered -- in a seeded random order (``within="random"``) or by Euclidean
distance to the cluster centroid, nearest first, ties by row index
(``within="centroid"``) -- and the clusters are interleaved so every prefix of
the ranking is apportioned among clusters by a divisor method:

* ``allocation="equal"`` -- round robin: the ``j``-th row of every cluster comes
  before the ``(j+1)``-th row of any cluster, so ``k`` rows give each cluster
  ``floor(k/C)`` or ``ceil(k/C)`` rows;
* ``allocation="proportional"`` -- Sainte-Laguë: the ``j``-th row of a cluster
  of size ``n_c`` has priority ``(2j + 1) / n_c``, so counts follow sizes.

Ties between clusters (which get the leftover rows) are broken by seeded draws,
one per cluster.
A cluster that runs out of rows simply drops out of the round robin, so the
quota it cannot fill goes to the remaining clusters in the same order and any
``k <= n`` gives exactly ``k`` rows. Both rules are house-monotone: a larger
``k`` extends a smaller one.

Coverage. This is the paper's baseline, kept as the paper ran it; it does not
cover the pool better than chance. On records 2000-3999 of
``alpaca_pool/random_9k.json`` (all-MiniLM-L6-v2, normalised, k = 200), the
mean over rows of ``1 - max cos`` to a selected row is 0.522 for the paper's
mode with 20 clusters and about 0.51 with 100, against 0.512 for
:class:`~sftselect.selectors.random.RandomSelector`
(``benchmarks/bench_coverage_fl.py``). For a subset that covers the pool, use
``n_clusters="k", within="centroid"`` (K-means with ``k`` clusters, the row
nearest each centroid) or, better,
:class:`~sftselect.selectors.facility.FacilityLocationSelector`.
``normalize=True`` L2-normalises each vector before K-means (in
:meth:`DiversitySelector.embed`, so on Ray too): K-means on sentence-embedding
models' unit vectors is then spherical-like, as their cosine similarity asks.

The cluster of each row is in ``run(ds).extra["labels"]`` (with the cluster
sizes and the rows taken per cluster), and :meth:`DiversitySelector.cluster`
returns labels and centroids alone. The labels are a
:class:`~sftselect.core.row_tables.RowArray`: the provenance record holds only
their count, and ``sftselect select`` writes them beside the output
(``OUTPUT.rows.csv``: ``position``, ``labels``).

The selector declares :attr:`~sftselect.core.base.EngineKind.VECTORS_THEN_GLOBAL`:
:meth:`DiversitySelector.embed` gives each row's vector from that row alone and
:meth:`DiversitySelector.rank_vectors` is the global step (K-means, then the
allocation), so ``_rank(ds)`` is ``rank_vectors(embed(ds))``. It also declares
``kmeans_allocation = True``: an engine may fit K-means on a sample of the
vectors and assign every row to its nearest centroid (see ``docs/scaling.md``).
"""

from __future__ import annotations

import numbers
import os
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..core.base import EngineKind, RankResult, Selector
from ..core.constraints import K_CONSTRAINTS, Interval, Options
from ..core.ranking import ALLOCATIONS, interleave_groups
from ..core.row_tables import RowArray
from ..embedding.clustering import BACKENDS, kmeans
from .embedded import CACHE_DIR, EMBEDDER, FORMAT, TEXT, embed_rows, refuse_in_memory_vectors

if TYPE_CHECKING:
    from datasets import Dataset

    from ..data.formats import Format

__all__ = ["ALLOCATIONS", "WITHIN", "DiversitySelector", "interleave_clusters"]

WITHIN = ("random", "centroid")


def interleave_clusters(
    labels: np.ndarray,
    within_order: np.ndarray,
    allocation: str,
    cluster_key: np.ndarray | None = None,
) -> np.ndarray:
    """Rows ordered so every prefix is apportioned among clusters (see the module doc).

    ``cluster_key`` (one number per cluster) breaks ties between clusters: the
    selectors pass seeded uniform draws (:func:`sftselect.core.ranking.interleave_groups`).
    """
    return interleave_groups(labels, within_order, allocation, cluster_key)


class DiversitySelector(Selector):
    """``k`` rows spread over K-means clusters of their embeddings.

    Parameters
    ----------
    embedder : Embedder or PrecomputedEmbeddings
        Turns rows into vectors (e.g. ``HFEmbedder(...)``).
    k : int or float, default 1000
        Rows to keep: a positive int, or a fraction in (0, 1] (rounded up).
    text : {"instruction", "instruction_input", "response", "example"}
        Which text of each row is embedded (see
        :func:`sftselect.embedding.example_texts`); ignored by
        ``PrecomputedEmbeddings``.
    n_clusters : int or "k", default 100
        Clusters asked of K-means; fewer are used when the data has fewer
        distinct vectors (see :mod:`sftselect.embedding.clustering`). ``"k"``:
        as many clusters as rows to keep (``k`` resolved against the rows), so
        with ``within="centroid"`` the selection is the row nearest each centroid.
    allocation : {"equal", "proportional"}, default "equal"
    within : {"random", "centroid"}, default "random"
    normalize : bool, default False
        L2-normalise each vector before K-means (for sentence-embedding models).
    kmeans_backend : {"auto", "sklearn", "minibatch", "faiss"}, default "auto"
    cache_dir : str, path or None
        A folder caching embeddings across runs (see
        :mod:`sftselect.embedding.cache`).
    format : str, Format or None
        The data format; None detects it.
    random_state : int, numpy Generator or None
        Seeds K-means and the order inside clusters.
    show_progress : bool, default False
        A progress line for the K-means step (its elapsed time); embedding
        progress is the embedder's (``HFEmbedder(show_progress=True)``).
    """

    engine_kind = EngineKind.VECTORS_THEN_GLOBAL
    #: Declares that :meth:`rank_vectors` is K-means (``n_clusters``,
    #: ``kmeans_backend``, seeded first from the generator) followed by
    #: :func:`interleave_clusters` (``allocation``, ``within``), so an engine may fit
    #: K-means on a sample of the vectors and assign every row to its nearest
    #: centroid. A subclass that changes :meth:`rank_vectors` sets it to False (an
    #: engine then runs :meth:`rank_vectors` on every row's vector).
    kmeans_allocation: ClassVar[bool] = True
    _uses_random_state = True
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "embedder": EMBEDDER,
        "k": K_CONSTRAINTS,
        "text": TEXT,
        "n_clusters": [Interval(numbers.Integral, 1, None), Options("k", description='"k"')],
        "allocation": [Options(*ALLOCATIONS)],
        "within": [Options(*WITHIN)],
        "normalize": ["boolean"],
        "kmeans_backend": [Options(*BACKENDS)],
        "cache_dir": CACHE_DIR,
        "format": FORMAT,
        "random_state": ["random_state"],
        "show_progress": ["boolean"],
    }

    def __init__(
        self,
        embedder: Any,
        k: int | float = 1000,
        *,
        text: str = "instruction_input",
        n_clusters: int | str = 100,
        allocation: str = "equal",
        within: str = "random",
        normalize: bool = False,
        kmeans_backend: str = "auto",
        cache_dir: str | os.PathLike[str] | None = None,
        format: str | Format | None = None,
        random_state: Any = None,
        show_progress: bool = False,
    ) -> None:
        self.embedder = embedder
        self.k = k
        self.text = text
        self.n_clusters = n_clusters
        self.allocation = allocation
        self.within = within
        self.normalize = normalize
        self.kmeans_backend = kmeans_backend
        self.cache_dir = cache_dir
        self.format = format
        self.random_state = random_state
        self.show_progress = show_progress

    def check_params(self) -> None:
        """Check the parameters against ``_parameter_constraints`` (no data needed)."""
        self._validate_params()

    def clusters_for(self, n: int) -> int:
        """The clusters asked of K-means for ``n`` rows: ``n_clusters``, or ``k`` resolved."""
        if self.n_clusters == "k":
            from ..core.validation import resolve_k

            return max(1, min(resolve_k(self.check_k(), n), n))
        return int(self.n_clusters)

    def check_portable(self) -> None:
        """Refuse ``PrecomputedEmbeddings`` holding an in-memory array: rebuilt in a
        worker that sees a block of rows, it cannot tell which vectors are theirs."""
        refuse_in_memory_vectors(self)

    def embed(self, dataset: Dataset) -> np.ndarray:
        """The float32 ``[len(dataset), d]`` vectors of the rows, each from its row alone
        (the ``text`` field under ``embedder``, through ``cache_dir``)."""
        self.check_params()
        X = embed_rows(self, dataset)
        if self.normalize and X.size:
            from .coverage import unit_rows

            X = unit_rows(X)
        return X

    def _fit(self, X: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """K-means on ``X``, seeded by one draw from ``rng``: labels and centroids."""
        seed = int(rng.integers(0, 2**31 - 1))
        bar = None
        if self.show_progress:
            from tqdm.auto import tqdm

            desc = (
                f"k-means ({self.kmeans_backend}, {self.clusters_for(X.shape[0])} clusters, "
                f"{X.shape[0]:,} rows)"
            )
            bar = tqdm(total=1, desc=desc, unit="fit")
        try:
            labels, centroids = kmeans(
                X, self.clusters_for(X.shape[0]), random_state=seed, backend=self.kmeans_backend
            )
            if bar is not None:
                bar.update(1)
        finally:
            if bar is not None:
                bar.close()
        return labels, centroids

    def cluster(self, dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
        """``(labels, centroids)`` of ``dataset``: the clustering :meth:`run` uses.

        Equal to ``run(dataset).extra["labels"]`` when ``random_state`` is an int.
        """
        from ..data.formats import check_dataset

        check_dataset(dataset, type(self).__name__)
        self.check_params()
        rng, _ = self.resolve_seed()
        if len(dataset) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        return self._fit(self.embed(dataset), rng)

    def rank_vectors(
        self, vectors: np.ndarray, rng: np.random.Generator, limit: int | None
    ) -> RankResult:
        """The global step: K-means on every row's vector, then the allocation.

        ``vectors`` holds one row per dataset row, in position order (what
        :meth:`embed` gives); ``rng`` and ``limit`` are those of :meth:`rank`.
        """
        self.check_params()
        X = vectors
        n = X.shape[0]
        if n == 0:
            return RankResult(order=np.empty(0, dtype=np.int64), n_eligible=0)
        labels, centroids = self._fit(X, rng)
        if self.within == "random":
            within_order = rng.permutation(n)
        else:
            dist = np.linalg.norm(X - centroids[labels], axis=1)
            within_order = np.lexsort((np.arange(n), dist))
        # Which clusters get the leftover rows when k does not divide evenly: seeded.
        cluster_key = rng.random(self.clusters_for(n))[: centroids.shape[0]]
        order = interleave_clusters(labels, within_order, self.allocation, cluster_key)
        sizes = np.bincount(labels, minlength=centroids.shape[0])
        extra: dict[str, Any] = {
            "embedder": getattr(self.embedder, "identity", repr(self.embedder)),
            "n_clusters": int(centroids.shape[0]),
            "cluster_sizes": sizes,
            "labels": RowArray(labels),
        }
        if limit is not None:
            taken = np.bincount(labels[order[:limit]], minlength=sizes.size)
            extra["selected_per_cluster"] = taken
        return RankResult(order=order, n_eligible=n, extra=extra)

    def _rank(self, dataset: Dataset, rng: np.random.Generator, limit: int | None) -> RankResult:
        self.check_params()
        if len(dataset) == 0:
            return RankResult(order=np.empty(0, dtype=np.int64), n_eligible=0)
        return self.rank_vectors(self.embed(dataset), rng, limit)
