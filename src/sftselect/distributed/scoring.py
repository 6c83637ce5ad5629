"""Score-based selectors on Ray: scores per block, candidates per block, one merge.

Each block of the indexed dataset (see :mod:`.indexing`) goes through the
selector's own scoring code (:meth:`ScoreSelector.score_with_rules` on a
``datasets.Dataset`` of the block, exactly what the selector's ranking calls on
one machine) and the same eligibility rule (``min <= score <= max`` from
:meth:`ScoreSelector.bounds`, the selector's extra rule, NaN never eligible). A
block returns, per row, its position, score and eligibility, and whether it is
one of the block's top-k candidates (:func:`.topk.block_candidates`); the driver
merges the candidates (:func:`.topk.merge_candidates`).

This is the path of every selector that declares
:attr:`~sftselect.core.base.EngineKind.ROW_SCORE` (a score of a row from that row
alone): every :class:`~sftselect.selectors.score.ScoreSelector`, a subclass of
your own included. One declaring ``score_in_actors`` (the LLM judge, the model
scorers) is scored by a few long-lived actors instead of tasks: on the driver's
node when they share one cache file (the judge's reply cache; a model scorer's
``cache_dir``), on any node otherwise (a model scorer without a cache: one model
on each GPU of the cluster with ``num_gpus=1``).

The driver keeps one float64 score and one eligibility flag per row (9 bytes
a row), as the single-machine selector does, so the :class:`Selection` carries
every score and the provenance record's score summary is exact.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from ..core.base import EngineKind
from ..core.ranking import eligible_mask
from ..core.validation import check_choice, check_positive_int, param_error
from ..exceptions import DataFormatError
from ..selectors.score import TIE_RULES, ScoreSelector
from .indexing import ROW_COLUMN, row_positions, rows_named_in_pool
from .portable import PortableSelector
from .topk import block_candidates, merge_candidates

if TYPE_CHECKING:
    from ray.data import Dataset

__all__ = ["ScoreRun", "is_row_local", "rank_by_score"]

#: CPUs reserved by one rating actor: it waits on HTTP, so a fraction, leaving the
#: cluster's CPUs to the read tasks that feed it.
RATING_ACTOR_CPUS = 0.25

#: The label every Ray node carries with its node id (label selectors match it).
NODE_ID_LABEL = "ray.io/node-id"

#: Rows per batch for cheap scores (lengths, a column) and for LLM-judge ratings.
SCORE_BATCH_ROWS = 100_000
RATING_BATCH_ROWS = 256


def is_row_local(selector: Any) -> bool:
    """Whether the selector declares that its score of a row depends on that row alone."""
    return getattr(selector, "engine_kind", None) is EngineKind.ROW_SCORE


@dataclass
class ScoreRun:
    """What the scoring stage gave the driver."""

    order: np.ndarray
    scores: np.ndarray
    n_eligible: int
    extra: dict[str, Any]
    n_blocks: int
    n_candidates: int
    seconds_scoring: float
    seconds_merge: float
    workers: str
    stage_notes: list[str] = field(default_factory=list)


# -- on the workers ---------------------------------------------------------------


def score_block(
    selector: ScoreSelector,
    table: pa.Table,
    *,
    lo: float | None,
    hi: float | None,
    limit: int | None,
) -> pa.Table:
    """Score one block: position, score, eligibility, candidacy, and diagnostics."""
    from datasets import Dataset

    rows = row_positions(table)
    data = Dataset(table.drop_columns([ROW_COLUMN]))
    with rows_named_in_pool(rows):
        scored = selector.score_with_rules(data)
    scores = np.asarray(scored.scores, dtype=np.float64)
    mask = eligible_mask(scores, lo, hi)
    extra: dict[str, Any] = dict(scored.extra)
    if scored.eligible is not None:
        extra["n_excluded_by_rule"] = int(np.count_nonzero(mask & ~scored.eligible))
        mask &= scored.eligible
    extra["n_unscorable"] = int(np.count_nonzero(np.isnan(scores)))
    candidate = np.zeros(rows.size, dtype=bool)
    candidate[block_candidates(scores, mask, largest=selector.largest, limit=limit)] = True
    notes = [None] * rows.size
    if rows.size:
        notes[0] = json.dumps(extra, default=str)
    return pa.table(
        {
            ROW_COLUMN: pa.array(rows, pa.int64()),
            "score": pa.array(scores, pa.float64()),
            "eligible": pa.array(mask),
            "candidate": pa.array(candidate),
            "diagnostics": pa.array(notes, pa.string()),
        }
    )


def _score_batch(
    table: pa.Table,
    *,
    spec: PortableSelector,
    lo: float | None,
    hi: float | None,
    limit: int | None,
) -> pa.Table:
    return score_block(spec.build(), table, lo=lo, hi=hi, limit=limit)  # type: ignore[arg-type]


class ScoringActor:
    """One Ray actor: the selector (and its judge, HTTP clients, cache) built once."""

    def __init__(
        self, spec: PortableSelector, lo: float | None, hi: float | None, limit: int | None
    ) -> None:
        self.selector = spec.build()
        self.lo, self.hi, self.limit = lo, hi, limit

    def __call__(self, table: pa.Table) -> pa.Table:
        return score_block(self.selector, table, lo=self.lo, hi=self.hi, limit=self.limit)  # type: ignore[arg-type]


# -- on the driver ----------------------------------------------------------------


def merge_diagnostics(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-block diagnostics combined: counts summed, lists joined (first five), labels kept."""
    out: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if key not in out:
                out[key] = value
                continue
            have = out[key]
            if isinstance(have, dict) and isinstance(value, dict):
                out[key] = merge_diagnostics([have, value])
            elif have is None or value is None:
                out[key] = (
                    None if (have is None and value is None) else (have if value is None else value)
                )
            elif isinstance(have, bool) or isinstance(value, bool):
                out[key] = have
            elif isinstance(have, (int, float)) and isinstance(value, (int, float)):
                out[key] = have + value
            elif isinstance(have, list) and isinstance(value, list):
                out[key] = (have + value)[:5]
    return out


def _on_node(node_id: str) -> dict[str, Any]:
    """The ``map_batches`` option that keeps every worker on node ``node_id``.

    Where ``map_batches`` has a ``label_selector`` parameter (Ray 2.60 does, and
    warns that ``ray_remote_args`` such as ``scheduling_strategy`` go in Ray
    2.64), a selector on the node's ``ray.io/node-id`` label; on an older Ray,
    a hard node-affinity ``scheduling_strategy``."""
    import inspect

    from ray.data import Dataset

    if "label_selector" in inspect.signature(Dataset.map_batches).parameters:
        return {"label_selector": {NODE_ID_LABEL: node_id}}
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)}


def writes_a_cache_file(selector: Any) -> bool:
    """Whether the selector, or an engine among its parameters (a ``LogProbScorer``, a
    DEITA or reward engine), was given a ``cache_dir``: its scoring actors then write one
    SQLite file, and stay on the driver's node, where that file is."""
    if getattr(selector, "cache_dir", None) is not None:
        return True
    params = selector.get_params(deep=False) if hasattr(selector, "get_params") else {}
    return any(getattr(value, "cache_dir", None) is not None for value in params.values())


def pinned_to_driver(selector: Any) -> bool:
    """Whether the scoring actors must run on the driver's node: an LLM judge always (its
    reply cache is one file, and it waits on HTTP, not on a device); a model scorer
    (``scores_on_device``) only when it writes a cache file, so without one its actors,
    one model on each GPU, spread over every node's GPUs."""
    if not getattr(selector, "scores_on_device", False):
        return True
    return writes_a_cache_file(selector)


def actor_gpus(selector: Any, num_gpus: float) -> dict[str, Any]:
    """``{"num_gpus": num_gpus}`` for the scoring actors of a selector that declares
    ``scores_on_device`` (its model runs where its actor is), else ``{}``."""
    if not num_gpus or not getattr(selector, "scores_on_device", False):
        return {}
    if isinstance(num_gpus, bool) or not isinstance(num_gpus, (int, float)) or num_gpus < 0:
        raise param_error("sftselect.distributed.run", "num_gpus", "a number >= 0", num_gpus)
    return {"num_gpus": float(num_gpus)}


def rank_by_score(
    selector: ScoreSelector,
    dataset: Dataset,
    rng: np.random.Generator,
    limit: int | None,
    *,
    batch_size: int | None,
    workers: int | None,
    node_id: str,
    num_gpus: float = 0.0,
) -> ScoreRun:
    """Score every row on the cluster and rank the eligible rows, best first.

    ``num_gpus``: GPUs per scoring actor, for a selector that declares
    ``scores_on_device`` (a model scorer: one model per GPU with 1); others get none.
    """
    owner = type(selector).__name__
    check_choice(selector.ties, "ties", owner, TIE_RULES)
    if not isinstance(selector.largest, bool):
        raise param_error(owner, "largest", "a bool", selector.largest)
    lo, hi = selector.bounds()
    selector.check_portable()
    in_actors = bool(selector.score_in_actors)
    overrides: dict[str, Any] = {"show_progress": False}
    if hasattr(selector, "num_proc"):
        overrides["num_proc"] = 1  # one process per Ray task; Ray provides the parallelism
    spec = PortableSelector.of(selector, overrides)
    if batch_size is None:
        batch_size = RATING_BATCH_ROWS if in_actors else SCORE_BATCH_ROWS
    batch_size = check_positive_int(batch_size, "batch_size", "sftselect.distributed.run")
    t0 = time.perf_counter()
    from ray.data import ActorPoolStrategy, TaskPoolStrategy

    if in_actors:
        n_workers = 2 if workers is None else check_positive_int(workers, "workers", owner)
        gpus = actor_gpus(selector, num_gpus)
        pinned = pinned_to_driver(selector)
        scored = dataset.map_batches(
            ScoringActor,
            fn_constructor_args=(spec, lo, hi, limit),
            batch_size=batch_size,
            batch_format="pyarrow",
            compute=ActorPoolStrategy(size=n_workers),
            num_cpus=RATING_ACTOR_CPUS,
            **gpus,
            **(_on_node(node_id) if pinned else {}),
        )
        in_flight = getattr(selector, "max_concurrency", None)
        each = "" if in_flight is None else f", at most {in_flight} requests in flight each"
        if gpus:
            each += f", {gpus['num_gpus']:g} GPU each"
        if pinned:
            where = f"{n_workers} scoring actors on the driver's node (one shared cache file{each})"
        else:
            where = f"{n_workers} scoring actors on any node (no cache file{each})"
    else:
        scored = dataset.map_batches(
            _score_batch,
            fn_kwargs={"spec": spec, "lo": lo, "hi": hi, "limit": limit},
            batch_size=batch_size,
            batch_format="pyarrow",
            compute=TaskPoolStrategy(size=workers),
        )
        where = "Ray tasks on every node" if workers is None else f"at most {workers} Ray tasks"
    rows_parts, score_parts, elig_parts, cand_parts, notes = [], [], [], [], []
    n_blocks = 0
    for block in scored.iter_batches(batch_size=None, batch_format="pyarrow"):
        rows = block.column(ROW_COLUMN).to_numpy()
        rows_parts.append(rows)
        score_parts.append(block.column("score").to_numpy())
        elig_parts.append(block.column("eligible").to_numpy(zero_copy_only=False))
        cand_parts.append(rows[block.column("candidate").to_numpy(zero_copy_only=False)])
        batch_notes = [json.loads(s) for s in block.column("diagnostics").drop_null().to_pylist()]
        n_blocks += len(batch_notes)  # one note per scored batch
        notes.extend(batch_notes)
    seconds_scoring = time.perf_counter() - t0
    t1 = time.perf_counter()
    rows = np.concatenate(rows_parts) if rows_parts else np.zeros(0, np.int64)
    n = rows.size
    check_positions(rows)
    scores = np.empty(n, dtype=np.float64)
    eligible = np.empty(n, dtype=bool)
    if n:
        scores[rows] = np.concatenate(score_parts)
        eligible[rows] = np.concatenate(elig_parts)
    candidates = np.sort(np.concatenate(cand_parts)) if cand_parts else np.zeros(0, np.int64)
    order = merge_candidates(
        candidates,
        scores[candidates],
        largest=selector.largest,
        ties=selector.ties,
        limit=limit,
        eligible=eligible,
        rng=rng,
    )
    extra = merge_diagnostics(notes)
    extra.setdefault("n_unscorable", int(np.count_nonzero(np.isnan(scores))))
    return ScoreRun(
        order=order,
        scores=scores,
        n_eligible=int(np.count_nonzero(eligible)),
        extra=extra,
        n_blocks=n_blocks,
        n_candidates=int(candidates.size),
        seconds_scoring=seconds_scoring,
        seconds_merge=time.perf_counter() - t1,
        workers=where,
    )


def check_positions(rows: np.ndarray) -> None:
    """Raise unless ``rows`` holds each of 0..n-1 exactly once (in any order)."""
    n = rows.size
    if n == 0:
        return
    seen = np.bincount(rows[(rows >= 0) & (rows < n)], minlength=n) if rows.min() >= 0 else None
    if seen is None or rows.max() >= n or (seen != 1).any():
        raise DataFormatError(
            f"The {ROW_COLUMN!r} column must hold each position 0..{n - 1} exactly once; "
            "build the Ray Dataset with sftselect.distributed.read, read_parquet, read_jsonl, "
            "from_huggingface or with_row_index."
        )
