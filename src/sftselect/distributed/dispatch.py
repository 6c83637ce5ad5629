"""The path of each engine kind on Ray, and the pool a composite's operands run on.

:func:`rank_on_ray` ranks one selector over an indexed Ray Dataset by the path of
its declared :class:`~sftselect.core.kinds.EngineKind`. :class:`RayPool` is the
:class:`~sftselect.core.pool.Pool` of the Ray engine: a ``COMPOSITE`` selector
(``Chain``, ``Union``, ``Intersection``, ``PerSource`` or your own) runs its own
combination code on it, and each operand it runs goes down its own path here, so
a composite gives the selection one machine gives for the same seeds.
A subset of a pool is the pool's rows filtered on the cluster and renumbered
``0 .. m - 1`` in position order, exactly as ``datasets.Dataset.select`` numbers
them on one machine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from ..core.base import EngineKind, RankResult, Selection, Selector
from ..core.ranking import stratum_codes
from ..core.validation import resolve_k
from .dedup import DUPLICATE_METHODS, rank_duplicates
from .diversity import rank_by_vectors, rank_diversity
from .indexing import ROW_COLUMN
from .sampling import gather_rows, rank_gathered
from .scoring import rank_by_score
from .selection import keep_positions
from .summary import RunSummary

if TYPE_CHECKING:
    from ray.data import Dataset

__all__ = ["KINDS", "SUPPORTED", "EngineOptions", "RayPool", "engine_kind_of", "rank_on_ray"]

#: The library's selectors whose work Ray spreads over the cluster (by their declared
#: kind; any selector declaring the same kind runs the same way, subclasses included).
#: ``SemDeDup`` and ``RepresentationFilter`` declare their kind by instance: they are
#: spread when their global step needs only vectors (``sd.KINDS``, docs/scaling.md) and
#: gathered on the driver otherwise. A repository test keeps this list equal to the
#: exported selectors that declare a kind other than ``WHOLE_DATASET``.
SUPPORTED = (
    "LengthSelector",
    "ColumnScoreSelector",
    "QualitySelector",
    "IFDSelector",
    "SuperfilteringSelector",
    "PerplexitySelector",
    "DeitaSelector",
    "RewardSelector",
    "RandomSelector",
    "DiversitySelector",
    "KCenterSelector",
    "FacilityLocationSelector",
    "TargetedSelector",
    "SemDeDup",
    "RepresentationFilter",
    "ExactDedup",
    "MinHashDedup",
    "Chain",
    "Union",
    "Intersection",
    "PerSource",
)

#: What this engine does for each declared :class:`~sftselect.core.base.EngineKind`.
KINDS: dict[EngineKind, str] = {
    EngineKind.ROW_SCORE: "scores per block on the cluster, one exact top-k merge",
    EngineKind.VECTORS_THEN_GLOBAL: "vectors per block on an actor pool, the global step "
    "on the driver",
    EngineKind.SEEDED_DRAW: "positions and the named columns gathered, the seeded draw on "
    "the driver",
    EngineKind.COMPOSITE: "the composite's own combination on the driver, each operand by "
    "its own kind on the cluster",
    EngineKind.DUPLICATE_GROUPS: "keys per block, rows grouped by key with a hash shuffle "
    "on the cluster, pairs measured where their rows meet; union-find and the keep policy "
    "on the driver over pairs and a few numbers per row",
    EngineKind.WHOLE_DATASET: "every row gathered on the driver, the one-process ranking "
    "(does not scale)",
}


@dataclass(frozen=True)
class EngineOptions:
    """How the Ray engine runs each path (the options of :func:`sftselect.distributed.run`)."""

    summary: RunSummary
    workers: int | None
    batch_size: int | None
    num_gpus: float
    kmeans_sample: int


def _renumbered(table: pa.Table, positions: np.ndarray) -> pa.Table:
    """The rows of ``table`` at ``positions``, their position column renumbered 0..m-1."""
    kept = keep_positions(table, positions)
    rows = kept.column(ROW_COLUMN).to_numpy()
    at = kept.schema.get_field_index(ROW_COLUMN)
    return kept.set_column(
        at, ROW_COLUMN, pa.array(np.searchsorted(positions, rows).astype(np.int64))
    )


class RayPool:
    """A :class:`~sftselect.core.pool.Pool` over an indexed Ray Dataset."""

    def __init__(self, dataset: Dataset, options: EngineOptions, n: int | None = None) -> None:
        self.dataset = dataset
        self.options = options
        self._n = n

    def __len__(self) -> int:
        if self._n is None:
            self._n = _count(self.dataset, self.options.summary)
        return self._n

    @property
    def column_names(self) -> list[str]:
        return [c for c in self.dataset.columns() if c != ROW_COLUMN]

    def subset(self, positions: np.ndarray) -> RayPool:
        positions = np.asarray(positions, dtype=np.int64)
        filtered = self.dataset.map_batches(
            _renumbered, fn_kwargs={"positions": positions}, batch_format="pyarrow"
        )
        return RayPool(filtered, self.options, n=int(positions.size))

    def codes(self, column: str) -> tuple[np.ndarray, list[Any]]:
        from datasets import Dataset as HFDataset

        return stratum_codes(HFDataset(gather_rows(self.dataset, [column])), column)

    def _ranking(
        self, selector: Selector, k: int | float | None
    ) -> tuple[RankResult, int, np.random.Generator, Any]:
        kind = engine_kind_of(selector)
        rng, seed = selector.resolve_seed()
        if kind is EngineKind.COMPOSITE:
            n = len(self)
            limit = None if k is None else min(resolve_k(k, n), n)
            return selector.rank_pool(self, rng, limit), n, rng, seed  # type: ignore[attr-defined]
        o = self.options
        result, n = rank_on_ray(
            selector,
            kind,
            self.dataset,
            rng,
            k,
            o.summary,
            workers=o.workers,
            batch_size=o.batch_size,
            num_gpus=o.num_gpus,
            kmeans_sample=o.kmeans_sample,
        )
        return result, n, rng, seed

    def run(
        self, selector: Selector, *, fingerprint: str | None = None, stacklevel: int = 4
    ) -> Selection:
        k = selector.check_k()
        result, n, _, seed = self._ranking(selector, k)
        return selector.build_selection(
            result,
            n=n,
            k=k,
            seed=seed,
            fingerprint=fingerprint,
            dataset=None,  # the rows stay on the cluster
            stacklevel=stacklevel,
        )

    def full_ranking(self, selector: Selector) -> tuple[RankResult, Any]:
        selector.check_k()
        result, n, _, seed = self._ranking(selector, None)
        # the seed record is kept only for a selector that draws, as one machine keeps it
        return result, selector.build_selection(result, n=n, k=None, seed=seed).seed


def engine_kind_of(selector: Selector) -> EngineKind:
    """The selector's declared kind, or TypeError when this engine cannot run it."""
    name = type(selector).__name__
    kind = getattr(selector, "engine_kind", None)
    runs = "; ".join(f"{k.name}: {what}" for k, what in KINDS.items())
    if not isinstance(kind, EngineKind):
        raise TypeError(
            f"{name} cannot run on Ray: its engine_kind is {kind!r}, not a "
            f"sftselect.core.base.EngineKind. Kinds that run: {runs}."
        )
    if kind not in KINDS:
        raise TypeError(
            f"{name} cannot run on Ray: it declares {kind.name}. Kinds that run: {runs}."
        )
    if kind is EngineKind.COMPOSITE and not callable(getattr(selector, "rank_pool", None)):
        raise TypeError(
            f"{name} declares COMPOSITE but has no rank_pool method (the kind promises "
            "rank_pool(pool, rng, limit) over a sftselect.core.pool.Pool)."
        )
    if kind is EngineKind.ROW_SCORE:
        from ..selectors.score import ScoreSelector

        if not isinstance(selector, ScoreSelector):
            raise TypeError(
                f"{name} declares ROW_SCORE but is not a sftselect ScoreSelector (the kind "
                "promises score_with_rules, bounds, largest and ties)."
            )
    if kind is EngineKind.VECTORS_THEN_GLOBAL:
        missing = [m for m in ("embed", "rank_vectors") if not callable(getattr(selector, m, None))]
        if missing:
            raise TypeError(
                f"{name} declares VECTORS_THEN_GLOBAL but has no {' or '.join(missing)} method "
                "(the kind promises embed(dataset) and rank_vectors(vectors, rng, limit))."
            )
    if kind is EngineKind.DUPLICATE_GROUPS:
        missing = [m for m in DUPLICATE_METHODS if not callable(getattr(selector, m, None))]
        if missing:
            raise TypeError(
                f"{name} declares DUPLICATE_GROUPS but has no {' or '.join(missing)} method "
                "(see sftselect.selectors.dedup.grouping)."
            )
    return kind


def _count(dataset: Dataset, summary: RunSummary) -> int:
    t0 = time.perf_counter()
    n = dataset.count()
    summary.add("count", "Ray tasks", time.perf_counter() - t0, f"{n:,} rows")
    return n


def rank_on_ray(
    selector: Selector,
    kind: EngineKind,
    dataset: Dataset,
    rng: np.random.Generator,
    k: int | float | None,
    summary: RunSummary,
    *,
    workers: int | None,
    batch_size: int | None,
    num_gpus: float,
    kmeans_sample: int,
) -> tuple[RankResult, int]:
    """The ranking on Ray by the path of the declared ``kind``, and the row count."""
    if kind is EngineKind.ROW_SCORE:
        return _rank_row_scores(selector, dataset, rng, k, summary, workers, batch_size, num_gpus)
    if kind is EngineKind.DUPLICATE_GROUPS:
        pool = RayPool(
            dataset, EngineOptions(summary, workers, batch_size, num_gpus, kmeans_sample)
        )
        return rank_duplicates(
            selector,
            dataset,
            rng,
            summary,
            rank=lambda ranker: np.asarray(pool.full_ranking(ranker)[0].order, dtype=np.int64),
            column_names=pool.column_names,
            parts=max(2, int(summary.cluster.cpus)),
        )
    if kind is EngineKind.VECTORS_THEN_GLOBAL:
        n = _count(dataset, summary)
        limit = None if k is None else min(resolve_k(k, n), n)
        t0 = time.perf_counter()
        options = {"batch_size": batch_size, "workers": workers, "num_gpus": num_gpus}
        gpus = f", {num_gpus:g} GPU each" if num_gpus else ""
        actors = f"{2 if workers is None else workers} embedding actors{gpus}"
        if getattr(selector, "kmeans_allocation", False):
            result = rank_diversity(
                selector,  # type: ignore[arg-type]
                dataset,
                rng,
                limit,
                n,
                sample_size=kmeans_sample,
                **options,
            )
            summary.add(
                "embed+cluster",
                f"{actors}; K-means on the driver",
                time.perf_counter() - t0,
                f"K-means on {min(kmeans_sample, n):,} rows, every row assigned",
            )
        else:
            result = rank_by_vectors(selector, dataset, rng, limit, n, **options)
            summary.add(
                "embed+rank",
                f"{actors}; the global step on the driver",
                time.perf_counter() - t0,
                f"{n:,} vectors gathered on the driver",
            )
        return result, n
    # SEEDED_DRAW and WHOLE_DATASET: gathered on the driver, ranked by the one-process code.
    t0 = time.perf_counter()
    result, n = rank_gathered(selector, dataset, rng, k)
    columns = selector.input_columns()
    if kind is EngineKind.SEEDED_DRAW:
        named = "".join(f" and {c!r}" for c in columns or [])
        summary.add(
            "draw",
            "the driver",
            time.perf_counter() - t0,
            f"positions{named} gathered from Ray tasks, {n:,} rows; the seeded draw of one machine",
        )
    else:
        what = "every column" if columns is None else f"columns {list(columns)}"
        summary.add(
            "gather",
            "the driver",
            time.perf_counter() - t0,
            f"{n:,} rows ({what}) gathered from Ray tasks; the one-process ranking "
            "(WHOLE_DATASET: does not scale)",
        )
    return result, n


def _rank_row_scores(
    selector: Selector,
    dataset: Dataset,
    rng: np.random.Generator,
    k: int | float | None,
    summary: RunSummary,
    workers: int | None,
    batch_size: int | None,
    num_gpus: float = 0.0,
) -> tuple[RankResult, int]:
    """ROW_SCORE: scores per block on the cluster, the exact top-k merge on the driver."""
    n = None
    if isinstance(k, float):  # a fraction needs the row count first
        n = _count(dataset, summary)
    limit = None if k is None else (int(k) if n is None else min(resolve_k(k, n), n))
    scored = rank_by_score(
        selector,  # type: ignore[arg-type]
        dataset,
        rng,
        limit,
        batch_size=batch_size,
        workers=workers,
        node_id=summary.cluster.driver_node,
        num_gpus=num_gpus,
    )
    n = scored.scores.size
    if limit is not None:
        scored.order = scored.order[: min(limit, n)]
    summary.add(
        "score",
        scored.workers,
        scored.seconds_scoring,
        f"{n:,} rows in {scored.n_blocks} batches, {scored.n_candidates:,} per-batch top-k candidates",
    )
    summary.add(
        "merge",
        "the driver",
        scored.seconds_merge,
        f"exact top-k, ties {selector.ties!r}",  # type: ignore[attr-defined]
    )
    return (
        RankResult(
            order=scored.order,
            n_eligible=scored.n_eligible,
            scores=scored.scores,
            extra=scored.extra,
        ),
        n,
    )
