"""Composition of selectors, as index arithmetic on row positions.

* :class:`Chain` -- each stage selects from the previous stage's subset.
* :class:`Union` -- rows chosen by any operand.
* :class:`Intersection` -- rows chosen by every operand.
* :class:`PerSource` -- per-source quotas (600 from ShareGPT, 400 from FLAN).

Operators are sugar: ``a | b`` is ``Union(a, b)``, ``a & b`` is
``Intersection(a, b)`` and ``a >> b`` is ``Chain(a, b)``.

How ``k`` is reached. Every selector ranks its eligible rows
(:meth:`~sftselect.core.base.Selector.rank_indices`), so a combinator with its own
``k`` ranks the rows by where they stand in the operands' rankings:

* ``Union(..., k=K)`` takes rows by their best rank in any operand (a round
  robin over the operands' rankings), ties to the earlier operand, then the
  earlier row;
* ``Intersection(..., k=K)`` takes rows eligible in every operand by their
  worst rank (the depth at which a row enters every operand's top list), ties
  by the sum of ranks, then the earlier row.

Operands' own ``k`` is then ignored (their thresholds still apply). With
``k=None`` the combinators are plain set operations on what each operand
selects on its own.

Operands are driven through public methods only (:meth:`~sftselect.core.base.Selector.run`,
:meth:`~sftselect.core.base.Selector.full_ranking`, ``get_params``, ``clone``), so
any selector that follows the contract can be an operand. The combinators
declare :attr:`~sftselect.core.base.EngineKind.COMPOSITE` and implement
``rank_pool(pool, rng, limit)`` against a :class:`~sftselect.core.pool.Pool`: the
same code combines operands run in this process (:class:`~sftselect.core.pool.LocalPool`)
or on Ray (:func:`sftselect.distributed.run`), each operand by its own engine kind.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..exceptions import KTooLargeWarning
from .base import EngineKind, RankResult, Selector
from .constraints import K_CONSTRAINTS, InstanceOf, MappingOf, SequenceOf
from .pool import LocalPool, Pool
from .validation import check_columns, check_k, param_error, resolve_k

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = ["Chain", "Intersection", "PerSource", "Union"]


_SELECTOR = InstanceOf(Selector, "a Selector")


#: Array-valued details longer than this are left out of an operand's record
#: (a per-row array such as cluster labels belongs to the operand's own run).
_MAX_DETAIL_SIZE = 1000


def _small_details(extra: Mapping[str, Any]) -> dict[str, Any]:
    """An operand's details without its per-row arrays."""
    out: dict[str, Any] = {}
    for name, value in extra.items():
        size = getattr(value, "size", None) if isinstance(value, np.ndarray) else None
        if isinstance(value, (list, tuple)):
            size = len(value)
        if size is not None and size > _MAX_DETAIL_SIZE:
            out[name] = f"<{size} values, left out>"
        else:
            out[name] = value
    return out


def _operand_record(selector: Selector, seed: Any, selected: int, extra: Mapping[str, Any]):
    """What a combinator records of one operand's run: enough to repeat it."""
    return {
        "selector": type(selector).__name__,
        "seed": seed,
        "selected": selected,
        "details": _small_details(extra),
    }


def _ranks(order: np.ndarray, n: int) -> np.ndarray:
    """rank[i] = place of row i in ``order``; rows absent get n (worse than any)."""
    rank = np.full(n, n, dtype=np.int64)
    rank[order] = np.arange(order.size, dtype=np.int64)
    return rank


class _Composite(Selector):
    """Shared parameter handling for combinators over several selectors."""

    engine_kind = EngineKind.COMPOSITE
    _k_optional = True

    def _own_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"selectors": self.selectors}
        params.update(super()._own_params())
        return params

    def _store_param(self, name: str, value: Any) -> None:
        operands = name == "selectors" and isinstance(value, (list, tuple))
        setattr(self, name, tuple(value) if operands else value)

    def _construct(self, params: dict[str, Any]) -> Selector:
        selectors = params.pop("selectors")
        if isinstance(selectors, (list, tuple)):
            return type(self)(*selectors, **params)
        # not a sequence: stored as given, as any parameter is; check_k refuses it
        return type(self)(**params).set_params(selectors=selectors)

    def _rank(self, dataset: Dataset, rng: np.random.Generator, limit: int | None) -> RankResult:
        return self.rank_pool(LocalPool(dataset), rng, limit)

    def rank_pool(self, pool: Pool, rng: np.random.Generator, limit: int | None) -> RankResult:
        """The ranking of the pool's rows, from the operands' runs on ``pool``: what an
        engine calls on a ``COMPOSITE`` selector, with the pool of its own rows."""
        raise NotImplementedError

    def __repr__(self) -> str:
        inner = ", ".join(repr(s) for s in self.selectors)
        rest = "".join(f", {n}={getattr(self, n)!r}" for n in self._param_names())
        return f"{type(self).__name__}({inner}{rest})"


class Chain(_Composite):
    """Apply selectors in sequence, each to the previous one's subset.

    ``Chain(LengthSelector(k=2000), QualitySelector(k=1000))`` rates only the
    2,000 longest rows. A chain's ranking is its last stage's selection, most
    preferred first; a fractional ``k`` of a stage is a fraction of the rows
    that stage receives.

    Examples
    --------
    >>> from datasets import Dataset
    >>> from sftselect import Chain, ColumnScoreSelector, LengthSelector
    >>> pool = Dataset.from_dict({
    ...     "instruction": ["q"] * 4,
    ...     "output": ["a b c d e f", "a b", "a b c d", "a b c"],
    ...     "score": [3.0, 5.0, 4.5, 5.0],
    ... })
    >>> rule = Chain(ColumnScoreSelector("score", min_score=4.5), LengthSelector(k=2))
    >>> rule.select_indices(pool).tolist()    # the 2 longest among rows rated >= 4.5
    [2, 3]
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "selectors": [SequenceOf(_SELECTOR, min_length=1, noun="selectors")],
    }

    def __init__(self, *selectors: Selector) -> None:
        self.selectors = selectors
        self.k = None

    @classmethod
    def _param_names(cls) -> list[str]:
        return []

    def rank_pool(self, pool: Pool, rng: np.random.Generator, limit: int | None) -> RankResult:
        positions = np.arange(len(pool), dtype=np.int64)
        ranked = positions
        stages = []
        for stage in self.selectors:
            subset = pool if positions.size == len(pool) and not stages else pool.subset(positions)
            selection = subset.run(stage)
            ranked = positions[selection.ranked]
            positions = positions[selection.indices]
            record = _operand_record(stage, selection.seed, int(positions.size), selection.extra)
            stages.append({"n_in": selection.n_input, "n_out": int(positions.size), **record})
        return RankResult(order=ranked, n_eligible=int(ranked.size), extra={"stages": stages})


class _SetCombinator(_Composite):
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "selectors": [SequenceOf(_SELECTOR, min_length=2, noun="selectors")],
        "k": [*K_CONSTRAINTS, None],
    }

    def __init__(self, *selectors: Selector, k: int | float | None = None) -> None:
        self.selectors = selectors
        self.k = k

    def _orders(self, pool: Pool) -> tuple[list[np.ndarray], list[dict[str, Any]]]:
        """Each operand's ranking (its selection with ``k=None``, its full ranking
        otherwise) and the record of its run."""
        orders, records = [], []
        for s in self.selectors:
            if self.k is None:
                sel = pool.run(s)
                order, seed, extra = sel.ranked, sel.seed, sel.extra
            else:
                result, seed = pool.full_ranking(s)
                order, extra = np.asarray(result.order, dtype=np.int64), result.extra
            orders.append(order)
            records.append(_operand_record(s, seed, int(order.size), extra))
        return orders, records

    def _order(self, ranks: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The eligible rows and their order, from each operand's rank of each row."""
        raise NotImplementedError

    def rank_pool(self, pool: Pool, rng: np.random.Generator, limit: int | None) -> RankResult:
        n = len(pool)
        orders, records = self._orders(pool)
        ranks = np.stack([_ranks(o, n) for o in orders])
        rows, order = self._order(ranks, n)
        return RankResult(
            order=order,
            n_eligible=int(rows.size),
            extra={"operand_sizes": [int(o.size) for o in orders], "operands": records},
        )


class Union(_SetCombinator):
    """Rows chosen by any operand; with ``k``, a round robin over their rankings.

    Examples
    --------
    >>> from datasets import Dataset
    >>> from sftselect import LengthSelector, Union
    >>> pool = Dataset.from_dict({"instruction": ["q"] * 4, "output": ["a", "a b c", "a b", "a b c d"]})
    >>> Union(LengthSelector(k=1), LengthSelector(k=1, largest=False)).select_indices(pool).tolist()
    [0, 3]
    """

    def _order(self, ranks: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        best = ranks.min(axis=0)
        first_operand = ranks.argmin(axis=0)
        rows = np.flatnonzero(best < n)
        return rows, rows[np.lexsort((rows, first_operand[rows], best[rows]))]


class Intersection(_SetCombinator):
    """Rows chosen by every operand; with ``k``, ranked by their worst rank."""

    def _order(self, ranks: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
        worst = ranks.max(axis=0)
        total = ranks.sum(axis=0)
        rows = np.flatnonzero(worst < n)
        return rows, rows[np.lexsort((rows, total[rows], worst[rows]))]


class PerSource(_Composite):
    """Per-source quotas: ``base`` selects ``quotas[s]`` rows among the rows of source ``s``.

    Parameters
    ----------
    column : str
        The column naming each row's source.
    quotas : mapping of source value to int or float
        Rows to take from each source: a count, or a fraction in (0, 1] of that
        source's rows. Sources not named are not selected.
    base : Selector
        The selector applied within each source; its ``k`` is replaced by the
        quota (its thresholds still apply).

    The ranking interleaves the sources' selections in proportion to what each
    selected (row ``j`` of source ``s`` at priority ``(j + 0.5) / size_s``).

    Examples
    --------
    >>> from datasets import Dataset
    >>> from sftselect import LengthSelector, PerSource
    >>> pool = Dataset.from_dict({
    ...     "instruction": ["q"] * 6,
    ...     "output": ["x", "x x x", "x x", "y y y y", "y", "y y"],
    ...     "source": ["a", "a", "a", "b", "b", "b"],
    ... })
    >>> PerSource("source", {"a": 2, "b": 1}, base=LengthSelector()).select_indices(pool).tolist()
    [1, 2, 3]
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "column": [str],
        "quotas": [MappingOf(K_CONSTRAINTS, "a non-empty mapping of source value to k")],
        "base": [_SELECTOR],
    }

    def __init__(self, column: str, quotas: Mapping[Any, int | float], base: Selector) -> None:
        self.column = column
        self.quotas = quotas
        self.base = base
        self.k = None
        self.selectors = (base,)

    @classmethod
    def _param_names(cls) -> list[str]:
        return ["column", "quotas", "base"]

    def _own_params(self) -> dict[str, Any]:
        return {"column": self.column, "quotas": self.quotas, "base": self.base}

    def _store_param(self, name: str, value: Any) -> None:
        setattr(self, name, value)
        if name == "base":
            self.selectors = (value,)

    def _construct(self, params: dict[str, Any]) -> Selector:
        return PerSource(**params)

    def __repr__(self) -> str:
        return (
            f"PerSource(column={self.column!r}, quotas={dict(self.quotas)!r}, base={self.base!r})"
        )

    def rank_pool(self, pool: Pool, rng: np.random.Generator, limit: int | None) -> RankResult:
        owner = "PerSource"
        check_columns(pool.column_names, [self.column], owner)
        quotas = {src: check_k(q, f"{owner} (quota of {src!r})") for src, q in self.quotas.items()}
        codes, values = pool.codes(self.column)
        index_of = {v: i for i, v in enumerate(values)}
        parts, priorities, report = [], [], {}
        for src, quota in quotas.items():
            if src not in index_of:
                warnings.warn(
                    f"PerSource: source {src!r} has no rows in column {self.column!r} "
                    f"(values found: {values[:20]}); it contributes nothing.",
                    KTooLargeWarning,
                    stacklevel=4,
                )
                report[str(src)] = {"rows": 0, "quota": resolve_k(quota, 0), "selected": 0}
                continue
            rows = np.flatnonzero(codes == index_of[src])
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", KTooLargeWarning)
                selection = pool.subset(rows).run(_with_k(self.base, quota))
            for w in caught:
                if issubclass(w.category, KTooLargeWarning):
                    continue  # said below, naming the source
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            chosen = rows[selection.ranked]
            wanted = resolve_k(quota, rows.size)
            if chosen.size < wanted:
                warnings.warn(
                    f"PerSource: source {src!r} has {rows.size} rows of which "
                    f"{selection.n_eligible} are eligible, fewer than its quota {quota!r}; it "
                    f"contributes {chosen.size}.",
                    KTooLargeWarning,
                    stacklevel=4,
                )
            parts.append(chosen)
            priorities.append((np.arange(chosen.size) + 0.5) / max(chosen.size, 1))
            report[str(src)] = {
                "rows": int(rows.size),
                "quota": wanted,
                **_operand_record(self.base, selection.seed, int(chosen.size), selection.extra),
            }
        if parts:
            order_all = np.concatenate(parts)
            prio = np.concatenate(priorities)
            source_idx = np.concatenate([np.full(p.size, i) for i, p in enumerate(parts)])
            order = order_all[np.lexsort((source_idx, prio))]
        else:
            order = np.empty(0, dtype=np.int64)
        return RankResult(order=order, n_eligible=int(order.size), extra={"sources": report})


def _with_k(selector: Selector, k: int | float) -> Selector:
    """``selector`` asked for ``k`` rows: its ``k`` replaced, or, for a :class:`Chain`
    (which has no ``k`` of its own), the ``k`` of its last stage."""
    if "k" in selector.get_params(deep=False):
        return selector.clone(k=k)
    if isinstance(selector, Chain) and selector.selectors:
        *head, last = selector.selectors
        return Chain(*head, _with_k(last, k))
    raise param_error(
        "PerSource",
        "base",
        "a selector with a 'k' parameter, or a Chain whose last stage has one",
        selector,
    )
