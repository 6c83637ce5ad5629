"""RandomSelector: a uniform random subset, optionally stratified by a column.

The ranking is a seeded random permutation of the rows, so any ``k`` takes a
prefix of the same permutation (a larger ``k`` extends a smaller one).

With ``stratify=COLUMN`` the rows of each stratum are permuted with the seed,
then interleaved so that every prefix of the ranking is apportioned among the
strata by the Sainte-Laguë (Webster) divisor method: with
``allocation="proportional"`` stratum ``s`` of size ``n_s`` gets its ``j``-th
row at priority ``(2j + 1) / n_s``; with ``allocation="equal"`` at priority
``j`` (round robin). Divisor methods are house-monotone, so the counts per
stratum never go down when ``k`` grows. Ties between strata (which get the
leftover rows) are broken by seeded draws. Null values form a stratum of their own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..core.base import EngineKind, RankResult, Selector
from ..core.constraints import K_CONSTRAINTS, Options
from ..core.ranking import ALLOCATIONS, interleave_groups, stratum_codes
from ..core.validation import check_columns

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = ["RandomSelector", "interleave_strata", "stratum_codes"]


def interleave_strata(
    codes: np.ndarray, rng: np.random.Generator, allocation: str = "proportional"
) -> np.ndarray:
    """Row positions ordered so every prefix is apportioned among strata.

    Rows within a stratum are in a seeded random order, and ties between strata
    (which get the leftover rows) are broken by seeded draws; see the module doc.
    """
    within = rng.permutation(codes.size)
    n_strata = int(codes.max()) + 1 if codes.size else 0
    return interleave_groups(codes, within, allocation, rng.random(n_strata))


class RandomSelector(Selector):
    """A seeded uniform random subset of ``k`` rows.

    Parameters
    ----------
    k : int or float
        Rows to keep: a positive int, or a fraction in (0, 1] (rounded up).
    random_state : int, numpy Generator or None
        The seed. None draws fresh entropy, which the provenance records.
    stratify : str or None
        A column whose values define strata; see the module docstring.
    allocation : {"equal", "proportional"}, default "proportional"
        How the rows are shared among strata (only with ``stratify``).

    Examples
    --------
    >>> from datasets import Dataset
    >>> from sftselect import RandomSelector
    >>> pool = Dataset.from_dict({"output": [f"answer {i}" for i in range(10)],
    ...                           "source": ["a"] * 5 + ["b"] * 5})
    >>> picked = RandomSelector(k=4, random_state=0).select_indices(pool)
    >>> len(picked), bool((picked == RandomSelector(k=4, random_state=0).select_indices(pool)).all())
    (4, True)
    >>> strata = RandomSelector(k=4, random_state=0, stratify="source").select(pool)["source"]
    >>> sorted(strata)
    ['a', 'a', 'b', 'b']
    """

    engine_kind = EngineKind.SEEDED_DRAW
    _uses_random_state = True
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "k": K_CONSTRAINTS,
        "random_state": ["random_state"],
        "stratify": [str, None],
        "allocation": [Options(*ALLOCATIONS)],
    }

    def __init__(
        self,
        k: int | float = 1000,
        *,
        random_state: Any = None,
        stratify: str | None = None,
        allocation: str = "proportional",
    ) -> None:
        self.k = k
        self.random_state = random_state
        self.stratify = stratify
        self.allocation = allocation

    def input_columns(self) -> list[str]:
        """The stratify column, if any: the draw reads nothing else but the row count."""
        return [] if self.stratify is None else [self.stratify]

    def _rank(self, dataset: Dataset, rng: np.random.Generator, limit: int | None) -> RankResult:
        owner = type(self).__name__
        n = len(dataset)
        if self.stratify is None:
            return RankResult(order=rng.permutation(n).astype(np.int64), n_eligible=n)
        check_columns(dataset.column_names, [self.stratify], owner)
        codes, values = stratum_codes(dataset, self.stratify)
        order = interleave_strata(codes, rng, self.allocation)
        sizes = np.bincount(codes, minlength=len(values)) if n else np.zeros(0, dtype=np.int64)
        extra = {"strata": {str(v): int(s) for v, s in zip(values, sizes)}}
        return RankResult(order=order, n_eligible=n, extra=extra)
