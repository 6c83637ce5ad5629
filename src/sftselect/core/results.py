"""What a selector's ranking hook returns (:class:`RankResult`) and what a run returns
(:class:`Selection`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from datasets import Dataset

    from .base import Selector

__all__ = ["RankResult", "Selection"]


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
