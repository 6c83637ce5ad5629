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
(:mod:`sftselect.core.compose`), and ``select_indices(ds)`` always equals
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

from ..exceptions import InvalidParameterError, KTooLargeWarning
from .validation import check_dataset, check_k, check_random_state, resolve_k

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
        return {"selector": type(value).__name__, "params": value.describe_params()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, np.random.Generator):
        return "numpy.random.Generator"
    if isinstance(value, Mapping):
        return {str(k): _describe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_describe(v) for v in value]
    return repr(value)


def _nested_selectors(name: str, value: Any) -> list[tuple[str, Selector]]:
    """The selectors a parameter holds, each with the key prefix that reaches it."""
    if isinstance(value, Selector):
        return [(name, value)]
    if isinstance(value, (list, tuple)):
        return [(f"{name}__{i}", v) for i, v in enumerate(value) if isinstance(v, Selector)]
    return []


def _set_nested(owner: Selector, name: str, value: Any, params: dict[str, Any]) -> None:
    if isinstance(value, Selector):
        value.set_params(**params)
        return
    if isinstance(value, (list, tuple)):
        by_index: dict[int, dict[str, Any]] = {}
        for key, sub_value in params.items():
            index, _, rest = key.partition("__")
            if not index.isdigit() or int(index) >= len(value) or not rest:
                raise InvalidParameterError(
                    f"{type(owner).__name__}: {name}__{key} names no operand parameter; "
                    f"operands are {name}__0 to {name}__{len(value) - 1}."
                )
            by_index.setdefault(int(index), {})[rest] = sub_value
        for index, sub_params in by_index.items():
            value[index].set_params(**sub_params)
        return
    raise InvalidParameterError(
        f"{type(owner).__name__}: the {name!r} parameter holds no selector to set "
        f"{sorted(params)} on."
    )


def _clone_value(value: Any) -> Any:
    if isinstance(value, Selector):
        return value.clone()
    if isinstance(value, tuple) and any(isinstance(v, Selector) for v in value):
        return tuple(_clone_value(v) for v in value)
    if isinstance(value, list) and any(isinstance(v, Selector) for v in value):
        return [_clone_value(v) for v in value]
    return value


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

    def _own_params(self) -> dict[str, Any]:
        """The ``__init__`` parameters as stored (composites add their operands)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The hyper-parameters as given to ``__init__``, as scikit-learn returns them.

        The values are the objects themselves (a backend, an embedder, a nested
        selector). With ``deep=True``, a nested selector's own parameters follow
        as ``name__param`` (a composite's operands as ``selectors__0__k``, ...), so
        that :meth:`set_params` can reach them. :meth:`describe_params` gives the
        JSON description the provenance records.
        """
        params = self._own_params()
        if deep:
            for name, value in list(params.items()):
                for i, nested in _nested_selectors(name, value):
                    for sub, sub_value in nested.get_params(deep=True).items():
                        params[f"{i}__{sub}"] = sub_value
        return params

    def set_params(self, **params: Any) -> Selector:
        """Set parameters in place (``name=value`` or ``nested__name=value``); returns ``self``.

        Values are stored as given and validated when used, as by ``__init__``.
        """
        own = self._own_params()
        nested: dict[str, dict[str, Any]] = {}
        for key, value in params.items():
            name, _, rest = key.partition("__")
            if name not in own:
                raise InvalidParameterError(
                    f"{type(self).__name__} has no parameter {name!r}; it has {sorted(own)}."
                )
            if rest:
                nested.setdefault(name, {})[rest] = value
            else:
                self._store_param(name, value)
        for name, sub_params in nested.items():
            _set_nested(self, name, self._own_params()[name], sub_params)
        return self

    def _store_param(self, name: str, value: Any) -> None:
        setattr(self, name, value)

    def describe_params(self) -> dict[str, Any]:
        """The hyper-parameters described for JSON (what the provenance records)."""
        return {name: _describe(value) for name, value in self._own_params().items()}

    def clone(self, **overrides: Any) -> Selector:
        """A new selector of the same class with the same parameters, some overridden.

        Nested selectors are cloned too; other objects (backends, embedders,
        generators) are shared, not copied. ``sklearn.base.clone(selector)``
        calls this.
        """
        params = self._own_params()
        unknown = sorted(set(overrides) - set(params))
        if unknown:
            raise InvalidParameterError(
                f"{type(self).__name__} has no parameter(s) {unknown}; it has {sorted(params)}."
            )
        params = {name: _clone_value(value) for name, value in params.items()}
        params.update(overrides)
        return self._construct(params)

    def _construct(self, params: dict[str, Any]) -> Selector:
        return type(self)(**params)

    def __sklearn_clone__(self) -> Selector:
        return self.clone()

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
