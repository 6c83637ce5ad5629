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

Composites and engines (:mod:`sftselect.distributed`) drive a selector through
public methods only -- :meth:`Selector.check_k`, :meth:`Selector.resolve_seed`,
:meth:`Selector.rank`, :meth:`Selector.full_ranking`,
:meth:`Selector.build_selection`, :meth:`Selector.input_columns`,
:meth:`Selector.check_portable` -- and learn what a selector needs from an
engine from its :attr:`Selector.engine_kind` (an :class:`EngineKind`).
"""

from __future__ import annotations

import abc
import inspect
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..exceptions import InvalidParameterError, KTooLargeWarning
from .constraints import validate_params
from .kinds import EngineKind
from .results import RankResult, Selection
from .validation import check_dataset, check_k, check_random_state, resolve_k

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = ["EngineKind", "RankResult", "Selection", "Selector"]


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
    """Base class of every selector: the contract users, composites and engines rely on.

    A selector keeps its hyper-parameters as given to ``__init__`` (explicit
    keyword parameters, each stored under its own name, ``k`` included) and
    validates them when used, as scikit-learn does. Data goes to the methods:
    :meth:`rank_indices`, :meth:`select_indices`, :meth:`select`, :meth:`run`.

    **Writing a selector.** Define ``__init__`` (store each parameter as given,
    under its own name) and implement one hook,
    ``_rank(dataset, rng, limit) -> RankResult``: the eligible row positions of
    ``dataset``, most preferred first (at least ``limit`` of them; every
    eligible row when ``limit`` is None), and how many rows are eligible.
    Draw only from ``rng``. The base class derives the rest. Declare, as class
    attributes:

    * ``_parameter_constraints`` -- what each ``__init__`` parameter may hold, one
      entry per parameter, scikit-learn style (:mod:`sftselect.core.constraints`);
      :meth:`check_k` validates them all before any work. A subclass extends its
      parent's: ``{**Parent._parameter_constraints, "x": [...]}``. Check in
      ``_rank`` only what a declaration cannot say (rules across parameters, or
      against the data);
    * ``engine_kind`` -- an :class:`EngineKind`, what an engine must do to run
      the selector elsewhere than in one process (default ``WHOLE_DATASET``,
      which any selector satisfies and which does not scale);
    * ``_uses_random_state = True`` when ``_rank`` draws from ``rng`` (the seed
      then goes into the :class:`Selection` and the provenance record);
    * ``_k_optional = True`` when ``k=None`` is allowed (a threshold decides).

    A selector that scores each row from that row alone subclasses
    :class:`~sftselect.selectors.score.ScoreSelector` and implements ``_score``
    instead; it inherits ``ROW_SCORE`` and runs on Ray as it is.
    :func:`sftselect.testing.check_selector` checks a selector against this
    contract.

    **The extension contract.** Composites (:mod:`sftselect.core.compose`) and
    engines (:mod:`sftselect.distributed`) call these public methods, and no
    private one, so they work on any selector that follows the contract:

    * :meth:`check_k` -- every parameter validated against its declared
      constraints, and ``k`` resolved;
    * :meth:`resolve_seed` -- the generator to pass to :meth:`rank`, and the
      seed record;
    * :meth:`rank` -- the ranking of some rows, given a generator and a limit
      (calls ``_rank``);
    * :meth:`full_ranking` -- every eligible row ranked (``k`` ignored) and the
      seed record: what a composite asks of an operand;
    * :meth:`build_selection` -- the :class:`Selection` of a ranking over
      ``n`` rows (``k`` resolved, :class:`~sftselect.exceptions.KTooLargeWarning`);
    * :meth:`input_columns` -- the columns the ranking reads (None: any);
    * :meth:`check_portable` -- refuse parameters that cannot be rebuilt in
      another process;
    * :attr:`engine_kind` -- the declaration an engine dispatches on; each kind
      names the further public methods it promises (see :class:`EngineKind`).

    :meth:`run` is exactly ``check_k``, ``resolve_seed``, ``rank`` with
    ``limit = min(resolve_k(k, n), n)``, then ``build_selection``.

    Examples
    --------
    A seeded random sample of the rows whose instruction asks a question. Its
    ranking depends on the row positions, the generator and one column, so it
    declares ``SEEDED_DRAW`` and names that column:

    >>> import numpy as np
    >>> from datasets import Dataset
    >>> from sftselect import RankResult, Selector
    >>> from sftselect.core.base import EngineKind
    >>> from sftselect.core.constraints import K_CONSTRAINTS
    >>> class RandomQuestions(Selector):
    ...     # k rows drawn at random among those whose instruction ends with "?"
    ...     engine_kind = EngineKind.SEEDED_DRAW  # positions, a generator, one column
    ...     _uses_random_state = True  # the provenance records the seed
    ...     _parameter_constraints = {"k": K_CONSTRAINTS, "random_state": ["random_state"]}
    ...
    ...     def __init__(self, k=10, *, random_state=None):
    ...         self.k = k  # stored as given; checked when used
    ...         self.random_state = random_state
    ...
    ...     def input_columns(self):
    ...         return ["instruction"]
    ...
    ...     def _rank(self, dataset, rng, limit):
    ...         asks = [text.rstrip().endswith("?") for text in dataset["instruction"]]
    ...         rows = np.flatnonzero(np.array(asks, dtype=bool))
    ...         return RankResult(order=rng.permutation(rows), n_eligible=int(rows.size))
    >>> pool = Dataset.from_dict({
    ...     "instruction": ["Why is the sky blue?", "List three fruits.", "What is 2 + 2?",
    ...                     "Who wrote Hamlet?", "Summarise this text."],
    ...     "output": ["Scattering.", "Apple, pear, fig.", "4", "Shakespeare.", "Done."],
    ... })
    >>> RandomQuestions(k=2, random_state=0).select_indices(pool).tolist()
    [0, 3]
    >>> RandomQuestions(random_state=0).rank_indices(pool).tolist()  # every question
    [3, 0, 2]
    >>> RandomQuestions(k=-3).select_indices(pool)
    Traceback (most recent call last):
    ...
    sftselect.exceptions.InvalidParameterError: The 'k' parameter of RandomQuestions must be a positive int or a float in (0, 1]. Got -3 instead.
    >>> either = RandomQuestions(k=2, random_state=0) | RandomQuestions(k=2, random_state=1)
    >>> either.select_indices(pool).tolist()  # composes like any selector
    [0, 2, 3]

    What an engine does with it (what :meth:`run` does in one process), here
    with only the column it reads:

    >>> selector = RandomQuestions(k=2, random_state=0)
    >>> k = selector.check_k()
    >>> rng, seed = selector.resolve_seed()
    >>> result = selector.rank(pool.select_columns(selector.input_columns()), rng, limit=2)
    >>> selection = selector.build_selection(result, n=len(pool), k=k, seed=seed)
    >>> selection.indices.tolist(), selection.seed
    ([0, 3], 0)

    The conformance checks a library selector passes, run on this one:

    >>> from sftselect.testing import check_selector
    >>> check_selector(RandomQuestions(k=3, random_state=0))
    """

    #: What an engine must do to run this selector (see :class:`EngineKind`).
    engine_kind: ClassVar[EngineKind] = EngineKind.WHOLE_DATASET
    _k_optional: ClassVar[bool] = False
    _uses_random_state: ClassVar[bool] = False
    #: What each parameter may hold (see :mod:`sftselect.core.constraints`): one entry
    #: per ``__init__`` parameter, checked by :meth:`check_k` before any work.
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {}

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

    # -- the extension contract: what composites and engines call ---------------
    def check_k(self) -> int | float | None:
        """Every parameter validated against ``_parameter_constraints``, and ``k``
        resolved (None only where the selector allows it), before any data.

        The single place parameters are checked: :meth:`run`, :meth:`full_ranking`
        (so :meth:`select_indices`, :meth:`select`, :meth:`rank_indices`) and the
        engines call it before they start work. A subclass may extend it with
        rules a declaration cannot state (a
        :class:`~sftselect.selectors.score.ScoreSelector` needs ``k`` or a bound).
        """
        self._validate_params()
        return check_k(self.k, type(self).__name__, allow_none=self._k_optional)  # type: ignore[attr-defined]

    def _validate_params(self) -> None:
        """Every parameter against ``_parameter_constraints`` (the first bad one raises
        :class:`~sftselect.exceptions.InvalidParameterError`)."""
        validate_params(
            type(self).__name__, self._parameter_constraints, self.get_params(deep=False)
        )

    def resolve_seed(self) -> tuple[np.random.Generator, Any]:
        """``random_state`` resolved to a Generator, and a record of the seed used.

        An int gives ``default_rng(seed)`` and records the int; a Generator is
        used as it is (its state recorded); None draws fresh entropy (recorded).
        """
        random_state = getattr(self, "random_state", None)
        owner = type(self).__name__
        if random_state is None:
            entropy = np.random.SeedSequence().entropy
            return np.random.default_rng(entropy), {"entropy": str(entropy)}
        if isinstance(random_state, np.random.Generator):
            state = random_state.bit_generator.state
            return random_state, {"generator_state": _describe(state)}
        return check_random_state(random_state, owner), random_state

    def rank(
        self, dataset: Dataset, rng: np.random.Generator, limit: int | None = None
    ) -> RankResult:
        """The ranking of the rows of ``dataset``, drawing from ``rng``.

        ``limit`` is how many leading entries the caller needs (None: every
        eligible row). This calls the ``_rank`` hook; an engine calls it with the
        generator from :meth:`resolve_seed` and the rows it gathered.
        """
        return self._rank(dataset, rng, limit)

    def full_ranking(self, dataset: Dataset) -> tuple[RankResult, Any]:
        """The ranking of every eligible row (``k`` ignored) and the seed record it
        used (None for a selector that draws nothing): what a composite asks of
        an operand."""
        check_dataset(dataset, type(self).__name__)
        self.check_k()
        rng, seed = self.resolve_seed()
        result = self._rank(dataset, rng, None)
        return result, seed if self._uses_random_state else None

    def build_selection(
        self,
        result: RankResult,
        *,
        n: int,
        k: int | float | None,
        seed: Any,
        fingerprint: str | None = None,
        dataset: Dataset | None = None,
        stacklevel: int = 2,
    ) -> Selection:
        """The :class:`Selection` of a ranking over ``n`` rows.

        ``k`` (from :meth:`check_k`) is resolved against ``n``; when fewer rows
        are eligible a :class:`~sftselect.exceptions.KTooLargeWarning` is raised
        (at ``stacklevel``) and the eligible rows are returned; the positions are
        sorted. ``seed`` is the record from :meth:`resolve_seed` (kept only for a
        selector that draws). Shared by :meth:`run` and the engines, so a
        selection made elsewhere is the same record.
        """
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

    def input_columns(self) -> list[str] | None:
        """The columns the ranking reads, or None when it may read any.

        An engine that gathers rows into one process (``SEEDED_DRAW``,
        ``WHOLE_DATASET``) gathers only these columns when the selector names
        them; :meth:`rank` then sees a dataset holding just those columns.
        """
        return None

    def check_portable(self) -> None:
        """Raise :class:`~sftselect.exceptions.InvalidParameterError` when a parameter
        cannot do its job once the selector is rebuilt in other processes.

        Engines send a selector to their workers as its class and parameters
        and call this first. The default accepts every parameter; a selector
        whose parameter holds state that must be shared across processes (an
        in-memory reply cache, vectors aligned with the whole dataset) refuses it.
        """
        return None

    def run(self, dataset: Dataset) -> Selection:
        """Select from ``dataset`` and return indices, scores and provenance."""
        check_dataset(dataset, type(self).__name__)
        k = self.check_k()
        n = len(dataset)
        rng, seed = self.resolve_seed()
        limit = None if k is None else min(resolve_k(k, n), n)
        result = self._rank(dataset, rng, limit)  # what rank() calls; one frame less for warnings
        return self.build_selection(
            result,
            n=n,
            k=k,
            seed=seed,
            fingerprint=getattr(dataset, "_fingerprint", None),
            dataset=dataset,
            stacklevel=4,
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
        return np.asarray(self.full_ranking(dataset)[0].order, dtype=np.int64)

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
