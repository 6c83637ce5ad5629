"""Exact global top-k from per-block candidates, with the single-machine tie rule.

:func:`sftselect.core.ranking.top_order` ranks eligible rows by score and breaks
ties by row position (``ties="stable"``) or by a seeded permutation of the
eligible rows (``ties="random"``). On a cluster each block keeps its own
candidates (:func:`block_candidates`): every eligible row whose key is not
worse than the block's ``limit``-th best, ties at that cut included. A row of
the global top ``limit`` is always among its block's candidates (fewer than
``limit`` rows of the pool, so of its block, rank before it), so one merge of
the candidates (:func:`merge_candidates`) gives exactly the single-machine
order:

* stable ties: candidates sorted by position, then a stable sort on the key;
* random ties: the driver draws the same permutation of the ``m`` eligible
  rows as :func:`~sftselect.core.ranking.top_order` (``rng.permutation(m)``), and
  a candidate's tie-break is where its rank among the eligible rows lands in
  that permutation.
"""

from __future__ import annotations

import numpy as np

__all__ = ["block_candidates", "merge_candidates", "sort_keys"]


def sort_keys(scores: np.ndarray, largest: bool) -> np.ndarray:
    """The ascending sort key of ``scores`` (negated when the largest come first)."""
    key = np.asarray(scores, dtype=np.float64)
    return -key if largest else key


def block_candidates(
    scores: np.ndarray, eligible: np.ndarray, *, largest: bool, limit: int | None
) -> np.ndarray:
    """Positions (within the block) of the rows that can reach the global top ``limit``.

    Every eligible row when ``limit`` is None or the block has no more than
    ``limit`` eligible rows; otherwise those whose key is at most the block's
    ``limit``-th smallest key (ties at the cut kept), in ascending position.
    """
    candidates = np.flatnonzero(eligible)
    if limit is None or candidates.size <= limit:
        return candidates
    if limit <= 0:
        return np.empty(0, dtype=np.int64)
    key = sort_keys(scores[candidates], largest)
    cut = np.partition(key, limit - 1)[limit - 1]
    return candidates[key <= cut]


def merge_candidates(
    rows: np.ndarray,
    scores: np.ndarray,
    *,
    largest: bool,
    ties: str,
    limit: int | None,
    eligible: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Global positions of the top ``limit`` candidates, best first.

    ``rows`` are the candidates' positions in the pool and ``scores`` their
    scores. ``ties="random"`` also needs ``eligible`` (the pool's eligibility
    mask, one bool per row) and ``rng`` (the selector's generator, in the
    state :func:`~sftselect.core.ranking.top_order` would receive).
    """
    rows = np.asarray(rows, dtype=np.int64)
    by_row = np.argsort(rows, kind="stable")
    rows, key = rows[by_row], sort_keys(np.asarray(scores)[by_row], largest)
    if ties == "random":
        if eligible is None or rng is None:
            raise ValueError("ties='random' needs the eligibility mask and a random generator")
        m = int(np.count_nonzero(eligible))
        # Rank of each candidate among the eligible rows, then its place in the
        # permutation top_order draws: the same tie-break as on one machine.
        rank = np.cumsum(eligible, dtype=np.int64)[rows] - 1
        place = np.empty(m, dtype=np.int64)
        place[rng.permutation(m)] = np.arange(m, dtype=np.int64)
        order = np.lexsort((place[rank], key))
    else:
        order = np.argsort(key, kind="stable")
    if limit is not None:
        order = order[:limit]
    return rows[order]
