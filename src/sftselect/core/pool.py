"""The rows a composite combines, wherever they live: the ``Pool`` protocol.

A composite (:class:`~sftselect.core.compose.Chain`, ``Union``, ``Intersection``,
``PerSource``) never reads rows itself. It asks a pool for a subset of its rows,
for an operand's selection or full ranking over them, and for one column's
stratum codes; the combination is index arithmetic on the answers. Each engine
gives its own pool: :class:`LocalPool` wraps a ``datasets.Dataset`` in this
process; the Ray engine (:mod:`sftselect.distributed`) gives one over a Ray
Dataset, where each operand runs by its own declared
:class:`~sftselect.core.kinds.EngineKind`. The composite's code is the same in both,
so its answer is too.

A composite of your own declares ``EngineKind.COMPOSITE`` and implements
``rank_pool(pool, rng, limit) -> RankResult`` against this protocol (its
``_rank`` is then ``rank_pool(LocalPool(dataset), rng, limit)``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .ranking import stratum_codes

if TYPE_CHECKING:
    from datasets import Dataset

    from .base import Selector
    from .results import RankResult, Selection

__all__ = ["LocalPool", "Pool"]


class Pool(Protocol):
    """Rows numbered ``0 .. len(pool) - 1`` that selectors can be run on."""

    def __len__(self) -> int:
        """The number of rows."""

    @property
    def column_names(self) -> list[str]:
        """The columns every row has."""

    def subset(self, positions: np.ndarray) -> Pool:
        """The rows at ``positions`` (ascending, of this pool), renumbered from 0 in that order."""

    def run(self, selector: Selector) -> Selection:
        """``selector``'s selection over these rows (what :meth:`Selector.run` returns)."""

    def full_ranking(self, selector: Selector) -> tuple[RankResult, Any]:
        """``selector``'s ranking of every eligible row and its seed record
        (what :meth:`Selector.full_ranking` returns)."""

    def codes(self, column: str) -> tuple[np.ndarray, list[Any]]:
        """An integer code per row for ``column``'s value, and the values in code order
        (strata numbered in sorted order of their values, None last)."""


class LocalPool:
    """A :class:`Pool` over a ``datasets.Dataset`` in this process."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def column_names(self) -> list[str]:
        return list(self.dataset.column_names)

    def subset(self, positions: np.ndarray) -> LocalPool:
        return LocalPool(self.dataset.select(np.asarray(positions, dtype=np.int64)))

    def run(self, selector: Selector) -> Selection:
        return selector.run(self.dataset)

    def full_ranking(self, selector: Selector) -> tuple[RankResult, Any]:
        return selector.full_ranking(self.dataset)

    def codes(self, column: str) -> tuple[np.ndarray, list[Any]]:
        return stratum_codes(self.dataset, column)
