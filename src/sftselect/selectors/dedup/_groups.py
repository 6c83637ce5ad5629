"""What the deduplication filters share: the keep policy, union-find, and the
record of what was removed and why.

A filter finds groups of duplicate rows; of each group it keeps the row the
keep policy prefers and removes the others. The keep policy gives every row a
priority (lower is better):

* ``"first"`` -- the earliest row;
* ``"longest"`` -- the longest response in characters (ties: the earliest row);
* ``"random"`` -- a seeded uniform draw;
* a column name -- the highest value of that numeric column (nulls last);
* a :class:`~sftselect.core.base.Selector` -- its ranking
  (``rank_indices``): ``keep=LengthSelector()`` keeps the longest response in
  NLTK words, ``keep=QualitySelector(judge)`` the best-rated copy. Rows the
  selector does not rank come after every ranked row, earliest first.

The filter's ranking is the kept rows in their original order (a filter with
``k`` returns the first ``k`` of them). ``extra["removed_rows"]`` is a
:class:`~sftselect.core.row_tables.RowTable` named ``removed``: for each removed
row its ``position``, the ``kept`` row that covers it, the ``group`` id (groups
are numbered by their kept row's position) and the ``similarity`` of the two
rows under the filter's measure. ``extra`` also holds the counts and the ten
largest groups.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ...core.base import EngineKind, RankResult, Selector
from ...core.constraints import Satisfies
from ...core.row_tables import RowTable
from ...core.validation import param_error

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = [
    "KEEP_RULES",
    "KeepPolicy",
    "UnionFind",
    "VectorsOrWhole",
    "dedup_result",
    "keep_constraints",
    "keep_priority",
    "keep_ranker",
    "priority_of",
]

KEEP_RULES = ("first", "longest", "random")


def _is_keep(keep: Any) -> bool:
    return isinstance(keep, Selector) or (isinstance(keep, str) and bool(keep))


def keep_constraints(extra_rules: tuple[str, ...] = ()) -> list[Any]:
    """The declared constraint of ``keep``: a rule name, a column name or a Selector
    (whether a column exists is checked against the data, by :func:`keep_ranker`)."""
    rules = [*KEEP_RULES, *extra_rules]
    description = f"one of {rules}, a column name or a Selector"
    return [Satisfies(_is_keep, description, invalid="")]


def keep_ranker(keep: Any, column_names: list[str], fmt: Any, owner: str) -> Selector | None:
    """The selector whose ranking ``keep`` follows (None for ``"first"`` and ``"random"``)."""
    if isinstance(keep, str) and keep in ("first", "random"):
        return None
    if isinstance(keep, Selector):
        return keep
    if keep == "longest":
        from ..length import LengthSelector

        return LengthSelector(1.0, unit="chars", format=fmt, drop_empty=False, on_invalid="nan")
    if keep in column_names:
        from ..score import ColumnScoreSelector

        return ColumnScoreSelector(keep, k=1.0)
    raise param_error(
        owner,
        "keep",
        f"one of {list(KEEP_RULES)}, a column of the data {list(column_names)} or a Selector",
        keep,
    )


def priority_of(
    keep: Any,
    n: int,
    column_names: list[str],
    rank: Callable[[Selector], np.ndarray],
    rng: np.random.Generator,
    fmt: Any,
    owner: str,
) -> np.ndarray:
    """Each row's priority under ``keep``: a permutation of ``0..n-1``, 0 the most preferred.

    ``rank(selector)`` gives a selector's ranking of the rows (``rank_indices`` on one
    machine; an engine ranks on its own rows); ``rng`` draws ``keep="random"``."""
    ranker = keep_ranker(keep, column_names, fmt, owner)
    if ranker is None and keep == "first":
        return np.arange(n, dtype=np.int64)
    order = rng.permutation(n) if ranker is None else rank(ranker)
    order = np.asarray(order, dtype=np.int64)
    priority = np.full(n, -1, dtype=np.int64)
    priority[order] = np.arange(order.size, dtype=np.int64)
    unranked = np.flatnonzero(priority < 0)
    priority[unranked] = order.size + np.arange(unranked.size, dtype=np.int64)
    return priority


def keep_priority(
    keep: Any, dataset: Dataset, rng: np.random.Generator, fmt: Any, owner: str
) -> np.ndarray:
    """Each row's priority under ``keep`` over ``dataset`` in this process (:func:`priority_of`)."""
    return priority_of(
        keep,
        len(dataset),
        dataset.column_names,
        lambda selector: selector.rank_indices(dataset),
        rng,
        fmt,
        owner,
    )


class KeepPolicy:
    """The ``keep_priority`` hook of a dedup filter with ``keep`` and ``format``
    parameters (``ExactDedup``, ``MinHashDedup``): the engines rank each row by it."""

    keep: Any
    format: Any

    def keep_priority(
        self,
        n: int,
        column_names: list[str],
        rank: Callable[[Selector], np.ndarray],
        rng: np.random.Generator,
    ) -> np.ndarray:
        """Each row's priority under ``keep`` (0 kept first); ``rank(selector)`` ranks the
        rows by a selector (the keep selector, or the one ``"longest"`` or a column stands for)."""
        return priority_of(self.keep, n, column_names, rank, rng, self.format, type(self).__name__)


class UnionFind:
    """Disjoint sets over ``0..n-1`` (path halving, union by index: the root of a
    set is its smallest member, so the result does not depend on the union order)."""

    def __init__(self, n: int) -> None:
        self.parent = np.arange(n, dtype=np.int64)

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = int(parent[x])
        return int(x)

    def union(self, a: int, b: int) -> bool:
        """Join the sets of ``a`` and ``b``; False when they were one set already."""
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        if ra < rb:
            self.parent[rb] = ra
        else:
            self.parent[ra] = rb
        return True

    def labels(self) -> np.ndarray:
        """The root (smallest member) of every element's set."""
        parent = self.parent.copy()
        while True:
            grand = parent[parent]
            if np.array_equal(grand, parent):
                return parent
            parent = grand


def group_representatives(labels: np.ndarray, priority: np.ndarray) -> np.ndarray:
    """For every row, the row of its group (same label) with the lowest priority."""
    n = labels.size
    if n == 0:
        return np.empty(0, dtype=np.int64)
    order = np.lexsort((priority, labels))  # by label, best priority first
    first = np.r_[True, labels[order][1:] != labels[order][:-1]]
    best = order[first]  # one per label, in label order
    _, which = np.unique(labels[order], return_inverse=True)
    kept_of_sorted = best[which]
    rep = np.empty(n, dtype=np.int64)
    rep[order] = kept_of_sorted
    return rep


def dedup_result(
    representative: np.ndarray,
    similarity: np.ndarray,
    details: dict[str, Any],
) -> RankResult:
    """The filter's ranking and record from each row's kept representative.

    ``representative[i]`` is the kept row covering row ``i`` (``i`` itself when
    ``i`` is kept); ``similarity[i]`` is row ``i``'s similarity to it.
    """
    n = representative.size
    positions = np.arange(n, dtype=np.int64)
    kept = positions[representative == positions]
    removed = positions[representative != positions]
    reps_of_removed = representative[removed]
    group_keys, group_sizes = np.unique(reps_of_removed, return_counts=True)
    group_id = np.searchsorted(group_keys, reps_of_removed)
    table = RowTable(
        "removed",
        {
            "position": removed,
            "kept": reps_of_removed,
            "group": group_id.astype(np.int64),
            "similarity": np.asarray(similarity, dtype=np.float64)[removed],
        },
    )
    largest = np.lexsort((group_keys, -group_sizes))[:10]
    extra = {
        **details,
        "rows": int(n),
        "kept": int(kept.size),
        "removed": int(removed.size),
        "groups": int(group_keys.size),
        "largest_groups": [
            {"group": int(g), "kept": int(group_keys[g]), "size": int(group_sizes[g]) + 1}
            for g in largest
        ],
        "removed_rows": table,
    }
    return RankResult(order=kept, n_eligible=int(kept.size), extra=extra)


class VectorsOrWhole:
    """The ``engine_kind`` of an embedding filter whose global step may need the rows.

    On the class it reads ``WHOLE_DATASET`` (what every instance can promise); on an
    instance whose global step reads only the vectors (its ``vectors_suffice()``:
    SemDeDup keeping ``hard`` / ``easy`` / ``random`` / ``first``,
    RepresentationFilter walking in row order) it reads ``VECTORS_THEN_GLOBAL``, so an
    engine embeds the rows where they are and runs ``rank_vectors`` in one process.
    """

    def __get__(self, obj: Any, owner: type) -> EngineKind:
        if obj is None or not obj.vectors_suffice():
            return EngineKind.WHOLE_DATASET
        return EngineKind.VECTORS_THEN_GLOBAL
