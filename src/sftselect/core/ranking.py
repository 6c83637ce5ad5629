"""Selection rules over a score vector: eligibility thresholds and top-k order.

Scoring is kept apart from the rule (as scikit-learn keeps ``score_func`` apart
from ``SelectKBest``): a scorer yields one float per row, and these functions
turn scores into a ranking of positions.

Ties are broken on purpose:

* ``ties="stable"`` -- equal scores keep their original order (earlier row
  first), so the same input always gives the same subset;
* ``ties="random"`` -- equal scores are ordered by a uniform random
  permutation drawn from the selector's seed (AlpaGasus sampled uniformly
  among the examples rated 4.5).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .validation import check_choice

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = ["ALLOCATIONS", "eligible_mask", "interleave_groups", "stratum_codes", "top_order"]

#: The ``allocation`` rules of :func:`interleave_groups` (and of the selectors that
#: share rows among groups: ``RandomSelector`` strata, ``DiversitySelector`` clusters).
ALLOCATIONS: tuple[str, ...] = ("equal", "proportional")


def eligible_mask(
    scores: np.ndarray, min_score: float | None = None, max_score: float | None = None
) -> np.ndarray:
    """Rows that can be chosen: a real score with ``min_score <= score <= max_score``.

    Both bounds are inclusive; a NaN score is never eligible.
    """
    mask = ~np.isnan(scores)
    if min_score is not None:
        mask &= scores >= min_score
    if max_score is not None:
        mask &= scores <= max_score
    return mask


def top_order(
    scores: np.ndarray,
    eligible: np.ndarray,
    *,
    largest: bool = True,
    ties: str = "stable",
    rng: np.random.Generator | None = None,
    limit: int | None = None,
) -> np.ndarray:
    """Positions of eligible rows ordered best first, ties broken by ``ties``.

    With ``limit``, only the first ``limit`` positions of that order are
    computed (``numpy.argpartition`` finds them in linear time); the result is
    exactly the prefix of the full order.
    """
    candidates = np.flatnonzero(eligible)
    key = scores[candidates].astype(np.float64, copy=False)
    if largest:
        key = -key
    if ties == "random":
        if rng is None:
            raise ValueError("ties='random' needs a random generator")
        perm = rng.permutation(candidates.size)
        candidates, key = candidates[perm], key[perm]
    m = candidates.size
    if limit is not None and limit < m:
        if limit <= 0:
            return np.empty(0, dtype=np.int64)
        # Every row whose key is <= the limit-th smallest key competes for the cut.
        cut = np.partition(key, limit - 1)[limit - 1]
        keep = np.flatnonzero(key <= cut)
        candidates, key = candidates[keep], key[keep]
    # Stable sort: equal keys keep the current order (original position, or the
    # random permutation when ties="random").
    order = candidates[np.argsort(key, kind="stable")]
    if limit is not None:
        order = order[:limit]
    return order.astype(np.int64, copy=False)


def interleave_groups(
    labels: np.ndarray,
    within_order: np.ndarray,
    allocation: str,
    group_key: np.ndarray | None = None,
) -> np.ndarray:
    """Rows ordered so every prefix is apportioned among the groups of ``labels``.

    ``labels`` holds a group number (0..G-1) per row; ``within_order`` is a
    permutation of the rows whose relative order inside each group is the order
    that group's rows are taken. ``allocation="proportional"`` gives the
    ``j``-th row of a group of size ``n_g`` the priority ``(2j + 1) / n_g``
    (the Sainte-Laguë divisor method); ``"equal"`` the priority ``j`` (round
    robin). Ties in priority go to the group with the smaller ``group_key``
    (one number per group; the selectors pass seeded uniform draws, so which
    groups get the leftover rows when ``k`` does not divide evenly is random,
    not decided by where a group first appears in the data), or to the lower
    group number when ``group_key`` is None. Divisor methods are
    house-monotone: a longer prefix never takes rows away from a group, and a
    group that runs out simply drops out. ``allocation`` is one of
    :data:`ALLOCATIONS`.
    """
    check_choice(allocation, "allocation", "interleave_groups", ALLOCATIONS)
    n = labels.size
    if n == 0:
        return np.empty(0, dtype=np.int64)
    grouped = within_order[np.argsort(labels[within_order], kind="stable")]
    sizes = np.bincount(labels)
    group = labels[grouped]
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    j = np.arange(n) - starts[group]
    if allocation == "proportional":
        priority = (2.0 * j + 1.0) / sizes[group]
    else:
        priority = j.astype(np.float64)
    tiebreak = group if group_key is None else np.asarray(group_key)[group]
    return grouped[np.lexsort((group, tiebreak, priority))].astype(np.int64)


def stratum_codes(dataset: Dataset, column: str) -> tuple[np.ndarray, list[Any]]:
    """Integer code per row (strata numbered in sorted order of their values)."""
    col = dataset.with_format("arrow")[column]
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    encoded = pc.dictionary_encode(col, null_encoding="encode")
    values = encoded.dictionary.to_pylist()
    raw = encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    order = sorted(range(len(values)), key=lambda i: (values[i] is None, values[i]))
    remap = np.empty(len(values), dtype=np.int64)
    remap[np.asarray(order, dtype=np.int64)] = np.arange(len(values))
    return remap[raw] if raw.size else raw, [values[i] for i in order]
