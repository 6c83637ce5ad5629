"""``run(selector, dataset)``: the same selector objects, on a Ray cluster.

The driver resolves ``k`` and the seed exactly as :meth:`Selector.run` does,
hands the per-row work to Ray Data (:mod:`.scoring`, :mod:`.diversity`), keeps
the decisions that need the whole pool (the merge of per-block candidates, the
random draw, the allocation among clusters) on the driver, and returns the
single-machine :class:`~sftselect.core.base.Selection` record inside a
:class:`.DistributedSelection`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.base import RankResult, Selector
from ..core.validation import resolve_k
from ..exceptions import SftSelectError
from .diversity import KMEANS_SAMPLE_ROWS, rank_diversity
from .engine import cluster_info, connect, own_context, require_ray
from .indexing import ROW_COLUMN, RowIndexMissingError, from_huggingface, with_row_index
from .sampling import rank_random
from .scoring import is_row_local, rank_by_score
from .selection import DistributedSelection
from .summary import RunSummary

if TYPE_CHECKING:
    from ray.data import Dataset

__all__ = ["SUPPORTED", "run"]

#: The selectors that run on Ray (and their subclasses).
SUPPORTED = (
    "LengthSelector",
    "ColumnScoreSelector",
    "QualitySelector",
    "RandomSelector",
    "DiversitySelector",
)


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
        A :class:`LengthSelector`, :class:`ColumnScoreSelector`,
        :class:`QualitySelector`, :class:`RandomSelector` or
        :class:`DiversitySelector`, as built for one machine.
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
        GPUs per embedding actor (``DiversitySelector``; 1 puts one model on
        each GPU).
    kmeans_sample : int
        Rows K-means is fitted on (``DiversitySelector``); every row is then
        assigned to its nearest centroid.
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
    k = selector._check_k()
    for attempt in (0, 1):
        rng, seed = selector._resolve_seed()
        try:
            result, n = _rank(
                selector,
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
    selection = selector._selection(
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


def _rank(
    selector: Selector,
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
    from ..selectors.diversity import DiversitySelector
    from ..selectors.random import RandomSelector

    name = type(selector).__name__
    if is_row_local(selector):
        n = None
        if isinstance(k, float):  # a fraction needs the row count first
            t0 = time.perf_counter()
            n = dataset.count()
            summary.add("count", "Ray tasks", time.perf_counter() - t0, f"{n:,} rows")
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
    if isinstance(selector, RandomSelector):
        t0 = time.perf_counter()
        result, n = rank_random(selector, dataset, rng, None)
        column = "" if selector.stratify is None else f" and {selector.stratify!r}"
        summary.add(
            "draw",
            "the driver",
            time.perf_counter() - t0,
            f"positions{column} gathered from Ray tasks, {n:,} rows; the seeded draw of one machine",
        )
        return result, n
    if isinstance(selector, DiversitySelector):
        t0 = time.perf_counter()
        n = dataset.count()
        summary.add("count", "Ray tasks", time.perf_counter() - t0, f"{n:,} rows")
        limit = None if k is None else min(resolve_k(k, n), n)
        t0 = time.perf_counter()
        result = rank_diversity(
            selector,
            dataset,
            rng,
            limit,
            n,
            sample_size=kmeans_sample,
            batch_size=batch_size,
            workers=workers,
            num_gpus=num_gpus,
        )
        gpus = f", {num_gpus:g} GPU each" if num_gpus else ""
        summary.add(
            "embed+cluster",
            f"{2 if workers is None else workers} embedding actors{gpus}; K-means on the driver",
            time.perf_counter() - t0,
            f"K-means on {min(kmeans_sample, n):,} rows, every row assigned",
        )
        return result, n
    raise TypeError(
        f"{name} cannot run on Ray: its ranking is not built from per-row work. "
        f"Supported: {', '.join(SUPPORTED)} (and their subclasses)."
    )
