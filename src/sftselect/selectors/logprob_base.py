"""What the log-probability selectors share: the scorer they run, and rows as texts.

:class:`LogProbSelector` is the base of :class:`~sftselect.selectors.ifd.IFDSelector`,
:class:`~sftselect.selectors.ifd.SuperfilteringSelector` and
:class:`~sftselect.selectors.perplexity.PerplexitySelector`. Each row's score comes
from that row alone, so they are ``ROW_SCORE`` selectors and run on Ray as they are
(scored in a few long-lived actors, ``score_in_actors``, each loading the model once).

Rows are read in slices (the scorer's ``chunk_rows``), never all at once, from a flat
format's instruction, input and response columns (a null counts as an empty text).
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..core.constraints import InstanceOf, Interval, Options, Satisfies
from ..data.formats import Format, resolve_format
from ..exceptions import DataFormatError, SftSelectWarning
from ..models.loading import DTYPES
from ..models.logprobs import LogProbScorer, Span
from .score import ScoreSelector

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = [
    "CACHE_DIR",
    "DEVICE",
    "DTYPE",
    "LOGPROB_MODEL",
    "POSITIVE_INT",
    "TOKENIZER",
    "LogProbSelector",
    "Row",
    "iter_rows",
]


def is_loaded_model(model: Any) -> bool:
    """Whether ``model`` looks like a loaded transformers model (``forward`` and ``config``),
    told without importing torch."""
    return callable(getattr(model, "forward", None)) and hasattr(model, "config")


#: Declared constraints of the parameters the model scorers share.
PATH = InstanceOf((str, os.PathLike), "a path or a hub name")
LOGPROB_MODEL: list[Any] = [
    PATH,
    InstanceOf(LogProbScorer, "a LogProbScorer"),
    Satisfies(is_loaded_model, "a transformers model"),
]
TOKENIZER: list[Any] = [None, PATH, Satisfies(callable, "a tokenizer")]
POSITIVE_INT = Interval(numbers.Integral, 1, None)
DTYPE: list[Any] = [Options(*DTYPES), None]
DEVICE: list[Any] = [InstanceOf(str, "a device name such as 'cuda:0'"), None]
CACHE_DIR: list[Any] = [InstanceOf((str, os.PathLike), "a str or path"), None]


@dataclass(frozen=True)
class Row:
    """One example's texts (nulls read as ``""``)."""

    instruction: str
    input: str
    output: str


def iter_rows(dataset: Dataset, fmt: Format, chunk: int) -> Iterator[Row]:
    """The rows of a flat-format dataset as :class:`Row`, read ``chunk`` rows at a time."""
    table = dataset.with_format("arrow")
    for start in range(0, len(dataset), chunk):
        part = table[start : start + chunk]
        n = part.num_rows

        def column(name: str | None, part: Any = part, n: int = n) -> list[str]:
            if name is None:
                return [""] * n
            return ["" if v is None else str(v) for v in part.column(name).to_pylist()]

        ins, inp, out = column(fmt.instruction), column(fmt.input), column(fmt.response)
        for a, b, c in zip(ins, inp, out):
            yield Row(a, b, c)


class LogProbSelector(ScoreSelector):
    """Shared plumbing: the scorer, the format, the rows' spans (see the module docstring).

    A subclass stores the standard parameters (``model``, ``tokenizer``, ``format``,
    ``batch_size``, ``dtype``, ``device``, ``cache_dir``, ``show_progress`` and the
    :class:`~sftselect.selectors.score.ScoreSelector` ones) and implements
    ``_score_with_rules``.
    """

    score_in_actors = True
    scores_on_device = True

    def _scorer(self) -> LogProbScorer:
        """The scorer: ``model`` itself when it is one (with its own settings; the
        selector's ``cache_dir``, when given, replaces the scorer's), else one built from
        the parameters (kept on the selector, so the model loads once per selector)."""
        if isinstance(self.model, LogProbScorer):
            if self.cache_dir is None:
                return self.model
            return self.model.with_cache(self.cache_dir)
        config = (
            id(self.model),
            id(self.tokenizer),
            self.dtype,
            self.device,
            self.batch_size,
            None if self.cache_dir is None else os.fspath(self.cache_dir),
            self.show_progress,
        )
        memo = self.__dict__.get("_scorer_memo")
        if memo is not None and memo[0] == config:
            return memo[1]
        scorer = LogProbScorer(
            self.model,
            self.tokenizer,
            dtype=self.dtype,
            device=self.device,
            batch_size=self.batch_size,
            cache_dir=self.cache_dir,
            show_progress=self.show_progress,
        )
        self.__dict__["_scorer_memo"] = (config, scorer)
        return scorer

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_scorer_memo", None)
        return state

    def _format(self, dataset: Dataset) -> Format:
        owner = type(self).__name__
        fmt = resolve_format(dataset, self.format, owner)
        if fmt.is_chat:
            raise DataFormatError(
                f"{owner} reads flat rows (instruction, input, response columns); format "
                f"{fmt.name!r} is a chat format. Flatten it or pass a flat Format."
            )
        return fmt

    def spans_of(self, dataset: Dataset) -> dict[str, Callable[[], Iterator[Span]]]:
        """The passes this selector runs: a name and a fresh iterator of one span per row."""
        raise NotImplementedError

    def _run_passes(self, dataset: Dataset) -> dict[str, Any]:
        scorer = self._scorer()
        return {
            name: scorer.score(make(), total=len(dataset), desc=f"{type(self).__name__}: {name}")
            for name, make in self.spans_of(dataset).items()
        }

    def dry_run(self, dataset: Dataset) -> dict[str, Any]:
        """What a run would do: rows, passes, tokens to read, rows already cached.

        Tokenizes every span (loads the tokenizer, not the model, for a model given by path).
        """
        from ..models.loading import load_tokenizer

        self._validate_params()
        scorer = self._scorer()
        tok = load_tokenizer(scorer.model, scorer.tokenizer, scorer.gguf_file, type(self).__name__)
        report: dict[str, Any] = {"rows": len(dataset), "passes": {}}
        for name, make in self.spans_of(dataset).items():
            tokens = scored = truncated = 0
            for span in make():
                ids, start, _, cut = scorer.tokenize(span, tok, None)
                tokens += len(ids)
                scored += max(0, len(ids) - start)
                truncated += int(cut)
            report["passes"][name] = {
                "tokens": tokens,
                "scored_tokens": scored,
                "truncated": truncated,
                "cached_rows": scorer.cached_count(make()),
            }
        return report


def count_and_warn(owner: str, values: np.ndarray, what: str) -> int:
    """How many of ``values`` are NaN; warns (one line) when any is."""
    import warnings

    n = int(np.count_nonzero(np.isnan(values)))
    if n:
        warnings.warn(
            f"{owner}: {n} of {values.size} rows have no {what} (NaN: nothing scored, or a "
            "loss that was not finite); they are never selected.",
            SftSelectWarning,
            stacklevel=3,
        )
    return n
