"""Declared parameter constraints, checked in one place, scikit-learn style.

A selector declares, once, what each ``__init__`` parameter may hold::

    _parameter_constraints = {
        "k": K_CONSTRAINTS,
        "num_proc": [Interval(numbers.Integral, 1, None, closed="left")],
        "turns": [Options("last", "first")],
        "random_state": ["random_state"],
    }

and :class:`~sftselect.core.base.Selector` calls :func:`validate_params` when a
public entry point is reached (:meth:`~sftselect.core.base.Selector.check_k`),
never in ``__init__``. A value is valid when it satisfies at least one of its
parameter's constraints; otherwise the error reads "The 'k' parameter of
LengthSelector must be a positive int or a float in (0, 1] or None. Got -3
instead." (each constraint describes itself; several are joined with "or").

The design follows scikit-learn's ``sklearn/utils/_param_validation.py`` (read
at commit ``c39c2bb697e887a0fe17df164789bd70c536f551``: ``Interval``,
``Options``/``StrOptions``, ``_InstancesOf``, ``HasMethods``, ``_Booleans``,
``_RandomStates``, ``make_constraint``, ``validate_parameter_constraints``,
``generate_invalid_param_val``); the code is this library's own. Differences:

* several constraints are joined "a or b or c" (scikit-learn: "a, b or c"), the
  wording this library's messages already had;
* a bool is never an int or a real (scikit-learn's ``_InstancesOf(int)`` takes
  ``True``); a real interval is finite unless ``finite=False`` (scikit-learn's
  unbounded ``Interval(Real, 0, None)`` takes infinity); ``Options`` compares
  type and value without a declared type;
* every parameter must be declared (scikit-learn skips undeclared ones so that
  third-party estimators need not declare theirs); the conformance check
  enforces it;
* ``Satisfies`` states a rule by a predicate (a length-unit name, a keep policy),
  ``SequenceOf`` names the bad item (``selectors[1]``), ``MappingOf`` checks
  each value; each constraint makes its own invalid value
  (:meth:`Constraint.invalid_value`), used by
  :func:`sftselect.testing.checks.check_parameter_constraints`;
* validation runs in :meth:`~sftselect.core.base.Selector.check_k` (the start of
  every public entry point and of the engines), as scikit-learn's runs at the
  start of ``fit``; there is no global switch to skip it.

This module is in the core layer: it imports nothing heavy.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .validation import param_error

__all__ = [
    "K_CONSTRAINTS",
    "Boolean",
    "CallableConstraint",
    "Constraint",
    "HasMethods",
    "InstanceOf",
    "Interval",
    "MappingOf",
    "NoneConstraint",
    "Options",
    "RandomStates",
    "Satisfies",
    "SequenceOf",
    "constraint_errors",
    "describe_constraints",
    "invalid_values",
    "make_constraint",
    "validate_params",
]


class _BadType:
    """A value of a type no constraint names (the invalid value of a type check)."""

    def __repr__(self) -> str:
        return "<a _BadType object>"


class Constraint:
    """One allowed form of a parameter value.

    Subclasses implement :meth:`is_satisfied_by`, :meth:`__str__` (the phrase the
    error message uses, e.g. "a positive int") and :meth:`invalid_value` (a value
    this constraint refuses, for the conformance check).
    """

    def is_satisfied_by(self, value: Any) -> bool:
        raise NotImplementedError

    def invalid_value(self) -> Any:
        return _BadType()

    def element_error(self, value: Any) -> tuple[str, str, Any] | None:
        """For a container constraint: (suffix, expected, bad element) of the first bad
        element, so the message can name it (``selectors[1]``); None otherwise."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self})"


class NoneConstraint(Constraint):
    """The value None."""

    def is_satisfied_by(self, value: Any) -> bool:
        return value is None

    def __str__(self) -> str:
        return "None"


class Boolean(Constraint):
    """A bool (Python's or NumPy's)."""

    def is_satisfied_by(self, value: Any) -> bool:
        return isinstance(value, (bool, np.bool_))

    def invalid_value(self) -> Any:
        return "yes"

    def __str__(self) -> str:
        return "a bool"


class CallableConstraint(Constraint):
    """Any callable."""

    def is_satisfied_by(self, value: Any) -> bool:
        return callable(value)

    def __str__(self) -> str:
        return "a callable"


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _fmt(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() else str(bound)


class Interval(Constraint):
    """An int (``type_=numbers.Integral``) or a real number (``numbers.Real``, ints
    included) between ``left`` and ``right`` (None: unbounded on that side).

    ``closed`` is ``"left"``, ``"right"``, ``"both"`` or ``"neither"``. A bool is
    never accepted; NaN never; infinity only with ``finite=False`` (a real).
    ``description`` replaces the phrase made from the bounds (to keep a message's
    established wording).
    """

    def __init__(
        self,
        type_: type,
        left: float | None,
        right: float | None,
        *,
        closed: str = "left",
        finite: bool = True,
        description: str | None = None,
    ) -> None:
        if type_ not in (numbers.Integral, numbers.Real):
            raise TypeError(f"Interval takes numbers.Integral or numbers.Real; got {type_!r}.")
        if closed not in ("left", "right", "both", "neither"):
            raise ValueError(f"closed must be left, right, both or neither; got {closed!r}.")
        if left is not None and right is not None and left > right:
            raise ValueError(f"Interval: left={left} is greater than right={right}.")
        self.type = type_
        self.left = left
        self.right = right
        self.closed = closed
        self.finite = finite
        self.description = description

    def is_satisfied_by(self, value: Any) -> bool:
        if self.type is numbers.Integral:
            if not _is_int(value):
                return False
        elif not _is_real(value) or math.isnan(value) or (self.finite and math.isinf(value)):
            return False
        left_in = self.closed in ("left", "both")
        right_in = self.closed in ("right", "both")
        if self.left is not None and (value < self.left or (value == self.left and not left_in)):
            return False
        return not (
            self.right is not None
            and (value > self.right or (value == self.right and not right_in))
        )

    def invalid_value(self) -> Any:
        if self.left is not None:
            return self.left - 1 if self.closed in ("left", "both") else self.left
        if self.right is not None:
            return self.right + 1 if self.closed in ("right", "both") else self.right
        return float("nan") if self.type is numbers.Real else 0.5

    def __str__(self) -> str:
        if self.description is not None:
            return self.description
        integral = self.type is numbers.Integral
        kind = "int" if integral else "finite number" if self.finite else "number"
        left, right, closed = self.left, self.right, self.closed
        if right is None and left == 0 and closed in ("left", "both"):
            return f"a non-negative {kind}"
        if right is None and left == 0:
            return f"a positive {kind}"
        if right is None and left == 1 and integral and closed in ("left", "both"):
            return "a positive int"
        if left is None and right is None:
            return f"an {kind}" if integral else f"a {kind}"
        lb = "[" if closed in ("left", "both") and left is not None else "("
        rb = "]" if closed in ("right", "both") and right is not None else ")"
        lo = "-inf" if left is None else _fmt(left)
        hi = "inf" if right is None else _fmt(right)
        return f"{'an int' if integral else 'a float'} in {lb}{lo}, {hi}{rb}"


def _same_option(value: Any, option: Any) -> bool:
    if value is option:
        return True
    if isinstance(value, (bool, np.bool_)) != isinstance(option, bool):
        return False
    if not (isinstance(value, type(option)) or (_is_real(value) and _is_real(option))):
        return False
    try:
        return bool(value == option)
    except (TypeError, ValueError):
        return False


class Options(Constraint):
    """One of the given values (compared by type and equality: ``1`` is not ``True``)."""

    def __init__(self, *options: Any, description: str | None = None) -> None:
        if not options:
            raise ValueError("Options needs at least one value.")
        self.options = tuple(options)
        self.description = description

    def is_satisfied_by(self, value: Any) -> bool:
        return any(_same_option(value, o) for o in self.options)

    def invalid_value(self) -> Any:
        return "not-" + "-".join(str(o) for o in self.options)

    def __str__(self) -> str:
        if self.description is not None:
            return self.description
        return "one of " + ", ".join(repr(o) for o in self.options)


def _a_type(t: type) -> str:
    if t.__module__ == "builtins":
        return ("an " if t.__name__[0] in "aeiou" else "a ") + t.__name__
    return f"an instance of {t.__name__}"


class InstanceOf(Constraint):
    """An instance of a type (or of one of several), described as ``description``
    ("a Selector", "a str") or as "an instance of <name>"."""

    def __init__(self, types: type | tuple[type, ...], description: str | None = None) -> None:
        self.types = types
        names = types if isinstance(types, tuple) else (types,)
        self.description = description or " or ".join(_a_type(t) for t in names)

    def is_satisfied_by(self, value: Any) -> bool:
        if isinstance(value, (bool, np.bool_)) and self.types in (int, float):
            return False
        return isinstance(value, self.types)

    def __str__(self) -> str:
        return self.description


class HasMethods(Constraint):
    """An object with these methods (an embedder: ``embed``)."""

    def __init__(self, *methods: str, description: str | None = None) -> None:
        self.methods = methods
        self.description = description or (
            "an object with method(s) " + ", ".join(repr(m) for m in methods)
        )

    def is_satisfied_by(self, value: Any) -> bool:
        return all(callable(getattr(value, m, None)) for m in self.methods)

    def __str__(self) -> str:
        return self.description


class Satisfies(Constraint):
    """A value a predicate accepts, for a rule no other constraint states (a length
    unit name, a keep policy); the predicate must not load or write anything."""

    def __init__(
        self, predicate: Callable[[Any], bool], description: str, *, invalid: Any = None
    ) -> None:
        self.predicate = predicate
        self.description = description
        self.invalid = invalid

    def is_satisfied_by(self, value: Any) -> bool:
        return bool(self.predicate(value))

    def invalid_value(self) -> Any:
        return _BadType() if self.invalid is None else self.invalid

    def __str__(self) -> str:
        return self.description


class RandomStates(Constraint):
    """None, a non-negative int, or a ``numpy.random.Generator``."""

    def is_satisfied_by(self, value: Any) -> bool:
        if value is None or isinstance(value, np.random.Generator):
            return True
        return _is_int(value) and value >= 0

    def invalid_value(self) -> Any:
        return -1

    def __str__(self) -> str:
        return "a non-negative int, a numpy Generator or None"


class SequenceOf(Constraint):
    """A list or tuple of at least ``min_length`` items, each satisfying ``item``.

    A bad item is named in the message (``selectors[1]``), with the item's description.
    """

    def __init__(self, item: Constraint, *, min_length: int = 0, noun: str = "items") -> None:
        self.item = item
        self.min_length = min_length
        self.noun = noun

    def is_satisfied_by(self, value: Any) -> bool:
        return (
            isinstance(value, (list, tuple))
            and len(value) >= self.min_length
            and all(self.item.is_satisfied_by(v) for v in value)
        )

    def element_error(self, value: Any) -> tuple[str, str, Any] | None:
        if isinstance(value, (list, tuple)) and len(value) >= self.min_length:
            for i, v in enumerate(value):
                if not self.item.is_satisfied_by(v):
                    return f"[{i}]", str(self.item), v
        return None

    def invalid_value(self) -> Any:
        return tuple(_BadType() for _ in range(max(self.min_length, 1)))

    def __str__(self) -> str:
        least = f" of at least {self.min_length}" if self.min_length else ""
        return f"a sequence{least} {self.noun}, each {self.item}"


class MappingOf(Constraint):
    """A non-empty mapping whose values each satisfy one of ``values``."""

    def __init__(self, values: Sequence[Any], description: str) -> None:
        self.values = [make_constraint(c) for c in values]
        self.description = description

    def is_satisfied_by(self, value: Any) -> bool:
        return (
            isinstance(value, Mapping)
            and len(value) > 0
            and all(any(c.is_satisfied_by(v) for c in self.values) for v in value.values())
        )

    def invalid_value(self) -> Any:
        return {}

    def __str__(self) -> str:
        return self.description


_NAMED: dict[str, Callable[[], Constraint]] = {
    "boolean": Boolean,
    "random_state": RandomStates,
    "callable": CallableConstraint,
}


def make_constraint(constraint: Any) -> Constraint:
    """A :class:`Constraint` from its declaration: a Constraint, None, a type, or one of
    the names "boolean", "random_state", "callable"."""
    if isinstance(constraint, Constraint):
        return constraint
    if constraint is None:
        return NoneConstraint()
    if isinstance(constraint, str) and constraint in _NAMED:
        return _NAMED[constraint]()
    if isinstance(constraint, type):
        return InstanceOf(constraint)
    raise TypeError(f"Unknown parameter constraint {constraint!r}.")


#: ``k``: a positive int or a fraction in (0, 1] (append None where a threshold may decide).
K_CONSTRAINTS: list[Any] = [
    Interval(numbers.Integral, 1, None, closed="left"),
    Interval(numbers.Real, 0, 1, closed="right"),
]


def describe_constraints(constraints: Iterable[Any]) -> str:
    """The phrase for the error message: each constraint's own, joined with "or"."""
    return " or ".join(str(make_constraint(c)) for c in constraints)


def constraint_errors(
    owner: str, constraints: Mapping[str, Iterable[Any]], params: Mapping[str, Any]
) -> list[Exception]:
    """The error of each parameter that satisfies none of its constraints (in order)."""
    errors: list[Exception] = []
    for name, declared in constraints.items():
        if name not in params:
            continue
        made = [make_constraint(c) for c in declared]
        value = params[name]
        if any(c.is_satisfied_by(value) for c in made):
            continue
        element = next((e for c in made if (e := c.element_error(value)) is not None), None)
        if element is not None and len(made) == 1:
            suffix, expected, bad = element
            errors.append(param_error(owner, name + suffix, expected, bad))
        else:
            errors.append(param_error(owner, name, describe_constraints(made), value))
    return errors


def validate_params(
    owner: str, constraints: Mapping[str, Iterable[Any]], params: Mapping[str, Any]
) -> None:
    """Raise :class:`~sftselect.exceptions.InvalidParameterError` for the first parameter
    (in declaration order) whose value satisfies none of its constraints."""
    errors = constraint_errors(owner, constraints, params)
    if errors:
        raise errors[0]


def invalid_values(constraints: Iterable[Any]) -> list[Any]:
    """Values that satisfy none of ``constraints``: a value of an unknown type, then
    each constraint's own invalid value, kept only when no sibling accepts it."""
    made = [make_constraint(c) for c in constraints]
    candidates = [_BadType(), *(c.invalid_value() for c in made)]
    return [v for v in candidates if not any(c.is_satisfied_by(v) for c in made)]
