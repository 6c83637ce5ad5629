"""``DUPLICATE_GROUPS`` selectors on Ray: keys per block, groups by key on the cluster,
pairs verified where their rows meet, union-find on the driver.

The path of :class:`~sftselect.selectors.dedup.ExactDedup`,
:class:`~sftselect.selectors.dedup.MinHashDedup` and any selector declaring
:attr:`~sftselect.core.kinds.EngineKind.DUPLICATE_GROUPS` (the steps are in
:mod:`sftselect.selectors.dedup.grouping`):

1. The dataset's blocks stay in the cluster's object store
   (``to_arrow_refs``); a Ray task per block computes its keys with the
   selector's own ``duplicate_keys`` (exact: the normalised text and its hash;
   MinHash: the signature, its hash and the LSH band keys, with the selector's
   shingling, seeds, bands and rows).
2. Rows are grouped by identity ON THE CLUSTER: a hash shuffle of Ray tasks
   (each map task splits its rows into ``P`` partitions by ``hash % P``; one
   reduce task per partition) sends every row of one identity to one
   partition, where
   :func:`~sftselect.selectors.dedup.grouping.identity_classes` compares the
   identities exactly (equal strings or signature bytes, not equal hashes).
3. The heads of the classes are exploded into ``(band, key, row)`` records and
   shuffled the same way on ``(band, key)``; each partition holds whole buckets
   and emits their pairs with
   :func:`~sftselect.selectors.dedup.grouping.bucket_pairs` (the one-machine
   rule, the cap on large buckets included). The driver receives the pairs
   and makes them distinct.
4. A measure of pairs (verification against the true shingle Jaccard, the
   similarity of each removed row to its kept row) runs on the cluster
   (:class:`RayMeasure`): each pair is given a partition; a task per block
   computes ``pair_values`` (the shingle sets) of its rows that some pair
   needs, once per partition that needs them; a reduce task per partition
   computes ``pair_measure``. Only one float per pair comes back; no text or
   shingle reaches the driver.
5. The keep policy ranks on the cluster by its own kind (a
   :class:`~sftselect.distributed.dispatch.RayPool`, as a composite's operand),
   and the selector's ``resolve_duplicates`` -- the one-machine code -- joins the
   verified pairs (union-find) and keeps one row of each group.

The shuffles are plain Ray tasks rather than Ray Data's ``groupby`` /
``map_groups``: on the 2-CPU test machine the latter took about 10 s of
scheduling per shuffle (hash-shuffle aggregators), and a MinHash run makes up
to five shuffles; the tasks take milliseconds to start.

Why a shuffle on the key rather than per-block partial buckets merged on the
driver: a block's partial buckets are almost all single rows (a duplicate is
rarely in its original's block), so merging them by key on the driver would
ship every row's keys there (``bands`` keys a row: 160 bytes at 20 bands) and
group them in one process, which is the scaling problem this path removes. The
shuffle leaves every key on the cluster; what reaches the driver is the pairs,
the rows that share an identity with another row, and one priority and one
label per row (a few numbers a row, as the union-find needs). Since classes,
buckets and pairs are sets, the partitioning cannot change the result: the
groups, kept rows and removed-rows table are those of one machine for any
number of blocks, partitions or workers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from ..core.base import RankResult, Selector
from ..selectors.dedup.grouping import (
    DuplicateCandidates,
    bucket_matrix,
    bucket_pairs,
    identity_classes,
    unique_pairs,
)
from .indexing import ROW_COLUMN, row_positions
from .portable import PortableSelector
from .summary import RunSummary

if TYPE_CHECKING:
    from ray.data import Dataset

__all__ = ["DUPLICATE_METHODS", "RayMeasure", "rank_duplicates"]

#: What a ``DUPLICATE_GROUPS`` selector promises (:class:`~sftselect.core.kinds.EngineKind`).
DUPLICATE_METHODS = (
    "duplicate_keys",
    "pair_values",
    "pair_measure",
    "keep_priority",
    "resolve_duplicates",
)

_PART = "__sftselect_part"
_MIX = np.uint64(0x9E3779B97F4A7C15)


def _part_of(hashes: np.ndarray, parts: int) -> np.ndarray:
    return (np.asarray(hashes, dtype=np.uint64) % np.uint64(parts)).astype(np.int64)


# -- on the workers ---------------------------------------------------------------


def _keys_block(table: pa.Table, *, spec: PortableSelector, parts: int) -> pa.Table:
    from datasets import Dataset as HFDataset

    rows = row_positions(table)
    keys = spec.build().duplicate_keys(HFDataset(table.drop_columns([ROW_COLUMN])))  # type: ignore[attr-defined]
    hashes = keys.column("identity_hash").to_numpy()
    keys = keys.append_column(ROW_COLUMN, pa.array(rows, pa.int64()))
    return keys.append_column(_PART, pa.array(_part_of(hashes, parts)))


def _classes_group(table: pa.Table) -> pa.Table:
    """One partition of rows, whole identity classes: each row's head (itself if none)."""
    rows = table.column(ROW_COLUMN).to_numpy()
    active = table.column("active").to_numpy(zero_copy_only=False).astype(bool)
    members, heads = identity_classes(
        rows[active], table.column("identity").filter(pa.array(active))
    )
    head = rows.copy()
    order = np.argsort(rows)
    head[order[np.searchsorted(rows[order], members)]] = heads
    out = {ROW_COLUMN: pa.array(rows, pa.int64()), "head": pa.array(head), "active": active}
    if "buckets" in table.column_names:
        out["buckets"] = table.column("buckets")
    return pa.table(out)


def _not_plain(table: pa.Table) -> pa.Table:
    """The rows that are not their own active head: class members and inactive rows."""
    rows = table.column(ROW_COLUMN).to_numpy()
    head = table.column("head").to_numpy()
    active = table.column("active").to_numpy(zero_copy_only=False).astype(bool)
    keep = (rows != head) | ~active
    return table.select([ROW_COLUMN, "head", "active"]).filter(pa.array(keep))


def _explode_heads(table: pa.Table, *, parts: int) -> pa.Table:
    """``(band, key, row)`` for every band of every class head, with its partition."""
    rows = table.column(ROW_COLUMN).to_numpy()
    head = table.column("head").to_numpy()
    active = table.column("active").to_numpy(zero_copy_only=False).astype(bool)
    is_head = active & (rows == head)
    keys = bucket_matrix(table.select(["buckets"]))[is_head]
    width = keys.shape[1]
    bands = np.tile(np.arange(width, dtype=np.uint64), keys.shape[0])
    flat = keys.ravel()
    return pa.table(
        {
            _PART: pa.array(_part_of(flat ^ (bands * _MIX), parts)),
            "band": pa.array(bands.astype(np.int64)),
            "key": pa.array(flat, pa.uint64()),
            ROW_COLUMN: pa.array(np.repeat(rows[is_head], width), pa.int64()),
        }
    )


def _bucket_group(table: pa.Table) -> pa.Table:
    """One partition of ``(band, key, row)`` records, whole buckets: their pairs."""
    pairs = unique_pairs(
        bucket_pairs(
            table.column("band").to_numpy(),
            table.column("key").to_numpy(),
            table.column(ROW_COLUMN).to_numpy(),
        )
    )
    return pa.table(
        {"a": pa.array(pairs[:, 0], pa.int64()), "b": pa.array(pairs[:, 1], pa.int64())}
    )


def _values_block(table: pa.Table, *, spec: PortableSelector, need: Any) -> pa.Table:
    """The ``pair_values`` of this block's rows that a pair needs, once per partition."""
    import ray
    from datasets import Dataset as HFDataset

    need_rows, need_parts = ray.get(need) if isinstance(need, ray.ObjectRef) else need
    rows = row_positions(table)
    wanted = np.isin(rows, need_rows)
    subset = table.filter(pa.array(wanted)).drop_columns([ROW_COLUMN])
    values = spec.build().pair_values(HFDataset(subset))  # type: ignore[attr-defined]
    rows = rows[wanted]
    lo = np.searchsorted(need_rows, rows, side="left")
    hi = np.searchsorted(need_rows, rows, side="right")
    counts = hi - lo
    which = np.repeat(np.arange(rows.size), counts)
    at = np.repeat(lo - np.cumsum(counts) + counts, counts) + np.arange(which.size)
    return pa.table(
        {
            _PART: pa.array(need_parts[at], pa.int64()),
            ROW_COLUMN: pa.array(rows[which], pa.int64()),
            "values": values.take(pa.array(which, pa.int64())),
        }
    )


def _measure_group(table: pa.Table, *, spec: PortableSelector, pairs: Any) -> pa.Table:
    """One partition: the measure of its pairs, from the values of their rows."""
    import ray

    a, b, part = ray.get(pairs) if isinstance(pairs, ray.ObjectRef) else pairs
    if table.num_rows == 0:
        return pa.table({"pair": pa.array([], pa.int64()), "value": pa.array([], pa.float64())})
    here = int(table.column(_PART)[0].as_py())
    mine = np.flatnonzero(part == here)
    rows = table.column(ROW_COLUMN).to_numpy()
    order = np.argsort(rows)
    ia = order[np.searchsorted(rows[order], a[mine])]
    ib = order[np.searchsorted(rows[order], b[mine])]
    values = table.column("values").combine_chunks()
    measured = spec.build().pair_measure(values, ia, ib)  # type: ignore[attr-defined]
    return pa.table({"pair": pa.array(mine, pa.int64()), "value": pa.array(measured, pa.float64())})


# -- the shuffle: Ray tasks, P outputs per map task, one reduce task per partition ------


def _split(table: pa.Table, parts: int) -> list[pa.Table]:
    part = table.column(_PART).to_numpy()
    order = np.argsort(part, kind="stable")
    bounds = np.searchsorted(part[order], np.arange(parts + 1))
    body = table.take(pa.array(order, pa.int64()))
    return [body.slice(int(bounds[q]), int(bounds[q + 1] - bounds[q])) for q in range(parts)]


def _map_task(fn: Callable[..., pa.Table], block: pa.Table, parts: int, kwargs: dict) -> Any:
    pieces = _split(fn(block, **kwargs), parts)
    return pieces[0] if parts == 1 else tuple(pieces)


def _reduce_task(fn: Callable[..., pa.Table], kwargs: dict, *pieces: pa.Table) -> pa.Table:
    return fn(pa.concat_tables(pieces, promote_options="default"), **kwargs)


def _counted(fn: Callable[..., pa.Table], table: pa.Table, kwargs: dict) -> tuple[int, pa.Table]:
    return table.num_rows, fn(table, **kwargs)


def _shuffle(
    blocks: list[Any],
    map_fn: Callable[..., pa.Table],
    reduce_fn: Callable[..., pa.Table],
    parts: int,
    map_kwargs: dict | None = None,
    reduce_kwargs: dict | None = None,
) -> list[Any]:
    """Hash-partition the rows ``map_fn`` makes of each block (its ``_PART`` column) and
    run ``reduce_fn`` on each partition, every step a Ray task; the reduce outputs' refs."""
    import ray

    mapper = ray.remote(num_returns=parts)(_map_task)
    reducer = ray.remote(_reduce_task)
    mapped = [mapper.remote(map_fn, b, parts, map_kwargs or {}) for b in blocks]
    if parts == 1:
        mapped = [[m] for m in mapped]
    return [
        reducer.remote(reduce_fn, reduce_kwargs or {}, *[m[q] for m in mapped])
        for q in range(parts)
    ]


def _on_each(
    refs: list[Any], fn: Callable[..., pa.Table], **kwargs: Any
) -> list[tuple[int, pa.Table]]:
    """``fn`` on each table of ``refs`` in Ray tasks: ``(rows in, table out)`` of each."""
    import ray

    task = ray.remote(_counted)
    return ray.get([task.remote(fn, r, kwargs) for r in refs])


def _gathered(tables: list[pa.Table], columns: list[str]) -> dict[str, np.ndarray]:
    return {
        c: np.concatenate([t.column(c).to_numpy(zero_copy_only=False) for t in tables])
        if tables
        else np.zeros(0, dtype=np.int64)
        for c in columns
    }


# -- on the driver ----------------------------------------------------------------


class RayMeasure:
    """``measure(a, b)``: the selector's ``pair_measure`` of pairs of positions, on the cluster."""

    def __init__(
        self, blocks: list[Any], spec: PortableSelector, parts: int, summary: RunSummary
    ) -> None:
        self.blocks, self.spec, self.parts, self.summary = blocks, spec, parts, summary
        self.calls = 0
        self.seconds = 0.0

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        import ray

        a = np.asarray(a, dtype=np.int64)
        b = np.asarray(b, dtype=np.int64)
        out = np.full(a.size, np.nan)
        if a.size == 0:
            return out
        t0 = time.perf_counter()
        part = _part_of(a.astype(np.uint64) * _MIX, self.parts)
        need = np.unique(np.concatenate([a * self.parts + part, b * self.parts + part]))
        need_ref = ray.put((need // self.parts, need % self.parts))
        pairs_ref = ray.put((a, b, part))
        reduced = _shuffle(
            self.blocks,
            _values_block,
            _measure_group,
            self.parts,
            {"spec": self.spec, "need": need_ref},
            {"spec": self.spec, "pairs": pairs_ref},
        )
        got = _gathered(ray.get(reduced), ["pair", "value"])
        out[got["pair"]] = got["value"]
        missing = int(np.count_nonzero(np.isnan(out)))
        if missing:
            raise RuntimeError(f"{missing} of {a.size} pairs were not measured on the cluster")
        self.calls += 1
        seconds = time.perf_counter() - t0
        self.seconds += seconds
        self.summary.add(
            f"measure {self.calls}",
            f"Ray tasks; hash shuffle by pair into {self.parts} partitions",
            seconds,
            f"{a.size:,} pairs; the values of {need.size:,} rows (once per partition) moved",
        )
        return out


def rank_duplicates(
    selector: Selector,
    dataset: Dataset,
    rng: np.random.Generator,
    summary: RunSummary,
    *,
    rank: Callable[[Selector], np.ndarray],
    column_names: list[str],
    parts: int,
) -> tuple[RankResult, int]:
    """The selector's ranking from keys grouped on the cluster (see the module doc)."""
    import ray

    selector.check_portable()
    overrides: dict[str, Any] = {"keep": "first", "show_progress": False, "num_proc": 1}
    spec = PortableSelector.of(selector, overrides)
    t0 = time.perf_counter()
    blocks = dataset.to_arrow_refs()  # the blocks stay in the cluster's object store
    if not blocks:  # no rows: what one machine's _rank gives
        return RankResult(order=np.empty(0, dtype=np.int64), n_eligible=0), 0
    classed = _shuffle(blocks, _keys_block, _classes_group, parts, {"spec": spec, "parts": parts})
    counted = _on_each(classed, _not_plain)
    n = sum(c for c, _ in counted)
    if n == 0:
        return RankResult(order=np.empty(0, dtype=np.int64), n_eligible=0), 0
    odd = _gathered([t for _, t in counted], [ROW_COLUMN, "head", "active"])
    plain = odd["active"].astype(bool)
    members, heads = odd[ROW_COLUMN][plain], odd["head"][plain]
    inactive = int(np.count_nonzero(~plain))
    summary.add(
        "keys+classes",
        f"Ray tasks ({len(blocks)} blocks); hash shuffle by identity into {parts} partitions",
        time.perf_counter() - t0,
        f"{n:,} rows, {members.size:,} share an identity with an earlier row",
    )
    pairs = np.empty((0, 2), dtype=np.int64)
    with_buckets = ray.get(ray.remote(_has_buckets).remote(classed[0])) if n else False
    if with_buckets:
        t1 = time.perf_counter()
        found = _gathered(
            ray.get(_shuffle(classed, _explode_heads, _bucket_group, parts, {"parts": parts})),
            ["a", "b"],
        )
        pairs = unique_pairs(np.stack([found["a"], found["b"]], axis=1))
        summary.add(
            "buckets",
            f"Ray tasks; hash shuffle by (band, key) into {parts} partitions",
            time.perf_counter() - t1,
            f"{found['a'].size:,} bucket pairs, {pairs.shape[0]:,} distinct candidates",
        )
    del classed
    candidates = DuplicateCandidates(n, members, heads, pairs, inactive)
    t2 = time.perf_counter()
    priority = selector.keep_priority(n, column_names, rank, rng)  # type: ignore[attr-defined]
    summary.add(
        "keep",
        "the driver (a keep selector ranks on the cluster by its own kind)",
        time.perf_counter() - t2,
        "one priority a row",
    )
    measure = RayMeasure(blocks, spec, parts, summary)
    t3 = time.perf_counter()
    result = selector.resolve_duplicates(candidates, measure, priority)  # type: ignore[attr-defined]
    summary.add(
        "groups",
        "the driver (union-find over the verified pairs, the removed-rows table)",
        time.perf_counter() - t3 - measure.seconds,
        f"{result.n_eligible:,} rows kept",
    )
    return result, n


def _has_buckets(table: pa.Table) -> bool:
    return "buckets" in table.column_names
