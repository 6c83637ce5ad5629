"""Parameter checks shared by every selector, with one message template.

Messages follow scikit-learn's form: "The 'k' parameter of LengthSelector must
be a positive int or a float in (0, 1]. Got -3 instead."
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from ..exceptions import InvalidParameterError, MissingColumnError


def param_error(owner: str, name: str, expected: str, got: Any) -> InvalidParameterError:
    """Build the library's standard invalid-parameter error."""
    return InvalidParameterError(
        f"The {name!r} parameter of {owner} must be {expected}. Got {got!r} instead."
    )


def check_k(k: Any, owner: str, *, allow_none: bool = False) -> int | float | None:
    """Validate ``k``: a positive int, a float in (0, 1], or None when allowed."""
    expected = "a positive int or a float in (0, 1]" + (" or None" if allow_none else "")
    if k is None:
        if allow_none:
            return None
        raise param_error(owner, "k", expected, k)
    if isinstance(k, bool):
        raise param_error(owner, "k", expected, k)
    if isinstance(k, numbers.Integral):
        if k <= 0:
            raise param_error(owner, "k", expected, k)
        return int(k)
    if isinstance(k, numbers.Real):
        k = float(k)
        if not (0.0 < k <= 1.0) or math.isnan(k):
            raise param_error(owner, "k", expected, k)
        return k
    raise param_error(owner, "k", expected, k)


def resolve_k(k: int | float, n: int) -> int:
    """Turn a validated ``k`` into a row count for ``n`` rows (not clipped to ``n``).

    A fraction is rounded up, as scikit-learn's ``train_test_split`` does for a
    fractional size: ``k=0.1`` of 15 rows is 2 rows.
    """
    if isinstance(k, float):
        return math.ceil(k * n - 1e-9)
    return int(k)


def check_random_state(random_state: Any, owner: str) -> np.random.Generator:
    """Resolve ``random_state`` (None, int or Generator) to a fresh Generator.

    An int gives the same stream every call; a Generator is used as it is (its
    state advances); None draws fresh OS entropy. Never the global NumPy state.
    """
    if random_state is None:
        return np.random.default_rng()
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if random_state < 0:
            raise param_error(
                owner, "random_state", "a non-negative int, a numpy Generator or None", random_state
            )
        return np.random.default_rng(int(random_state))
    raise param_error(
        owner, "random_state", "a non-negative int, a numpy Generator or None", random_state
    )


def check_choice(value: Any, name: str, owner: str, choices: Sequence[Any]) -> Any:
    """Validate that ``value`` is one of ``choices``."""
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise param_error(owner, name, f"one of {options}", value)
    return value


def check_optional_real(value: Any, name: str, owner: str) -> float | None:
    """Validate an optional finite real number (thresholds)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise param_error(owner, name, "a finite number or None", value)
    return float(value)


def check_positive_real(
    value: Any, name: str, owner: str, *, allow_none: bool = False
) -> float | None:
    """Validate a positive finite number (or None when allowed)."""
    expected = "a positive finite number" + (" or None" if allow_none else "")
    if value is None and allow_none:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value <= 0
    ):
        raise param_error(owner, name, expected, value)
    return float(value)


def check_non_negative_real(value: Any, name: str, owner: str) -> float:
    """Validate a non-negative finite number."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value < 0
    ):
        raise param_error(owner, name, "a non-negative finite number", value)
    return float(value)


def check_non_negative_int(value: Any, name: str, owner: str) -> int:
    """Validate a non-negative int."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise param_error(owner, name, "a non-negative int", value)
    return int(value)


def check_positive_int(value: Any, name: str, owner: str) -> int:
    """Validate a positive int."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise param_error(owner, name, "a positive int", value)
    return int(value)


def check_columns(column_names: Iterable[str], required: Iterable[str], owner: str) -> None:
    """Raise :class:`MissingColumnError` naming what is missing and what was found."""
    found = list(column_names)
    missing = [c for c in required if c not in found]
    if missing:
        raise MissingColumnError(
            f"{owner} needs column(s) {missing}, which the dataset does not have. "
            f"Columns found: {found}."
        )


def check_dataset(dataset: Any, owner: str) -> None:
    """Raise a clear TypeError unless ``dataset`` is a ``datasets.Dataset``."""
    from datasets import Dataset

    if not isinstance(dataset, Dataset):
        hint = ""
        if type(dataset).__name__ == "DatasetDict":
            hint = " Pick a split first, e.g. dataset['train']."
        raise TypeError(f"{owner} takes a datasets.Dataset; got {type(dataset).__name__}.{hint}")
