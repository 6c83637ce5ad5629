"""The declared-constraints conformance check catches what it is meant to catch.

Toy selectors, each wrong in one way, must fail
``sftselect.testing.check_parameter_constraints``; a correct one passes.
"""

from __future__ import annotations

import numbers
from typing import ClassVar

import numpy as np
import pytest

from sftselect import RankResult, Selector
from sftselect.core.constraints import K_CONSTRAINTS, Interval, Options
from sftselect.core.validation import check_k
from sftselect.exceptions import InvalidParameterError
from sftselect.testing import check_parameter_constraints, default_datasets


class Toy(Selector):
    """The first ``k`` rows, shifted by ``offset``; declares every parameter."""

    _parameter_constraints: ClassVar[dict] = {
        "k": K_CONSTRAINTS,
        "offset": [Interval(numbers.Integral, 0, None)],
        "order": [Options("ascending", "descending")],
    }

    def __init__(self, k=3, *, offset=0, order="ascending"):
        self.k = k
        self.offset = offset
        self.order = order

    def _rank(self, dataset, rng, limit):
        n = len(dataset)
        rows = np.roll(np.arange(n, dtype=np.int64), -self.offset if n else 0)
        if self.order == "descending":
            rows = rows[::-1]
        return RankResult(order=rows, n_eligible=n)


class Undeclared(Toy):
    """``order`` has no constraint."""

    _parameter_constraints: ClassVar[dict] = {
        "k": K_CONSTRAINTS,
        "offset": Toy._parameter_constraints["offset"],
    }


class DeclaresAStranger(Toy):
    """A constraint for a parameter ``__init__`` does not take."""

    _parameter_constraints: ClassVar[dict] = {**Toy._parameter_constraints, "width": [Options(1)]}


class NotEnforced(Toy):
    """Declares its constraints but checks only ``k`` (as a selector overriding
    ``check_k`` without calling the base would): ``offset`` goes unchecked."""

    def check_k(self):
        return check_k(self.k, type(self).__name__)


class ChecksTooLate(Toy):
    """Checks ``offset`` only once ranking has begun (today's style, by hand)."""

    def _validate_params(self):
        pass

    def _rank(self, dataset, rng, limit):
        if not isinstance(self.offset, int) or self.offset < 0:
            raise InvalidParameterError(
                f"The 'offset' parameter of {type(self).__name__} must be a non-negative int. "
                f"Got {self.offset!r} instead."
            )
        return super()._rank(dataset, rng, limit)


class BadDefault(Toy):
    """Its default ``order`` breaks its own constraint."""

    def __init__(self, k=3, *, offset=0, order="sideways"):
        super().__init__(k, offset=offset, order=order)


class MutatesOnError(Toy):
    """Normalises its parameters in place before checking them."""

    def check_k(self):
        self.order = str(self.order).lower()
        return super().check_k()


@pytest.fixture(scope="module")
def data():
    return default_datasets()[0]


def test_a_declared_enforced_selector_passes(data):
    check_parameter_constraints(Toy(k=2), data)


@pytest.mark.parametrize(
    ("toy", "said"),
    [
        (Undeclared, "undeclared: ['order']"),
        (DeclaresAStranger, "not a parameter: ['width']"),
        (NotEnforced, "offset=<a _BadType object> gave 'the ranking started'"),
        (ChecksTooLate, "gave 'the ranking started'"),
        (BadDefault, "a default breaks its constraint"),
        (MutatesOnError, "changed the parameters"),
    ],
)
def test_the_check_fails_on_a_broken_selector(toy, said, data):
    with pytest.raises(AssertionError, match="check_parameter_constraints failed") as info:
        check_parameter_constraints(toy(k=2, order="ascending"), data)
    assert said in str(info.value)


def test_the_error_comes_before_any_ranking_and_changes_nothing(data):
    toy = Toy(k=2, offset=-1)
    before = toy.get_params(deep=False)
    with pytest.raises(
        InvalidParameterError,
        match=r"^The 'offset' parameter of Toy must be a non-negative int\. Got -1 instead\.$",
    ):
        toy.select_indices(data)
    assert toy.get_params(deep=False) == before


def test_every_public_entry_point_validates(data):
    """run, select, select_indices, rank_indices, full_ranking and check_k all refuse."""
    toy = Toy(k=2, order="up")
    for call in (
        toy.run,
        toy.select,
        toy.select_indices,
        toy.rank_indices,
        toy.full_ranking,
        lambda _: toy.check_k(),
    ):
        with pytest.raises(InvalidParameterError, match="'order' parameter of Toy"):
            call(data)


def test_constraints_are_inherited_and_extended():
    class Wider(Toy):
        _parameter_constraints: ClassVar[dict] = {
            **Toy._parameter_constraints,
            "width": [Options(1, 2)],
        }

        def __init__(self, k=3, *, offset=0, order="ascending", width=1):
            super().__init__(k, offset=offset, order=order)
            self.width = width

    with pytest.raises(InvalidParameterError, match="'width' parameter of Wider must be one of"):
        Wider(width=3).check_k()
    with pytest.raises(InvalidParameterError, match="'offset' parameter of Wider"):
        Wider(offset=-2).check_k()


def test_init_stores_invalid_values_as_given():
    """As scikit-learn: nothing is checked in __init__, clone and set_params."""
    toy = Toy(k=-1, offset="x").clone(order=None).set_params(offset=[])
    assert (toy.k, toy.offset, toy.order) == (-1, [], None)
