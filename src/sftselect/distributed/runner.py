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
* ``COMPOSITE`` -- the composite's own ``rank_pool`` on the driver over a
  :class:`.dispatch.RayPool`; each operand it runs takes its own path above, on
  the pool's rows or a subset filtered on the cluster (:mod:`.dispatch`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..core.base import Selector
from ..exceptions import SftSelectError
from .dispatch import KINDS, SUPPORTED, EngineOptions, RayPool, engine_kind_of
from .diversity import KMEANS_SAMPLE_ROWS
from .engine import cluster_info, connect, own_context, require_ray
from .indexing import ROW_COLUMN, RowIndexMissingError, from_huggingface, with_row_index
from .selection import DistributedSelection
from .summary import RunSummary

if TYPE_CHECKING:
    from ray.data import Dataset

__all__ = ["KINDS", "SUPPORTED", "run"]


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


def _without_ray_retry_note(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """An error's arguments without the retry note Ray Data appends to a failed
    task's message ("\\nFailed to apply UDF transform after 1/1 attempts ...")."""
    if args and isinstance(args[0], str):
        return (args[0].split("\nFailed to ", 1)[0], *args[1:])
    return args


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
        module doc); a composite's operands each take their own.
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
        GPUs per model actor (1 puts one model on each GPU): the embedding actors
        (``VECTORS_THEN_GLOBAL`` selectors such as ``DiversitySelector``) and the
        scoring actors of a selector that declares ``scores_on_device`` (IFD,
        Superfiltering, perplexity, DEITA, reward); an LLM judge's actors get none.
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
    engine_kind_of(selector)  # refuse what this engine cannot run before any work
    options = EngineOptions(summary, workers, batch_size, num_gpus, kmeans_sample)
    for attempt in (0, 1):
        try:
            selection = RayPool(indexed, options).run(
                selector, fingerprint=fingerprint, stacklevel=4
            )
        except Exception as exc:
            inner = _unwrap(exc)
            if isinstance(inner, RowIndexMissingError) and attempt == 0:
                indexed = _indexed(indexed, summary, show_progress)
                continue
            if inner is None or inner is exc:
                raise
            raise type(inner)(*_without_ray_retry_note(inner.args)) from None
        break
    del ray
    return DistributedSelection(selection=selection, dataset=indexed, summary=summary)
