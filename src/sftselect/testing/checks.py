"""The selector conformance checks, for the library's selectors and for yours.

:func:`check_selector` runs every check on one selector and raises
``AssertionError`` naming the check and what it saw; :func:`selector_checks`
yields the same checks one by one, to parametrize a test with (as
scikit-learn's ``parametrize_with_checks`` does)::

    import pytest
    from sftselect.testing import check_selector, selector_checks

    def test_my_selector_conforms():
        check_selector(MySelector(k=10, random_state=0))

    @pytest.mark.parametrize("check", selector_checks(MySelector(k=10)), ids=lambda c: c.__name__)
    def test_each_check(check):
        check()

What is checked, on small Alpaca-style datasets (``instruction``, ``input``,
``output``, a ``source`` and a ``score`` column; ties, empty texts, one row,
no rows) or on the ones you pass:

* parameters: ``get_params(deep=False)`` holds exactly ``__init__``'s
  parameters, stored as given; ``clone()`` and ``set_params`` round-trip;
* declared constraints (:func:`check_parameter_constraints`):
  ``_parameter_constraints`` names exactly those parameters, the defaults
  satisfy it, and an invalid value of each parameter (made from its
  constraints) raises :class:`~sftselect.exceptions.InvalidParameterError`
  naming it before any work, leaving data and parameters unchanged;
* the selection: unique int64 positions in ascending order, inside the data;
  ``ranked`` holds the same rows; exactly ``min(k, eligible)`` rows when the
  selector has a ``k``; ``select(ds)`` is ``ds.select(indices)``;
  ``rank_indices(ds)[:k]`` sorted is the selection;
* determinism: the same ``random_state`` gives the same rows (a selector with
  ``random_state=None`` is checked with 0);
* the input is never mutated (fingerprint and rows);
* edge cases: no rows gives an empty int64 selection; ``k`` larger than the
  data warns :class:`~sftselect.exceptions.KTooLargeWarning` and returns every
  eligible row; ``k=1`` gives one row;
* the engine contract: ``engine_kind`` is an
  :class:`~sftselect.core.base.EngineKind`; ``check_k``, ``resolve_seed``,
  ``rank`` (on only the columns ``input_columns()`` names, when it names some)
  and ``build_selection`` give what ``run`` gives; and the declaration holds on
  one machine: a ``ROW_SCORE`` selector scores the two halves of a dataset as it
  scores the whole, a ``VECTORS_THEN_GLOBAL`` one embeds them so and its
  ``rank_vectors(embed(ds))`` is its ranking.

The library's own test suite runs these on every selector it exports.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.base import EngineKind, Selector
from ..core.constraints import constraint_errors, invalid_values
from ..core.validation import resolve_k
from ..exceptions import InvalidParameterError, KTooLargeWarning

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = ["check_parameter_constraints", "check_selector", "default_datasets", "selector_checks"]

KS: tuple[int | float, ...] = (1, 3, 0.5)
SEEDS: tuple[int, ...] = (0, 1)


def default_datasets() -> list[Dataset]:
    """The small datasets the checks run on: varied lengths, ties, empty texts, sources."""
    from datasets import Dataset

    words = ["alpha", "beta", "gamma delta", "", "epsilon zeta eta", "theta"]
    rows = [
        {
            "instruction": f"Question {i}: {words[i % len(words)]}?",
            "input": "" if i % 3 else f"context {i}",
            "output": " ".join(["word"] * ((i * 7) % 11)),
            "source": ("flan", "dolly", "sharegpt")[i % 3],
            "score": float((i * 5) % 6),
        }
        for i in range(24)
    ]
    return [Dataset.from_list(rows), Dataset.from_list(rows[:1]), Dataset.from_list(rows[:5])]


def _fail(check: str, selector: Selector, message: str) -> AssertionError:
    return AssertionError(f"{check} failed for {selector!r}: {message}")


def _with(selector: Selector, **params: Any) -> Selector:
    """A clone of ``selector`` with ``params`` set where it has them."""
    own = selector.get_params(deep=False)
    return selector.clone(**{name: value for name, value in params.items() if name in own})


def _seeded(selector: Selector, seed: int) -> Selector:
    return _with(selector, random_state=seed)


def _quiet_run(selector: Selector, dataset: Dataset):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KTooLargeWarning)
        return selector.run(dataset)


def _has_k(selector: Selector) -> bool:
    return "k" in selector.get_params(deep=False)


def check_parameters(selector: Selector) -> None:
    """get_params holds __init__'s parameters as stored; clone and set_params round-trip."""
    name = "check_parameters"
    params = selector.get_params(deep=False)
    signature = inspect.signature(type(selector).__init__).parameters
    expected = {
        p for p in signature if p != "self" and signature[p].kind != signature[p].VAR_KEYWORD
    }
    if set(params) != expected:
        raise _fail(
            name,
            selector,
            f"get_params(deep=False) gives {sorted(params)}, __init__ takes {sorted(expected)}",
        )
    rebuilt = selector.clone().get_params(deep=False)
    for param, value in params.items():
        if not isinstance(value, (Selector, tuple, list)) and rebuilt[param] is not value:
            raise _fail(name, selector, f"{param!r} is not stored as given under its own name")
    copy = selector.clone()
    if copy is selector or repr(copy) != repr(selector):
        raise _fail(name, selector, f"clone() gives {copy!r}")
    if copy.describe_params() != selector.describe_params():
        raise _fail(name, selector, "clone() changed describe_params()")
    if copy.set_params(**copy.get_params(deep=False)) is not copy or repr(copy) != repr(selector):
        raise _fail(name, selector, "set_params(**get_params()) changed the selector")


def _no_ranking(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the ranking started")


def check_parameter_constraints(selector: Selector, dataset: Dataset) -> None:
    """``_parameter_constraints`` declares exactly the parameters; the defaults and the
    selector's values satisfy them; an invalid value of each parameter, made from its
    constraints, makes ``select_indices`` raise ``InvalidParameterError`` ("The '<name>'
    parameter of <Class> must be ...") before the ranking starts (so before any model is
    loaded or file written), leaving the dataset and the parameters as they were."""
    name = "check_parameter_constraints"
    owner = type(selector).__name__
    declared = getattr(type(selector), "_parameter_constraints", {})
    params = selector.get_params(deep=False)
    if set(declared) != set(params):
        raise _fail(
            name,
            selector,
            f"_parameter_constraints declares {sorted(declared)}; the parameters are "
            f"{sorted(params)} (undeclared: {sorted(set(params) - set(declared))}, "
            f"not a parameter: {sorted(set(declared) - set(params))})",
        )
    signature = inspect.signature(type(selector).__init__).parameters
    # a None default that the constraints refuse stands for "required" (TargetedSelector's
    # targets): only the other defaults must satisfy their constraints
    defaults = {
        p: v.default
        for p, v in signature.items()
        if v.default is not v.empty
        and not (
            v.default is None
            and p in declared
            and constraint_errors("", {p: declared[p]}, {p: None})
        )
    }
    for where, values in (("default", defaults), ("value", params)):
        errors = constraint_errors(owner, declared, values)
        if errors:
            raise _fail(name, selector, f"a {where} breaks its constraint: {errors[0]}")
    fingerprint = dataset._fingerprint
    for param, constraints in declared.items():
        bad_values = invalid_values(constraints)
        if not bad_values:
            raise _fail(name, selector, f"no invalid value of {param!r} can be made")
        for bad in bad_values:
            made = selector.clone(**{param: bad})
            before = made.get_params(deep=False)
            made._rank = _no_ranking  # type: ignore[method-assign]
            try:
                made.select_indices(dataset)
            except InvalidParameterError as exc:
                message = str(exc)
            except Exception as exc:  # reported: the check names what came instead
                message = str(exc) if isinstance(exc, AssertionError) else repr(exc)
            else:
                message = "no error"
            if not message.startswith(
                (f"The {param!r} parameter of {owner} must be", f"The '{param}[")
            ):
                raise _fail(name, selector, f"{param}={bad!r} gave {message!r}")
            after = made.get_params(deep=False)
            if any(after[p] is not v for p, v in before.items()):
                raise _fail(name, selector, f"{param}={bad!r} changed the parameters")
            if dataset._fingerprint != fingerprint:
                raise _fail(name, selector, f"{param}={bad!r} changed the dataset")


def check_selection(selector: Selector, dataset: Dataset, k: int | float, seed: int) -> None:
    """One run's contract: positions, ranking, size, select(), determinism, unmutated input."""
    name = f"check_selection(k={k}, random_state={seed}, rows={len(dataset)})"
    n = len(dataset)
    before_fingerprint = dataset._fingerprint
    before_rows = dataset.to_list()
    made = _seeded(_with(selector, k=k), seed)
    selection = _quiet_run(made, dataset)
    idx = selection.indices
    if not isinstance(idx, np.ndarray) or idx.dtype != np.int64 or idx.ndim != 1:
        raise _fail(name, made, f"indices must be a 1-D int64 array, got {idx!r}")
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise _fail(name, made, f"indices outside 0..{n - 1}: {idx.tolist()}")
    if np.any(np.diff(idx) <= 0):
        raise _fail(name, made, f"indices must be unique and ascending: {idx.tolist()}")
    if sorted(selection.ranked.tolist()) != idx.tolist():
        raise _fail(name, made, "ranked does not hold the selected rows")
    if (
        _has_k(made)
        and made.k is not None
        and idx.size != min(resolve_k(k, n), selection.n_eligible)
    ):
        raise _fail(
            name, made, f"{idx.size} rows for k={k} of {n} ({selection.n_eligible} eligible)"
        )
    again = _quiet_run(_seeded(_with(selector, k=k), seed), dataset).indices
    if not np.array_equal(idx, again):
        raise _fail(name, made, f"the same random_state gave {idx.tolist()} then {again.tolist()}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KTooLargeWarning)
        subset = _seeded(_with(selector, k=k), seed).select(dataset)
    if subset.to_list() != [before_rows[i] for i in idx]:
        raise _fail(name, made, "select(ds) is not ds.select(indices)")
    if dataset._fingerprint != before_fingerprint or dataset.to_list() != before_rows:
        raise _fail(name, made, "the input dataset was mutated")
    if _has_k(made) and made.k is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", KTooLargeWarning)
            ranking = _seeded(_with(selector, k=k), seed).rank_indices(dataset)
        if not np.array_equal(np.sort(ranking[: idx.size]), idx):
            raise _fail(name, made, "sorted(rank_indices(ds)[:k]) is not the selection")


def _halves(dataset: Dataset) -> tuple[Dataset, Dataset]:
    cut = len(dataset) // 2
    return dataset.select(range(cut)), dataset.select(range(cut, len(dataset)))


def _same_floats(a: Any, b: Any) -> bool:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return a.shape == b.shape and bool(np.allclose(a, b, rtol=1e-5, atol=1e-7, equal_nan=True))


def _only(dataset: Dataset, columns: list[str]) -> Dataset:
    """The rows with only ``columns``, as an engine gathers them (no column: one of nulls)."""
    if columns:
        return dataset.select_columns(columns)
    import pyarrow as pa
    from datasets import Dataset

    return Dataset(pa.table({"__sftselect_placeholder": pa.nulls(len(dataset))}))


def _mask(eligible: Any, size: int) -> np.ndarray:
    return np.ones(size, dtype=bool) if eligible is None else np.asarray(eligible, dtype=bool)


def check_engine_kind(selector: Selector, dataset: Dataset) -> None:
    """The declared engine kind holds, and the engine's public calls give what run gives."""
    name = f"check_engine_kind(rows={len(dataset)})"
    made = _seeded(_with(selector, k=KS[1]), 0)
    kind = getattr(made, "engine_kind", None)
    if not isinstance(kind, EngineKind):
        raise _fail(name, made, f"engine_kind must be an EngineKind, got {kind!r}")
    n = len(dataset)
    columns = made.input_columns()
    view = dataset
    if columns is not None and kind in (EngineKind.SEEDED_DRAW, EngineKind.WHOLE_DATASET):
        view = _only(dataset, list(columns))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", KTooLargeWarning)
        expected = made.run(dataset)
        k = made.check_k()
        rng, seed = made.resolve_seed()
        limit = None if k is None else min(resolve_k(k, n), n)
        got = made.build_selection(made.rank(view, rng, limit), n=n, k=k, seed=seed)
    if got.ranked.tolist() != expected.ranked.tolist():
        where = "" if view is dataset else f" on the columns input_columns() names ({columns})"
        raise _fail(
            name, made, f"check_k, resolve_seed, rank{where} and build_selection differ from run"
        )
    if n < 2:
        return  # the declaration checks below compare two halves
    if kind is EngineKind.ROW_SCORE:
        from ..selectors.score import ScoreSelector

        if not isinstance(made, ScoreSelector):
            raise _fail(name, made, "declares ROW_SCORE but is not a ScoreSelector")
        whole = made.score_with_rules(dataset)
        parts = [made.score_with_rules(half) for half in _halves(dataset)]
        if not _same_floats(whole.scores, np.concatenate([p.scores for p in parts])):
            raise _fail(name, made, "declares ROW_SCORE but scores rows differently in two halves")
        masks = np.concatenate([_mask(p.eligible, len(p.scores)) for p in parts])
        if not np.array_equal(_mask(whole.eligible, len(whole.scores)), masks):
            raise _fail(name, made, "declares ROW_SCORE but its eligibility rule is not per row")
    if kind is EngineKind.VECTORS_THEN_GLOBAL:
        embed = getattr(made, "embed", None)
        rank_vectors = getattr(made, "rank_vectors", None)
        if not callable(embed) or not callable(rank_vectors):
            raise _fail(name, made, "declares VECTORS_THEN_GLOBAL without embed and rank_vectors")
        vectors = embed(dataset)
        halves = [embed(half) for half in _halves(dataset)]
        if not _same_floats(vectors, np.concatenate(halves)):
            raise _fail(
                name, made, "declares VECTORS_THEN_GLOBAL but embeds rows differently in halves"
            )
        rng_a, _ = made.resolve_seed()
        rng_b, _ = made.resolve_seed()
        split = rank_vectors(vectors, rng_a, limit).order
        if (
            np.asarray(split).tolist()
            != np.asarray(made.rank(dataset, rng_b, limit).order).tolist()
        ):
            raise _fail(name, made, "rank_vectors(embed(ds)) is not its ranking of ds")
    if kind is EngineKind.DUPLICATE_GROUPS:
        _check_duplicate_groups(name, made, dataset, limit)
    if kind is EngineKind.COMPOSITE:
        operands = getattr(made, "selectors", None)
        if not isinstance(operands, tuple) or not all(isinstance(s, Selector) for s in operands):
            raise _fail(name, made, "declares COMPOSITE without a tuple of selectors")


def _check_duplicate_groups(name: str, made: Selector, dataset: Dataset, limit: Any) -> None:
    """Keys and pair values per row (two halves give the whole's), and ``_rank`` is the
    steps an engine runs: classes and buckets, the measure, the keep priority, resolve."""
    import pyarrow as pa

    from ..selectors.dedup.grouping import candidates_in_one_process

    methods = ("duplicate_keys", "pair_values", "pair_measure", "keep_priority")
    missing = [m for m in (*methods, "resolve_duplicates") if not callable(getattr(made, m, None))]
    if missing:
        raise _fail(name, made, f"declares DUPLICATE_GROUPS without {', '.join(missing)}")
    keys = made.duplicate_keys(dataset)  # type: ignore[attr-defined]
    parts = [made.duplicate_keys(half) for half in _halves(dataset)]  # type: ignore[attr-defined]
    if not pa.concat_tables(parts).equals(keys):
        raise _fail(name, made, "declares DUPLICATE_GROUPS but keys rows differently in halves")
    values = made.pair_values(dataset)  # type: ignore[attr-defined]
    halves = [made.pair_values(half) for half in _halves(dataset)]  # type: ignore[attr-defined]
    if not pa.concat_arrays(halves).equals(values):
        raise _fail(name, made, "declares DUPLICATE_GROUPS but its pair values are not per row")
    rng_a, _ = made.resolve_seed()
    rng_b, _ = made.resolve_seed()
    priority = made.keep_priority(  # type: ignore[attr-defined]
        len(dataset), dataset.column_names, lambda s: s.rank_indices(dataset), rng_a
    )
    steps = made.resolve_duplicates(  # type: ignore[attr-defined]
        candidates_in_one_process(keys),
        lambda a, b: made.pair_measure(values, a, b),  # type: ignore[attr-defined]
        priority,
    )
    ranked = made.rank(dataset, rng_b, limit)
    if np.asarray(steps.order).tolist() != np.asarray(ranked.order).tolist():
        raise _fail(name, made, "the DUPLICATE_GROUPS steps do not give its ranking")


def check_empty_input(selector: Selector, dataset: Dataset) -> None:
    """No rows in, an empty int64 selection out."""
    made = _seeded(_with(selector, k=5), 0)
    idx = _quiet_run(made, dataset.select([])).indices
    if idx.dtype != np.int64 or idx.size:
        raise _fail("check_empty_input", made, f"gave {idx!r}")


def check_k_too_large(selector: Selector, dataset: Dataset) -> None:
    """k above the rows warns KTooLargeWarning and returns every eligible row."""
    made = _seeded(_with(selector, k=len(dataset) + 5), 0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", KTooLargeWarning)
        selection = made.run(dataset)
    if not any(issubclass(w.category, KTooLargeWarning) for w in caught):
        raise _fail("check_k_too_large", made, "no KTooLargeWarning")
    if selection.indices.size != selection.n_eligible:
        raise _fail("check_k_too_large", made, "did not return every eligible row")


def check_k_one(selector: Selector, dataset: Dataset) -> None:
    """k=1 gives exactly one row (when a row is eligible)."""
    made = _seeded(_with(selector, k=1), 0)
    selection = _quiet_run(made, dataset)
    if selection.indices.size != min(1, selection.n_eligible):
        raise _fail("check_k_one", made, f"gave {selection.indices.size} rows")


def selector_checks(
    selector: Selector, *, datasets: Sequence[Dataset] | None = None
) -> Iterator[Callable[[], None]]:
    """Each check as a callable taking no argument (its ``__name__`` names it)."""
    if not isinstance(selector, Selector):
        raise TypeError(f"check_selector needs a Selector instance; got {selector!r}.")
    data = list(datasets) if datasets is not None else default_datasets()
    largest = max(data, key=len)

    def named(function: Callable[..., None], label: str, *args: Any) -> Callable[[], None]:
        check = functools.partial(function, selector, *args)
        check.__name__ = label  # type: ignore[attr-defined]
        return check

    yield named(check_parameters, "check_parameters")
    yield named(check_parameter_constraints, "check_parameter_constraints", data[0])
    ks = KS if _has_k(selector) else (selector.k,)
    for i, dataset in enumerate(data):
        for k in ks:
            for seed in SEEDS:
                yield named(
                    check_selection, f"check_selection[data{i}-k{k}-seed{seed}]", dataset, k, seed
                )
    yield named(check_engine_kind, "check_engine_kind", largest)
    yield named(check_empty_input, "check_empty_input", largest)
    if _has_k(selector):
        yield named(check_k_too_large, "check_k_too_large", largest)
        yield named(check_k_one, "check_k_one", largest)


def check_selector(selector: Selector, *, datasets: Sequence[Dataset] | None = None) -> None:
    """Run every conformance check on ``selector``; raise AssertionError at the first failure."""
    for check in selector_checks(selector, datasets=datasets):
        check()
