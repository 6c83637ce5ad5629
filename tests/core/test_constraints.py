"""Declared parameter constraints (sftselect.core.constraints) and their single check."""

from __future__ import annotations

import math
import numbers

import numpy as np
import pytest
from hypothesis import given, settings

from sftselect.core.constraints import (
    K_CONSTRAINTS,
    Boolean,
    InstanceOf,
    Interval,
    MappingOf,
    Options,
    RandomStates,
    SequenceOf,
    describe_constraints,
    invalid_values,
    make_constraint,
    validate_params,
)
from sftselect.exceptions import InvalidParameterError
from tests.helpers.strategies import constraint_lists, intervals, param_values


@pytest.mark.parametrize(
    ("constraint", "text"),
    [
        (Interval(numbers.Integral, 1, None), "a positive int"),
        (Interval(numbers.Integral, 0, None), "a non-negative int"),
        (Interval(numbers.Real, 0, None, closed="neither"), "a positive finite number"),
        (Interval(numbers.Real, 0, None), "a non-negative finite number"),
        (Interval(numbers.Real, None, None), "a finite number"),
        (Interval(numbers.Real, 0, 1, closed="right"), "a float in (0, 1]"),
        (Interval(numbers.Real, -1, 1, closed="right"), "a float in (-1, 1]"),
        (Interval(numbers.Integral, 1, 5, closed="both"), "an int in [1, 5]"),
        (Options("last", "first"), "one of 'last', 'first'"),
        (Boolean(), "a bool"),
        (RandomStates(), "a non-negative int, a numpy Generator or None"),
        (InstanceOf(str), "a str"),
        (make_constraint(None), "None"),
    ],
)
def test_each_constraint_describes_itself(constraint, text):
    assert str(constraint) == text


def test_the_message_template_is_todays():
    with pytest.raises(InvalidParameterError) as info:
        validate_params("LengthSelector", {"k": [*K_CONSTRAINTS, None]}, {"k": -3})
    assert str(info.value) == (
        "The 'k' parameter of LengthSelector must be a positive int or a float in (0, 1] "
        "or None. Got -3 instead."
    )


@pytest.mark.parametrize("value", [True, False, np.bool_(True)])
def test_a_bool_is_never_an_int_or_a_real(value):
    assert not Interval(numbers.Integral, None, None).is_satisfied_by(value)
    assert not Interval(numbers.Real, None, None).is_satisfied_by(value)
    assert not Options(1, 0).is_satisfied_by(value)
    assert not RandomStates().is_satisfied_by(value)


def test_nan_and_infinity():
    real = Interval(numbers.Real, None, None)
    assert not real.is_satisfied_by(math.nan)
    assert not real.is_satisfied_by(math.inf)
    assert Interval(numbers.Real, 0, None, finite=False).is_satisfied_by(math.inf)
    assert not Interval(numbers.Real, 0, None, finite=False).is_satisfied_by(math.nan)


def test_numpy_scalars_are_numbers():
    assert Interval(numbers.Integral, 1, None).is_satisfied_by(np.int64(3))
    assert Interval(numbers.Real, 0, 1, closed="right").is_satisfied_by(np.float32(0.5))
    assert Options("last").is_satisfied_by(np.str_("last"))


def test_a_bad_item_of_a_sequence_is_named():
    cs = [SequenceOf(InstanceOf(int, "an int"), min_length=2, noun="values")]
    with pytest.raises(
        InvalidParameterError, match=r"^The 'xs\[1\]' parameter of F must be an int"
    ):
        validate_params("F", {"xs": cs}, {"xs": (1, "b")})
    with pytest.raises(InvalidParameterError, match="^The 'xs' parameter of F must be a sequence"):
        validate_params("F", {"xs": cs}, {"xs": (1,)})


def test_mapping_of_values():
    quotas = MappingOf(K_CONSTRAINTS, "a non-empty mapping of source value to k")
    assert quotas.is_satisfied_by({"a": 3, "b": 0.5})
    assert not quotas.is_satisfied_by({})
    assert not quotas.is_satisfied_by({"a": 0})
    assert not quotas.is_satisfied_by([("a", 3)])


def test_the_first_declared_bad_parameter_is_reported():
    declared = {"a": [Boolean()], "b": [Boolean()]}
    with pytest.raises(InvalidParameterError, match="'a' parameter"):
        validate_params("F", declared, {"b": 1, "a": 1})


def test_unknown_declarations_are_refused():
    with pytest.raises(TypeError):
        make_constraint("positive")


@settings(max_examples=300, deadline=None)
@given(constraints=constraint_lists, value=param_values)
def test_validate_params_agrees_with_is_satisfied_by(constraints, value):
    """Inside some constraint: no error; outside all: the one-line message naming the
    parameter, the owner and every constraint's description."""
    inside = any(make_constraint(c).is_satisfied_by(value) for c in constraints)
    try:
        validate_params("Owner", {"the_param": constraints}, {"the_param": value})
    except InvalidParameterError as exc:
        assert not inside
        expected = describe_constraints(constraints)
        assert str(exc) == (
            f"The 'the_param' parameter of Owner must be {expected}. Got {value!r} instead."
        )
    else:
        assert inside


@settings(max_examples=200, deadline=None)
@given(constraints=constraint_lists)
def test_the_invalid_values_made_are_refused(constraints):
    """What the conformance check feeds each parameter is outside every constraint."""
    made = invalid_values(constraints)
    assert made
    for value in made:
        with pytest.raises(InvalidParameterError, match="^The 'p' parameter of O must be "):
            validate_params("O", {"p": constraints}, {"p": value})


@settings(max_examples=300, deadline=None)
@given(interval=intervals(), value=param_values)
def test_interval_membership_matches_the_bounds(interval, value):
    """An oracle written from the definition: type, finiteness, then each bound."""
    is_bool = isinstance(value, (bool, np.bool_))
    if interval.type is numbers.Integral:
        typed = isinstance(value, (int, np.integer)) and not is_bool
    else:
        typed = (
            isinstance(value, (int, float, np.integer, np.floating))
            and not is_bool
            and math.isfinite(value)
        )
    expected = typed
    if typed and interval.left is not None:
        left_closed = interval.closed in ("left", "both")
        expected &= value >= interval.left if left_closed else value > interval.left
    if typed and interval.right is not None:
        right_closed = interval.closed in ("right", "both")
        expected &= value <= interval.right if right_closed else value < interval.right
    assert interval.is_satisfied_by(value) == expected
