"""What a rating run produced: :class:`Ratings`, and adding one run's report to another's."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..backends.runner import RunReport

__all__ = ["Ratings", "merge_reports"]


@dataclass
class Ratings:
    """Everything a rating run produced, row by row, and its report.

    ``scores``: the parsed rating (``scoring="rating"``) or the expected score
    (``scoring="expected"``) per row, NaN where none; ``mass``: with expected
    scoring, the probability mass the judge put on the scale's tokens at the
    rating's position, per row (NaN where none); ``expected_failures``: rows
    whose reply parsed but gave no expected score (counted by reason in
    ``expected``, the summary :func:`~sftselect.selectors.quality_expected.expected_scores`
    returns).
    """

    scores: np.ndarray
    replies: list[str | None]
    reasons: list[str]
    report: RunReport
    parse_failures: int
    request_failures: int
    reasked: int
    scoring: str = "rating"
    mass: np.ndarray | None = None
    expected_failures: int = 0
    expected: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The report's counts and the failures; with expected scoring, the ``expected``
        counts too. Every number in it adds up across blocks of rows (a Ray run sums them)."""
        out = self.report.as_dict()
        out.update(
            parse_failures=self.parse_failures,
            request_failures=self.request_failures,
            reasked=self.reasked,
            scoring=self.scoring,
        )
        if self.scoring == "expected":
            out.update(expected_failures=self.expected_failures, expected=dict(self.expected))
        return out


def merge_reports(into: RunReport, more: RunReport) -> None:
    """Add the counts of ``more`` (a follow-up run: re-asks, a probe) to ``into``."""
    for name in (
        "requests",
        "unique",
        "cache_hits",
        "sent",
        "succeeded",
        "failures",
        "input_tokens",
        "output_tokens",
    ):
        setattr(into, name, getattr(into, name) + getattr(more, name))
    if into.retries is not None and more.retries is not None:
        into.retries += more.retries
    into.seconds += more.seconds
