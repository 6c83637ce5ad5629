"""The pieces of duplicate grouping that one machine and the Ray engine share.

:class:`~sftselect.selectors.dedup.ExactDedup` and
:class:`~sftselect.selectors.dedup.MinHashDedup` declare
:attr:`~sftselect.core.kinds.EngineKind.DUPLICATE_GROUPS`: their ranking is
computed in four steps, each of which an engine may run where it likes, and
one process runs them all in ``_rank``:

1. ``duplicate_keys(dataset)`` -- per row, from that row alone, an Arrow table
   (:data:`KEY_COLUMNS`): the row's ``identity`` (rows with equal identities are
   one class: the same normalised text, the same MinHash signature), a 64-bit
   ``identity_hash`` of it (equal identities hash alike; only used to send equal
   identities to one place), whether the row takes ``active`` part (a row
   without shingles does not), and optionally ``buckets``: one uint64 bucket key
   per LSH band.
2. :func:`identity_classes` over the rows, grouped by identity wherever they
   are; then :func:`bucket_pairs` over the classes' heads (the smallest row of
   each class), grouped by ``(band, key)`` wherever they are; the pairs of all
   buckets, made distinct by :func:`unique_pairs`, are the candidates.
3. ``pair_values(dataset)`` -- per row, from that row alone, what a pair's
   measure reads (the row's distinct shingle hashes, or its signature), and
   ``pair_measure(values, a, b)`` -- the measure of pairs given by positions in
   ``values``. An engine computes both wherever the pair's rows are.
4. ``resolve_duplicates(candidates, measure, priority)`` -- the verified edges,
   union-find, the keep policy's priority (``keep_priority``) and the record of
   removed rows, in one process; ``measure(a, b)`` is called on pairs of rows
   (positions in the pool) and may run anywhere.

Steps 2 and 4 are functions of sets (classes, buckets, pairs), never of the
order rows arrive in, so any grouping of the rows gives the same groups.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "KEY_COLUMNS",
    "MAX_FULL_BUCKET",
    "DuplicateCandidates",
    "bucket_matrix",
    "bucket_pairs",
    "candidates_in_one_process",
    "identity_classes",
    "unique_pairs",
]

#: The columns of ``duplicate_keys`` (``buckets`` may be absent).
KEY_COLUMNS = ("identity", "identity_hash", "active", "buckets")

#: A bucket of more rows than this pairs each row with its first ``MAX_FULL_BUCKET``
#: rows only (by position), so one huge bucket cannot make a quadratic number of pairs.
MAX_FULL_BUCKET = 64


@dataclass(frozen=True)
class DuplicateCandidates:
    """What step 2 gives: the identity classes and the candidate pairs.

    ``members[i]`` shares its identity with the smaller row ``heads[i]`` (the
    smallest row of its class); ``pairs`` are the distinct candidate pairs
    ``(a, b)``, ``a < b``, of class heads, sorted; ``inactive`` counts the rows
    that take part in no comparison.
    """

    n: int
    members: np.ndarray
    heads: np.ndarray
    pairs: np.ndarray
    inactive: int


def identity_classes(rows: np.ndarray, identity: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """``(members, heads)``: each row of ``rows`` whose ``identity`` equals that of a
    smaller row, and the smallest row of its class (exact equality of the values)."""
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    if isinstance(identity, pa.ChunkedArray):
        identity = identity.combine_chunks()
    codes = pc.dictionary_encode(identity).indices.to_numpy(zero_copy_only=False)
    codes = codes.astype(np.int64)
    order = np.lexsort((rows, codes))
    sorted_codes = codes[order]
    first = np.r_[True, sorted_codes[1:] != sorted_codes[:-1]]
    head_of_sorted = rows[order][np.maximum.accumulate(np.where(first, np.arange(rows.size), 0))]
    members = rows[order][~first]
    heads = head_of_sorted[~first]
    return members, heads


def bucket_pairs(
    bands: np.ndarray, keys: np.ndarray, rows: np.ndarray, max_full: int = MAX_FULL_BUCKET
) -> np.ndarray:
    """The pairs ``(i, j)``, ``i < j``, of ``rows`` in one bucket (equal ``(band, key)``):
    every pair of a bucket of up to ``max_full`` rows; in a larger bucket, each row with
    each of the bucket's ``max_full`` smallest rows. Pairs found in several bands repeat."""
    bands = np.asarray(bands, dtype=np.int64)
    keys = np.asarray(keys, dtype=np.uint64)
    rows = np.asarray(rows, dtype=np.int64)
    order = np.lexsort((rows, keys, bands))
    b, k, r = bands[order], keys[order], rows[order]
    change = np.r_[True, (b[1:] != b[:-1]) | (k[1:] != k[:-1]), True]
    bounds = np.flatnonzero(change)
    starts, sizes = bounds[:-1], np.diff(bounds)
    pairs = [np.empty((0, 2), dtype=np.int64)]
    for size in np.unique(sizes[(sizes > 1) & (sizes <= max_full)]).tolist():
        members = r[starts[sizes == size][:, None] + np.arange(size)]  # [buckets, size]
        i, j = np.triu_indices(size, k=1)
        pairs.append(np.stack([members[:, i].ravel(), members[:, j].ravel()], axis=1))
    for start, size in zip(starts[sizes > max_full].tolist(), sizes[sizes > max_full].tolist()):
        members = r[start : start + size]
        i, j = np.meshgrid(np.arange(max_full), np.arange(size), indexing="ij")
        mask = j > i
        pairs.append(np.stack([members[i[mask]], members[j[mask]]], axis=1))
    return np.concatenate(pairs).astype(np.int64)


def unique_pairs(pairs: np.ndarray) -> np.ndarray:
    """The distinct pairs, each as ``(smaller, larger)``, sorted."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if pairs.size == 0:
        return pairs
    return np.unique(np.sort(pairs, axis=1), axis=0)


def bucket_matrix(keys: pa.Table) -> np.ndarray:
    """The ``buckets`` column of a ``duplicate_keys`` table as a ``[rows, bands]`` uint64 array."""
    col = keys.column("buckets").combine_chunks()
    width = col.type.list_size
    return col.flatten().to_numpy(zero_copy_only=False).astype(np.uint64).reshape(-1, width)


def candidates_in_one_process(keys: pa.Table) -> DuplicateCandidates:
    """Step 2 over a whole ``duplicate_keys`` table (row ``i`` at position ``i``)."""
    n = keys.num_rows
    active = keys.column("active").to_numpy(zero_copy_only=False).astype(bool)
    rows = np.flatnonzero(active)
    members, heads = identity_classes(rows, keys.column("identity").filter(pa.array(active)))
    pairs = np.empty((0, 2), dtype=np.int64)
    if "buckets" in keys.column_names and rows.size:
        is_head = active.copy()
        is_head[members] = False
        head_rows = np.flatnonzero(is_head)
        buckets = bucket_matrix(keys)[head_rows]
        width = buckets.shape[1]
        pairs = unique_pairs(
            bucket_pairs(
                np.tile(np.arange(width), head_rows.size),
                buckets.ravel(),
                np.repeat(head_rows, width),
            )
        )
    return DuplicateCandidates(n, members, heads, pairs, inactive=int(n - rows.size))
