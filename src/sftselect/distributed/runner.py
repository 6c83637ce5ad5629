"""``run(selector, dataset)``: the same selector objects, on a Ray cluster.

The driver resolves ``k`` and the seed exactly as :meth:`Selector.run` does
(:meth:`~sftselect.core.base.Selector.check_k`,
:meth:`~sftselect.core.base.Selector.resolve_seed`), hands the per-row work to Ray
Data, keeps the decisions that need the whole pool (the merge of per-block
candidates, the random draw, the allocation among clusters, a global step) on
the driver, and returns the single-machine
:class:`~sftselect.core.base.Selection` record
(:meth:`~sftselect.core.base.Selector.build_selection`) inside a
:class:`.DistributedSelection`.

The path is chosen by what the selector declares
(:attr:`~sftselect.core.base.Selector.engine_kind`), never by its class, so a
selector of your own runs here when its declaration holds:

* ``ROW_SCORE`` -- scores per block in Ray tasks (or actors), one merge of the
  blocks' top-k candidates (:mod:`.scoring`);
* ``VECTORS_THEN_GLOBAL`` -- vectors per block in an actor pool, the global step
  on the driver; K-means on a sample for a selector declaring
  ``kmeans_allocation`` (:mod:`.diversity`);
* ``SEEDED_DRAW`` -- the positions and the columns the selector names gathered
  on the driver, the one-process draw (:mod:`.sampling`);
* ``WHOLE_DATASET`` -- the rows gathered on the driver, the one-process ranking:
  the single-machine answer, without scaling (:mod:`.sampling`);
* ``COMPOSITE`` -- refused for now, naming the kinds that run.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.base import EngineKind, RankResult, Selector
from ..core.validation import resolve_k
from ..exceptions import SftSelectError
from .diversity import KMEANS_SAMPLE_ROWS, rank_by_vectors, rank_diversity
from .engine import cluster_info, connect, own_context, require_ray
from .indexing import ROW_COLUMN, RowIndexMissingError, from_huggingface, with_row_index
from .sampling import rank_gathered
from .scoring import rank_by_score
from .selection import DistributedSelection
from .summary import RunSummary

if TYPE_CHECKING:
    from ray.data import Dataset

__all__ = ["KINDS", "SUPPORTED", "run"]

#: The library's selectors whose work Ray spreads over the cluster (by their declared
#: kind; any selector declaring the same kind runs the same way, subclasses included).
SUPPORTED = (
    "LengthSelector",
    "ColumnScoreSelector",
    "QualitySelector",
    "RandomSelector",
    "DiversitySelector",
)

#: What this engine does for each declared :class:`~sftselect.core.base.EngineKind`.
KINDS: dict[EngineKind, str] = {
    EngineKind.ROW_SCORE: "scores per block on the cluster, one exact top-k merge",
    EngineKind.VECTORS_THEN_GLOBAL: "vectors per block on an actor pool, the global step "
    "on the driver",
    EngineKind.SEEDED_DRAW: "positions and the named columns gathered, the seeded draw on "
    "the driver",
    EngineKind.WHOLE_DATASET: "every row gathered on the driver, the one-process ranking "
    "(does not scale)",
}


def _indexed(dataset: Dataset, summary: RunSummary, show_progress: bool) -> Dataset:
    t0 = time.perf_counter()
    indexed = own_context(with_row_index(dataset), show_progress=show_progress)
    summary.add("index", "Ray tasks", time.perf_counter() - t0, "positions in preserve_order order")
    return indexed


def _unwrap(exc: BaseException) -> BaseException | None:
    """The sftselect error a Ray task raised, if that is what ``exc`` carries."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, SftSelectError) and type(current).__module__.startswith("sftselect"):
            return current
        cause = getattr(current, "cause", None)
        if isinstance(cause, SftSelectError):
            return cause
        current = current.__cause__ or current.__context__
    return None


def run(
    selector: Selector,
    dataset: Any,
    *,
    workers: int | None = None,
    batch_size: int | None = None,
    num_blocks: int | None = None,
    num_gpus: float = 0.0,
    kmeans_sample: int = KMEANS_SAMPLE_ROWS,
    show_progress: bool = False,
) -> DistributedSelection:
    """Run ``selector`` on a Ray Dataset and return the selection made on one machine.

    Parameters
    ----------
    selector : Selector
        Any selector, as built for one machine; its declared
        :attr:`~sftselect.core.base.Selector.engine_kind` picks the path (see the
        module doc). Composites (``COMPOSITE``) are refused.
    dataset : ray.data.Dataset or datasets.Dataset
        The pool. A Ray Dataset from :func:`read`, :func:`read_parquet`,
        :func:`read_jsonl` or :func:`from_huggingface` carries each row's
        position; any other is indexed by :func:`with_row_index`. A
        ``datasets.Dataset`` is cut into ``num_blocks`` blocks.
    workers : int or None
        Concurrent Ray workers: tasks for lengths and columns (None: as many
        as Ray schedules), actors for ratings and embeddings (None: 2).
    batch_size : int or None
        Rows per batch (None: 100,000 for lengths and columns, 256 for
        ratings, 1,024 for embeddings).
    num_blocks : int or None
        Blocks for a ``datasets.Dataset`` (None: four per CPU).
    num_gpus : float
        GPUs per embedding actor (``VECTORS_THEN_GLOBAL`` selectors such as
        ``DiversitySelector``; 1 puts one model on each GPU).
    kmeans_sample : int
        Rows K-means is fitted on (a selector declaring ``kmeans_allocation``,
        such as ``DiversitySelector``); every row is then assigned to its
        nearest centroid.
    show_progress : bool
        Ray Data's progress bars, and one line per stage on stderr.

    Returns
    -------
    DistributedSelection
        ``.indices``, ``.ranked``, ``.scores``, ``.provenance()``,
        ``.write(path)`` and ``.summary`` (what ran where).
    """
    ray = require_ray()
    from datasets import Dataset as HFDataset
    from ray.data import Dataset as RayDataset

    if not isinstance(selector, Selector):
        raise TypeError(f"run takes a sftselect Selector; got {type(selector).__name__}.")
    if not isinstance(dataset, (RayDataset, HFDataset)):
        raise TypeError(
            f"run takes a ray.data.Dataset or a datasets.Dataset; got {type(dataset).__name__}."
        )
    connect()
    summary = RunSummary(cluster_info(), echo=bool(show_progress))
    fingerprint = None
    if isinstance(dataset, HFDataset):
        t0 = time.perf_counter()
        fingerprint = getattr(dataset, "_fingerprint", None)
        dataset = from_huggingface(dataset, num_blocks=num_blocks)
        summary.add(
            "load", "the driver", time.perf_counter() - t0, "datasets.Dataset cut into blocks"
        )
    indexed = own_context(dataset, show_progress=show_progress)
    # The schema of a lazy dataset is known only once it runs: index it now only
    # when it is known to lack positions, else when its first block says so.
    columns = indexed.columns(fetch_if_missing=False)
    if columns is not None and ROW_COLUMN not in columns:
        indexed = _indexed(indexed, summary, show_progress)
    k = selector.check_k()
    kind = _kind(selector)
    for attempt in (0, 1):
        rng, seed = selector.resolve_seed()
        try:
            result, n = _rank(
                selector,
                kind,
                indexed,
                rng,
                k,
                summary,
                workers=workers,
                batch_size=batch_size,
                num_gpus=num_gpus,
                kmeans_sample=kmeans_sample,
            )
        except Exception as exc:
            inner = _unwrap(exc)
            if isinstance(inner, RowIndexMissingError) and attempt == 0:
                indexed = _indexed(indexed, summary, show_progress)
                continue
            if inner is None or inner is exc:
                raise
            raise type(inner)(*inner.args) from None
        break
    selection = selector.build_selection(
        result,
        n=n,
        k=k,
        seed=seed,
        fingerprint=fingerprint,
        dataset=None,  # the rows stay on the cluster
        stacklevel=3,
    )
    del ray
    return DistributedSelection(selection=selection, dataset=indexed, summary=summary)


def _kind(selector: Selector) -> EngineKind:
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
            f"{name} cannot run on Ray: it declares {kind.name} (it combines other "
            f"selectors), which this engine does not run yet; run its operands one by one. "
            f"Library selectors that run: {', '.join(SUPPORTED)} and any selector declaring "
            f"{', '.join(k.name for k in KINDS)}."
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
    return kind


def _count(dataset: Dataset, summary: RunSummary) -> int:
    t0 = time.perf_counter()
    n = dataset.count()
    summary.add("count", "Ray tasks", time.perf_counter() - t0, f"{n:,} rows")
    return n


def _rank(
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
        return _rank_row_scores(selector, dataset, rng, k, summary, workers, batch_size)
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
