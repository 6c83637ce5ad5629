"""Selection by a score: top-k, a threshold, or both.

:class:`ScoreSelector` is the base of every scoring selector: a subclass
implements :meth:`ScoreSelector._score` (one float per row, NaN where a row
cannot be scored) and inherits the rule. Rows are eligible when their score is
a number with ``min_score <= score <= max_score`` (both inclusive, both
optional); eligible rows are ranked by score (highest first unless
``largest=False``), ties broken by ``ties``; ``k`` takes the first rows of that
ranking and ``k=None`` takes every eligible row.

Every scoring selector declares :attr:`~sftselect.core.base.EngineKind.ROW_SCORE`:
an engine scores blocks of rows in parallel with :meth:`ScoreSelector.score_with_rules`
and applies the same rule with :meth:`ScoreSelector.bounds`, ``largest`` and
``ties``, so a subclass of your own runs on Ray as it is. A subclass whose score
of a row depends on other rows must declare ``WHOLE_DATASET`` instead.
"""

from __future__ import annotations

import abc
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..core.base import EngineKind, RankResult, Selector
from ..core.constraints import K_CONSTRAINTS, Interval, Options
from ..core.ranking import eligible_mask, top_order
from ..core.validation import check_columns
from ..exceptions import InvalidParameterError

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = ["ColumnScoreSelector", "ScoreSelector", "Scored"]

TIE_RULES = ("stable", "random")
#: The constraint of a score bound (``min_score``, ``max_score``...): a finite number or None.
BOUND: list[Any] = [Interval(numbers.Real, None, None), None]


@dataclass(frozen=True)
class Scored:
    """What a scoring selector computed for one dataset.

    ``scores``: one float per row (NaN where a row cannot be scored);
    ``eligible``: a subclass's extra eligibility mask (None: no extra rule);
    ``extra``: diagnostics that go into the provenance record.
    """

    scores: np.ndarray
    eligible: np.ndarray | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


class ScoreSelector(Selector):
    """Base class for selectors that rank rows by a per-row score.

    A subclass implements ``_score(dataset)``: one float per row, NaN where a row
    cannot be scored, each row's score computed from that row alone. It inherits
    ``__init__(k=None, *, min_score=None, max_score=None, largest=True,
    ties="stable", random_state=None)``; one with parameters of its own defines
    ``__init__`` storing those and the standard ones under their names (its bounds
    may have other names, listed in ``_bound_names``). It may override
    ``_score_with_rules`` to add an eligibility mask or diagnostics that share
    work with scoring. See ``docs/selectors/column-score.md`` for an example.

    Public methods beyond :class:`~sftselect.core.base.Selector`'s, which engines
    call on blocks of rows:

    * :meth:`score` -- the scores of the rows given;
    * :meth:`score_with_rules` -- the scores, the extra eligibility mask and the
      diagnostics (a :class:`Scored`);
    * :meth:`bounds` -- the validated ``(lower, upper)`` score bounds.
    """

    engine_kind = EngineKind.ROW_SCORE
    #: True when scoring builds something costly once per worker and waits on it
    #: (a judge with its HTTP clients and a shared reply-cache file): an engine then
    #: scores in a few long-lived workers (Ray actors) on the driver's node, fed
    #: small batches, instead of short tasks anywhere.
    score_in_actors: ClassVar[bool] = False
    #: True when scoring runs a model on a device (an LM, a reward model): the
    #: actors then take ``num_gpus`` GPUs each (``sftselect.distributed.run``).
    scores_on_device: ClassVar[bool] = False
    _k_optional = True
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "k": [*K_CONSTRAINTS, None],
        "min_score": BOUND,
        "max_score": BOUND,
        "largest": ["boolean"],
        "ties": [Options(*TIE_RULES)],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        k: int | float | None = None,
        *,
        min_score: float | None = None,
        max_score: float | None = None,
        largest: bool = True,
        ties: str = "stable",
        random_state: Any = None,
    ) -> None:
        self.k = k
        self.min_score = min_score
        self.max_score = max_score
        self.largest = largest
        self.ties = ties
        self.random_state = random_state

    @property
    def _uses_random_state(self) -> bool:  # type: ignore[override]
        """Only random tie-breaking draws from the seed; a stable run records none."""
        return self.ties == "random"

    #: Names under which a subclass exposes its lower and upper score bounds.
    _bound_names: tuple[str, str] = ("min_score", "max_score")

    @abc.abstractmethod
    def _score(self, dataset: Dataset) -> np.ndarray:
        """One float per row of ``dataset`` (NaN where the row cannot be scored)."""

    def _score_with_rules(self, dataset: Dataset) -> Scored:
        """Scores, a subclass's extra eligibility mask and diagnostics.

        Override when an eligibility rule or a report shares work with scoring.
        """
        return Scored(self._checked_scores(dataset))

    def score_with_rules(self, dataset: Dataset) -> Scored:
        """The scores of the rows of ``dataset``, the selector's extra eligibility
        mask (None: no extra rule) and its diagnostics.

        What :meth:`rank` applies the rule to; an engine calls it on each block
        of rows (each row's score depends on that row alone) and applies the
        same rule to the blocks' results. The parameters are validated first.
        """
        self._validate_params()
        return self._score_with_rules(dataset)

    def score(self, dataset: Dataset) -> np.ndarray:
        """One float64 score per row; NaN where a row cannot be scored."""
        from ..data.formats import check_dataset

        check_dataset(dataset, type(self).__name__)
        self._validate_params()
        return self._checked_scores(dataset)

    def _checked_scores(self, dataset: Dataset) -> np.ndarray:
        scores = np.asarray(self._score(dataset), dtype=np.float64)
        if scores.shape != (len(dataset),):
            raise RuntimeError(
                f"{type(self).__name__}._score returned shape {scores.shape}; "
                f"expected ({len(dataset)},)."
            )
        return scores

    def bounds(self) -> tuple[float | None, float | None]:
        """The lower and upper score bounds as floats (None: no bound), the lower not
        above the upper (their types are checked by :meth:`check_k`)."""
        owner = type(self).__name__
        lo_name, hi_name = self._bound_names
        lo, hi = (
            None if v is None else float(v) for v in (getattr(self, n) for n in (lo_name, hi_name))
        )
        if lo is not None and hi is not None and lo > hi:
            raise InvalidParameterError(
                f"The {lo_name!r} parameter of {owner} ({lo}) must not exceed {hi_name!r} ({hi})."
            )
        return lo, hi

    def check_k(self) -> int | float | None:
        """``k`` validated, and the bounds: a scorer needs ``k`` or a bound."""
        k = super().check_k()
        lo, hi = self.bounds()
        if k is None and lo is None and hi is None:
            lo_name, hi_name = self._bound_names
            raise InvalidParameterError(
                f"{type(self).__name__} needs 'k', {lo_name!r} or {hi_name!r}: "
                "with none of them every row would be selected."
            )
        return k

    def _rank(self, dataset: Dataset, rng: np.random.Generator, limit: int | None) -> RankResult:
        lo, hi = self.bounds()
        scored = self._score_with_rules(dataset)  # what score_with_rules gives
        scores, extra_mask = scored.scores, scored.eligible
        mask = eligible_mask(scores, lo, hi)
        extra: dict[str, Any] = dict(scored.extra)
        if extra_mask is not None:
            extra["n_excluded_by_rule"] = int(np.count_nonzero(mask & ~extra_mask))
            mask &= extra_mask
        extra["n_unscorable"] = int(np.count_nonzero(np.isnan(scores)))
        order = top_order(scores, mask, largest=self.largest, ties=self.ties, rng=rng, limit=limit)
        return RankResult(order=order, n_eligible=int(mask.sum()), scores=scores, extra=extra)


class ColumnScoreSelector(ScoreSelector):
    """Select by a numeric column already in the dataset (e.g. a stored rating).

    Example: the released AlpaGasus ratings are in a ``score`` column, so
    ``ColumnScoreSelector("score", min_score=4.5)`` keeps the rows rated 4.5 or
    more. Nulls are unscorable (NaN) and never selected.
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **ScoreSelector._parameter_constraints,
        "column": [str],
    }

    def __init__(
        self,
        column: str,
        k: int | float | None = None,
        *,
        min_score: float | None = None,
        max_score: float | None = None,
        largest: bool = True,
        ties: str = "stable",
        random_state: Any = None,
    ) -> None:
        self.column = column
        super().__init__(
            k,
            min_score=min_score,
            max_score=max_score,
            largest=largest,
            ties=ties,
            random_state=random_state,
        )

    def _score(self, dataset: Dataset) -> np.ndarray:
        import pyarrow as pa

        check_columns(dataset.column_names, [self.column], type(self).__name__)
        col = dataset.with_format("arrow")[self.column]
        if not (
            pa.types.is_integer(col.type)
            or pa.types.is_floating(col.type)
            or pa.types.is_null(col.type)
        ):
            from ..exceptions import DataFormatError

            raise DataFormatError(
                f"Column {self.column!r} must be numeric to be used as a score; "
                f"its Arrow type is {col.type}."
            )
        return (
            col.to_numpy().astype(np.float64)
            if col.null_count == 0
            else np.array(col.to_pylist(), dtype=np.float64)
        )
