"""LengthSelector: the examples with the longest responses (Zhao et al., 2024).

*Long Is More for Alignment* fine-tunes on the 1,000 Alpaca-52K examples whose
**response** (the ``output`` field alone) is longest, counted in NLTK word
tokens, and keeps them in the original order. ``LengthSelector(k=1000)`` does
exactly that by default; see ``docs/faithfulness.md`` for what was measured.
"""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pyarrow.compute as pc

from ..core.constraints import K_CONSTRAINTS, Interval, Options
from ..data.formats import (
    FORMAT_CONSTRAINTS,
    TURN_POLICIES,
    Format,
    TextView,
    aggregate_turns,
    resolve_format,
    response_view,
)
from ..scoring.units import UNIT_CONSTRAINTS, resolve_unit
from .score import BOUND, TIE_RULES, Scored, ScoreSelector

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = ["LengthSelector"]


def _normalised(arr: Any) -> Any:
    """Case-folded text with runs of whitespace collapsed and ends trimmed."""
    arr = pc.utf8_lower(arr)
    arr = pc.replace_substring_regex(arr, pattern=r"\s+", replacement=" ")
    return pc.utf8_trim(arr, characters=" .!?:;")


#: Texts per progress-bar step (at least; a step is at most 1% of the texts otherwise).
_PROGRESS_STEP = 20_000


def _measure(unit: Any, texts: Any, num_proc: int, batch_size: int, progress: bool) -> np.ndarray:
    """``unit.measure`` over ``texts``, in slices with a progress bar when asked.

    Character and word counts are vectorised and take well under a second per
    million rows, so they never show a bar.
    """
    n = len(texts)
    if not progress or n <= _PROGRESS_STEP or unit.name in ("chars", "words"):
        return unit.measure(texts, num_proc=num_proc, batch_size=batch_size)
    from tqdm.auto import tqdm

    step = max(_PROGRESS_STEP, n // 100)
    parts = []
    with tqdm(total=n, desc=f"measuring ({unit.name})", unit="text") as bar:
        for start in range(0, n, step):
            part = texts.slice(start, step)
            parts.append(unit.measure(part, num_proc=num_proc, batch_size=batch_size))
            bar.update(len(part))
    return np.concatenate(parts).astype(np.int64, copy=False)


class LengthSelector(ScoreSelector):
    """Select the ``k`` rows with the longest responses.

    Parameters
    ----------
    k : int, float or None
        Rows to keep: a positive int, a fraction in (0, 1] of the rows (rounded
        up), or None to keep every row within ``min_length``/``max_length``.
    unit : str or object, default "nltk_words"
        How length is counted (see :mod:`sftselect.scoring.units`): ``"chars"``,
        ``"words"``, ``"nltk_words"`` (the paper's), ``"tiktoken:NAME"``,
        ``"hf:PATH"``, or a tokenizer object.
    format : str, Format or None
        The data format; None detects it from the columns.
    turns : {"last", "first", "sum", "max", "mean"}, default "last"
        Which assistant turns of a multi-turn row count (ignored for flat formats).
    min_length, max_length : int or None
        Inclusive bounds on the length; rows outside are never selected.
    drop_empty : bool, default True
        Never select a response that is empty or whitespace only.
    drop_echo : bool, default False
        Never select a response that merely repeats its instruction (compared
        case-folded, whitespace collapsed, trailing ``.!?:;`` ignored).
    largest : bool, default True
        False selects the shortest responses instead.
    ties : {"stable", "random"}, default "stable"
        Equal lengths at the cut: earlier rows first, or a seeded uniform draw.
    on_invalid : {"raise", "nan"}, default "raise"
        A null response (or a chat row with no assistant turn) raises an error
        naming the row, or scores NaN and is never selected.
    num_proc : int, default 1
        Processes for tokenizer units (character and word counts are
        vectorised and ignore it).
    batch_size : int, default 1000
        Texts per call for batched tokenizers.
    random_state : int, numpy Generator or None
        Seed for ``ties="random"``.
    show_progress : bool, default False
        Show a progress bar while a tokenizer unit runs.

    Examples
    --------
    >>> from datasets import Dataset
    >>> from sftselect import LengthSelector
    >>> pool = Dataset.from_dict({
    ...     "instruction": ["Name a colour.", "Explain rain.", "Say hi.", "Define AI."],
    ...     "input": ["", "", "", ""],
    ...     "output": ["Blue.", "Water vapour cools, condenses into drops, and falls.", "Hi!",
    ...                "Artificial intelligence is software that learns from data."],
    ... })
    >>> LengthSelector(k=2).select_indices(pool).tolist()
    [1, 3]
    >>> LengthSelector(k=2).select(pool)["output"][0]
    'Water vapour cools, condenses into drops, and falls.'
    >>> LengthSelector(k=1, unit="chars", largest=False).select_indices(pool).tolist()
    [2]
    """

    _bound_names = ("min_length", "max_length")
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "k": [*K_CONSTRAINTS, None],
        "unit": UNIT_CONSTRAINTS,
        "format": FORMAT_CONSTRAINTS,
        "turns": [Options(*TURN_POLICIES)],
        "min_length": BOUND,
        "max_length": BOUND,
        "drop_empty": ["boolean"],
        "drop_echo": ["boolean"],
        "largest": ["boolean"],
        "ties": [Options(*TIE_RULES)],
        "on_invalid": [Options("raise", "nan")],
        "num_proc": [Interval(numbers.Integral, 1, None)],
        "batch_size": [Interval(numbers.Integral, 1, None)],
        "random_state": ["random_state"],
        "show_progress": ["boolean"],
    }

    def __init__(
        self,
        k: int | float | None = 1000,
        *,
        unit: Any = "nltk_words",
        format: str | Format | None = None,
        turns: str = "last",
        min_length: int | None = None,
        max_length: int | None = None,
        drop_empty: bool = True,
        drop_echo: bool = False,
        largest: bool = True,
        ties: str = "stable",
        on_invalid: str = "raise",
        num_proc: int = 1,
        batch_size: int = 1000,
        random_state: Any = None,
        show_progress: bool = False,
    ) -> None:
        self.k = k
        self.unit = unit
        self.format = format
        self.turns = turns
        self.min_length = min_length
        self.max_length = max_length
        self.drop_empty = drop_empty
        self.drop_echo = drop_echo
        self.largest = largest
        self.ties = ties
        self.on_invalid = on_invalid
        self.num_proc = num_proc
        self.batch_size = batch_size
        self.random_state = random_state
        self.show_progress = show_progress

    def _view(self, dataset: Dataset) -> TextView:
        owner = type(self).__name__
        fmt = resolve_format(dataset, self.format, owner)
        return response_view(
            dataset, fmt, turns=self.turns, on_invalid=self.on_invalid, owner=owner
        )

    def _measure(self, dataset: Dataset) -> tuple[np.ndarray, TextView]:
        owner = type(self).__name__
        unit = resolve_unit(self.unit, owner)
        view = self._view(dataset)
        lengths = _measure(
            unit, view.texts, int(self.num_proc), int(self.batch_size), bool(self.show_progress)
        )
        scores = aggregate_turns(lengths, view, self.turns)
        if scores.shape != (len(dataset),):
            raise RuntimeError(
                f"unit {unit!r} returned {lengths.shape} lengths for {len(view.texts)} texts"
            )
        return scores, view

    def _score(self, dataset: Dataset) -> np.ndarray:
        return self._measure(dataset)[0]

    def _score_with_rules(self, dataset: Dataset) -> Scored:
        scores, view = self._measure(dataset)
        if not (self.drop_empty or self.drop_echo):
            return Scored(scores)
        bad = np.zeros(len(view.texts), dtype=bool)
        if self.drop_empty:
            # Empty, or only whitespace; no trimmed copy of the column is made.
            blank = pc.or_(pc.equal(pc.binary_length(view.texts), 0), pc.utf8_is_space(view.texts))
            bad |= blank.to_numpy(zero_copy_only=False)
        if self.drop_echo and view.prompts is not None:
            same = pc.equal(_normalised(view.texts), _normalised(view.prompts))
            bad |= pc.fill_null(same, False).to_numpy(zero_copy_only=False)
        rows = np.arange(len(bad)) if view.parents is None else view.parents
        if self.turns in ("last", "first") or view.parents is None:
            keep = np.ones(len(dataset), dtype=bool)
            keep[rows[bad]] = False
        else:
            # Aggregated turns: a row is dropped only when every counted turn is bad.
            keep = np.zeros(len(dataset), dtype=bool)
            keep[rows[~bad]] = True
        return Scored(scores, keep)
