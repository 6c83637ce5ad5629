"""``VECTORS_THEN_GLOBAL`` selectors on Ray: vectors in an actor pool, the global
step on the driver.

The general path (:func:`rank_by_vectors`), for any selector that declares
:attr:`~sftselect.core.base.EngineKind.VECTORS_THEN_GLOBAL`: an actor pool builds
the selector once per actor and turns each block into its rows' vectors with the
selector's own ``embed``; the vectors are gathered on the driver in position
order and the selector's ``rank_vectors`` ranks them. It gives the
single-machine answer; the driver holds ``n x d`` float32 (no rows).

The K-means path (:func:`rank_diversity`), for a selector that also declares
``kmeans_allocation`` (:class:`~sftselect.selectors.diversity.DiversitySelector`):
K-means on a sample, every row assigned with ``map_batches``, then the
single-machine allocation; the driver never holds every vector.

1. The driver draws, from the selector's generator and in the single-machine
   order, the K-means seed and (``within="random"``) the permutation of the
   rows; then a uniform sample of ``sample_size`` row positions.
2. The sampled rows are embedded by a pool of actors (each builds the embedder
   once: one model per GPU with ``num_gpus=1``, or per CPU worker) and gathered
   in row order; :func:`sftselect.embedding.clustering.kmeans` is fitted on them, with
   the same backend rule and seed as on one machine.
3. Every row is embedded again by the actor pool and assigned to the nearest
   centroid (its distance kept for ``within="centroid"``); only the label and
   the distance come back to the driver, never the vectors. Clusters are
   renumbered by their first row, as on one machine.
4. :func:`sftselect.selectors.diversity.interleave_clusters` -- the
   single-machine allocation code -- orders the rows, so ``k`` rows are
   exactly ``k`` rows, apportioned as on one machine.

When the sample covers the pool (``sample_size >= n``) step 3 is skipped and
the labels are those of the K-means fit: the selection is then the
single-machine one for the same seed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from ..core.base import RankResult, Selector
from ..core.row_tables import RowArray
from ..core.validation import check_positive_int
from ..embedding.clustering import canonical_labels, kmeans
from ..selectors.diversity import interleave_clusters
from .indexing import ROW_COLUMN, row_positions, rows_named_in_pool
from .portable import PortableSelector
from .scoring import check_positions

if TYPE_CHECKING:
    from ray.data import Dataset

    from ..selectors.diversity import DiversitySelector

__all__ = [
    "KMEANS_SAMPLE_ROWS",
    "AssignActor",
    "EmbeddingActor",
    "gather_vectors",
    "rank_by_vectors",
    "rank_diversity",
]

#: Rows K-means is fitted on by default.
KMEANS_SAMPLE_ROWS = 100_000

#: Rows per embedding batch.
EMBED_BATCH_ROWS = 1024


def _keep_positions(table: pa.Table, positions: np.ndarray) -> pa.Table:
    rows = table.column(ROW_COLUMN).to_numpy()
    return table.filter(pa.array(np.isin(rows, positions, assume_unique=True)))


class EmbeddingActor:
    """Builds the selector (and so its embedder) once; turns a block into
    ``(position, vector)`` rows with the selector's own ``embed``."""

    def __init__(self, spec: PortableSelector) -> None:
        self.selector = spec.build()

    def vectors(self, table: pa.Table) -> np.ndarray:
        from datasets import Dataset

        rows = row_positions(table)
        data = Dataset(table.drop_columns([ROW_COLUMN]))
        with rows_named_in_pool(rows):
            return self.selector.embed(data)  # type: ignore[attr-defined]

    def __call__(self, table: pa.Table) -> pa.Table:
        X = self.vectors(table)
        d = X.shape[1] if X.ndim == 2 else 0
        flat = pa.array(np.ascontiguousarray(X, dtype=np.float32).ravel())
        return pa.table(
            {
                ROW_COLUMN: table.column(ROW_COLUMN),
                "embedding": pa.FixedSizeListArray.from_arrays(flat, d),
            }
        )


class AssignActor(EmbeddingActor):
    """Embeds a block and assigns each row to its nearest centroid."""

    def __init__(self, spec: PortableSelector, centroids: np.ndarray) -> None:
        super().__init__(spec)
        self.centroids = np.asarray(centroids, dtype=np.float64)
        self.sq_norms = (self.centroids**2).sum(axis=1)

    def __call__(self, table: pa.Table) -> pa.Table:
        X = self.vectors(table).astype(np.float64)
        if X.shape[0]:
            d2 = (X**2).sum(axis=1)[:, None] - 2.0 * X @ self.centroids.T + self.sq_norms[None, :]
            labels = np.argmin(d2, axis=1).astype(np.int64)
            dist = np.linalg.norm(
                X.astype(np.float32) - self.centroids.astype(np.float32)[labels], axis=1
            )
        else:
            labels, dist = np.zeros(0, np.int64), np.zeros(0, np.float32)
        return pa.table(
            {
                ROW_COLUMN: table.column(ROW_COLUMN),
                "label": pa.array(labels, pa.int64()),
                "distance": pa.array(np.asarray(dist, np.float64)),
            }
        )


def _gather(dataset: Dataset, columns: list[str]) -> dict[str, Any]:
    parts = list(dataset.iter_batches(batch_size=None, batch_format="pyarrow"))
    if not parts:
        return {ROW_COLUMN: np.zeros(0, np.int64), **{c: None for c in columns}}
    table = pa.concat_tables(parts)
    order = np.argsort(table.column(ROW_COLUMN).to_numpy(), kind="stable")
    table = table.take(pa.array(order))
    out: dict[str, Any] = {ROW_COLUMN: table.column(ROW_COLUMN).to_numpy()}
    for c in columns:
        col = table.column(c).combine_chunks()
        if pa.types.is_fixed_size_list(col.type):
            out[c] = col.flatten().to_numpy().reshape(len(col), col.type.list_size)
        else:
            out[c] = col.to_numpy()
    return out


def _actor_pool(
    selector: Selector,
    batch_size: int | None,
    workers: int | None,
    num_gpus: float,
) -> tuple[PortableSelector, dict[str, Any]]:
    """The selector as sent to the embedding actors, and the ``map_batches`` options."""
    owner = type(selector).__name__
    selector.check_portable()
    spec = PortableSelector.of(selector, {"show_progress": False})
    batch_size = EMBED_BATCH_ROWS if batch_size is None else batch_size
    n_workers = 2 if workers is None else check_positive_int(workers, "workers", owner)
    from ray.data import ActorPoolStrategy

    pool: dict[str, Any] = {
        "batch_size": batch_size,
        "batch_format": "pyarrow",
        "compute": ActorPoolStrategy(size=n_workers),
    }
    if num_gpus:
        pool["num_gpus"] = num_gpus
    return spec, pool


def rank_by_vectors(
    selector: Selector,
    dataset: Dataset,
    rng: np.random.Generator,
    limit: int | None,
    n: int,
    *,
    batch_size: int | None,
    workers: int | None,
    num_gpus: float,
) -> RankResult:
    """Every row's vector from the actor pool, then the selector's ``rank_vectors``
    on the driver: the single-machine ranking (see the module doc)."""
    if n == 0:
        return selector.rank_vectors(np.zeros((0, 0), np.float32), rng, limit)  # type: ignore[attr-defined]
    X = gather_vectors(selector, dataset, batch_size=batch_size, workers=workers, num_gpus=num_gpus)
    return selector.rank_vectors(X, rng, limit)  # type: ignore[attr-defined]


def gather_vectors(
    selector: Selector,
    dataset: Dataset,
    *,
    batch_size: int | None = None,
    workers: int | None = None,
    num_gpus: float = 0.0,
) -> np.ndarray:
    """Every row's vector (the selector's own ``embed``, in an actor pool), gathered on
    the driver in position order: ``n x d`` float32.

    ``dataset`` carries row positions (:func:`~sftselect.distributed.with_row_index`);
    the options are those of :func:`sftselect.distributed.run`.
    """
    spec, pool = _actor_pool(selector, batch_size, workers, num_gpus)
    got = _gather(
        dataset.map_batches(EmbeddingActor, fn_constructor_args=(spec,), **pool), ["embedding"]
    )
    check_positions(got[ROW_COLUMN])
    return got["embedding"]


def rank_diversity(
    selector: DiversitySelector,
    dataset: Dataset,
    rng: np.random.Generator,
    limit: int | None,
    n: int,
    *,
    sample_size: int,
    batch_size: int | None,
    workers: int | None,
    num_gpus: float,
) -> RankResult:
    """Rank the rows of ``dataset`` as :meth:`DiversitySelector.rank_vectors` does
    after K-means on a sample (see the module doc)."""
    selector.check_params()
    sample_size = check_positive_int(sample_size, "sample_size", "sftselect.distributed.run")
    if n == 0:
        return RankResult(order=np.empty(0, dtype=np.int64), n_eligible=0)
    embedder = selector.embedder
    spec, pool = _actor_pool(selector, batch_size, workers, num_gpus)

    # 1. the draws, in the single-machine order, then the sample
    seed = int(rng.integers(0, 2**31 - 1))
    within_order = rng.permutation(n) if selector.within == "random" else None
    # Tie-breaks between clusters, drawn as on one machine (one per cluster asked for).
    cluster_key = rng.random(selector.clusters_for(n))
    covers = sample_size >= n
    sample = None if covers else np.sort(rng.choice(n, size=sample_size, replace=False))

    # 2. embed the sample, fit K-means
    source = dataset
    if sample is not None:
        source = dataset.map_batches(
            _keep_positions, fn_kwargs={"positions": sample}, batch_format="pyarrow"
        )
    got = _gather(
        source.map_batches(EmbeddingActor, fn_constructor_args=(spec,), **pool), ["embedding"]
    )
    check_positions(got[ROW_COLUMN] if covers else np.searchsorted(sample, got[ROW_COLUMN]))
    X = got["embedding"]
    labels, centroids = kmeans(
        X, selector.clusters_for(n), random_state=seed, backend=selector.kmeans_backend
    )

    # 3. assign every row (unless the sample was the pool)
    if covers:
        distance = np.linalg.norm(X - centroids[labels], axis=1)
    else:
        assigned = _gather(
            dataset.map_batches(AssignActor, fn_constructor_args=(spec, centroids), **pool),
            ["label", "distance"],
        )
        check_positions(assigned[ROW_COLUMN])
        labels, centroids = canonical_labels(assigned["label"], centroids)
        distance = assigned["distance"]

    # 4. the single-machine allocation
    if within_order is None:
        within_order = np.lexsort((np.arange(n), distance))
    order = interleave_clusters(
        labels, within_order, selector.allocation, cluster_key[: centroids.shape[0]]
    )
    sizes = np.bincount(labels, minlength=centroids.shape[0])
    extra: dict[str, Any] = {
        "embedder": getattr(embedder, "identity", repr(embedder)),
        "n_clusters": int(centroids.shape[0]),
        "cluster_sizes": sizes,
        "labels": RowArray(labels),  # summarised in the provenance, as on one machine
        "kmeans_sample_rows": int(n if covers else sample_size),
    }
    if limit is not None:
        extra["selected_per_cluster"] = np.bincount(labels[order[:limit]], minlength=sizes.size)
    return RankResult(order=order, n_eligible=n, extra=extra)
