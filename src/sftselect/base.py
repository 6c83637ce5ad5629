"""The :class:`Selector` contract every selection strategy implements.

A selector's hyper-parameters (``k`` included) go to ``__init__`` and are
stored as given; they are validated when used. Data goes to the methods:

* :meth:`Selector.rank_indices` -- the eligible rows, most preferred first;
* :meth:`Selector.select_indices` -- the first ``k`` of that ranking, as
  unique int64 positions in ascending (original) order;
* :meth:`Selector.select` -- the same rows as a new ``datasets.Dataset``;
* :meth:`Selector.run` -- the same, with scores and a provenance record.

Subclasses implement one hook, :meth:`Selector._rank`. Because every selector
exposes a ranking, selectors compose by index arithmetic alone
(:mod:`sftselect.compose`), and ``select_indices(ds)`` always equals
``sorted(rank_indices(ds)[:k])``.
"""

from __future__ import annotations

import abc
import inspect
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ._validation import check_k, check_random_state, resolve_k
from .exceptions import KTooLargeWarning

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = ["RankResult", "Selection", "Selector"]


@dataclass(frozen=True)
class RankResult:
    """What a selector's :meth:`Selector._rank` hook returns.

    ``order`` holds eligible row positions, most preferred first. It may stop
    after ``limit`` entries when a limit was given. ``scores`` is one float per
    input row for scoring selectors (NaN where a row cannot be scored), else
    None. ``n_eligible`` counts the rows the selector could pick at all.
    ``extra`` carries selector-specific diagnostics for the provenance record.
    """

    order: np.ndarray
    n_eligible: int
    scores: np.ndarray | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Selection:
    """The outcome of :meth:`Selector.run` on one dataset.

    ``indices`` are the selected positions in ascending order; ``ranked`` holds
    the same positions most preferred first.
    """

    indices: np.ndarray
    ranked: np.ndarray
    n_input: int
    n_eligible: int
    k: int | float | None
    selector: Selector
    scores: np.ndarray | None
    seed: Any
    fingerprint: str | None
    dataset: Dataset | None = field(repr=False, compare=False)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def provenance(self, *, content_hash: bool = True) -> dict[str, Any]:
        """A JSON-serialisable record of what was selected, how and from what.

        ``content_hash`` adds the SHA-256 of the input rows (about 1 s per GB).
        """
        from .provenance import build_provenance

        return build_provenance(self, content_hash=content_hash)


def _describe(value: Any) -> Any:
    """Turn a hyper-parameter value into something JSON can hold."""
    if isinstance(value, Selector):
        return {"selector": type(value).__name__, "params": value.get_params()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, np.random.Generator):
        return "numpy.random.Generator"
    if isinstance(value, Mapping):
        return {str(k): _describe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_describe(v) for v in value]
    return repr(value)


class Selector(abc.ABC):
    """Base class of every selector; see the module docstring for the contract.

    Subclasses define ``__init__`` with explicit keyword parameters stored under
    the same names, and implement :meth:`_rank`. Set ``_k_optional = True`` on a
    subclass that may run without ``k`` (a threshold then decides).
    """

    _k_optional: ClassVar[bool] = False
    _uses_random_state: ClassVar[bool] = False

    # -- parameters ---------------------------------------------------------
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def get_params(self) -> dict[str, Any]:
        """The hyper-parameters as given to ``__init__``, described for JSON."""
        return {name: _describe(getattr(self, name)) for name in self._param_names()}

    def clone(self, **overrides: Any) -> Selector:
        """A new selector of the same class with the same parameters, some overridden."""
        names = self._param_names()
        unknown = sorted(set(overrides) - set(names))
        if unknown:
            raise TypeError(f"{type(self).__name__} has no parameter(s) {unknown}; it has {names}.")
        params = {name: getattr(self, name) for name in names}
        params.update(overrides)
        return type(self)(**params)

    def __repr__(self) -> str:
        parts = [f"{n}={getattr(self, n)!r}" for n in self._param_names()]
        return f"{type(self).__name__}({', '.join(parts)})"

    # -- the contract ---------------------------------------------------------
    @abc.abstractmethod
    def _rank(self, dataset: Dataset, rng: np.random.Generator, limit: int | None) -> RankResult:
        """Rank the eligible rows of ``dataset``, most preferred first.

        ``limit`` is the number of leading entries the caller needs (None: all
        eligible rows). Validate the selector's own parameters here.
        """

    def _check_k(self) -> int | float | None:
        return check_k(self.k, type(self).__name__, allow_none=self._k_optional)  # type: ignore[attr-defined]

    def _resolve_seed(self) -> tuple[np.random.Generator, Any]:
        """Resolve ``random_state`` to a Generator and a record of the seed used."""
        random_state = getattr(self, "random_state", None)
        owner = type(self).__name__
        if random_state is None:
            entropy = np.random.SeedSequence().entropy
            return np.random.default_rng(entropy), {"entropy": str(entropy)}
        if isinstance(random_state, np.random.Generator):
            state = random_state.bit_generator.state
            return random_state, {"generator_state": _describe(state)}
        return check_random_state(random_state, owner), random_state

    def run(self, dataset: Dataset) -> Selection:
        """Select from ``dataset`` and return indices, scores and provenance."""
        from .formats import check_dataset

        check_dataset(dataset, type(self).__name__)
        k = self._check_k()
        n = len(dataset)
        rng, seed = self._resolve_seed()
        limit = None if k is None else min(resolve_k(k, n), n)
        result = self._rank(dataset, rng, limit)
        return self._selection(
            result,
            n=n,
            k=k,
            seed=seed,
            fingerprint=getattr(dataset, "_fingerprint", None),
            dataset=dataset,
            stacklevel=4,
        )

    def _selection(
        self,
        result: RankResult,
        *,
        n: int,
        k: int | float | None,
        seed: Any,
        fingerprint: str | None,
        dataset: Dataset | None,
        stacklevel: int,
    ) -> Selection:
        """The :class:`Selection` of a ranking over ``n`` rows: ``k`` resolved (with a
        :class:`KTooLargeWarning` when fewer rows are eligible), positions sorted.
        Shared by :meth:`run` and the distributed runner."""
        order = np.asarray(result.order, dtype=np.int64)
        if k is None:
            chosen = order
        else:
            wanted = resolve_k(k, n)
            if wanted > result.n_eligible:
                where = "rows" if result.n_eligible == n else "eligible rows"
                warnings.warn(
                    f"{type(self).__name__} was asked for k={k!r} ({wanted} rows) but the "
                    f"dataset has only {result.n_eligible} {where}; returning "
                    f"{min(wanted, result.n_eligible)}.",
                    KTooLargeWarning,
                    stacklevel=stacklevel,
                )
            chosen = order[:wanted]
        return Selection(
            indices=np.sort(chosen),
            ranked=chosen,
            n_input=n,
            n_eligible=result.n_eligible,
            k=k,
            selector=self,
            scores=result.scores,
            seed=seed if self._uses_random_state else None,
            fingerprint=fingerprint,
            dataset=dataset,
            extra=dict(result.extra),
        )

    def select_indices(self, dataset: Dataset) -> np.ndarray:
        """Unique int64 positions of the selected rows, in ascending order."""
        return self.run(dataset).indices

    def select(self, dataset: Dataset) -> Dataset:
        """The selected rows as a new Dataset (the input is left unchanged)."""
        indices = self.select_indices(dataset)
        return dataset.select(indices)

    def rank_indices(self, dataset: Dataset) -> np.ndarray:
        """Every eligible row position, most preferred first (``k`` is ignored)."""
        return np.asarray(self._full_ranking(dataset)[0].order, dtype=np.int64)

    def _full_ranking(self, dataset: Dataset) -> tuple[RankResult, Any]:
        """The ranking of every eligible row (``k`` ignored) and the seed record it used
        (None for a selector that draws nothing): what a combinator records of an operand."""
        from .formats import check_dataset

        check_dataset(dataset, type(self).__name__)
        self._check_k()
        rng, seed = self._resolve_seed()
        result = self._rank(dataset, rng, None)
        return result, seed if self._uses_random_state else None

    # -- composition sugar ----------------------------------------------------
    def __or__(self, other: Selector) -> Selector:
        from .compose import Union

        return Union(self, other)

    def __and__(self, other: Selector) -> Selector:
        from .compose import Intersection

        return Intersection(self, other)

    def __rshift__(self, other: Selector) -> Selector:
        from .compose import Chain

        return Chain(self, other)
