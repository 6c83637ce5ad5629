"""DEITA's complexity and quality scorers (Liu et al., ICLR 2024), and its combined selection.

DEITA (github.com/hkust-nlp/deita, ``src/deita/selection/scorer/``, pinned at
commit ``b279f2c329b403d2612a61e270c8d2a2eeaed6f4``) fine-tunes two LLaMA
models to answer a prompt with a score from 1 to 6 and reads the score as an
expectation over the next token: for each turn, with ``z_k`` the logit of the
token "k" after the prompt,

    score = sum_{k=1..6} k * softmax(z_1, ..., z_6)_k

The complexity prompt holds the instruction; the quality prompt holds the
instruction and the response (both templates verbatim from ``llama_scorer.py``).
A conversation's score is the sum over its turns; the combined score is
``sum_turns complexity x quality`` (``Combined_Filter._sort``). The logits come
from :class:`~sftselect.models.next_token.NextTokenLogits` (batched, cached).

:func:`deita_preset` is DEITA's selection: rows in combined-score order
through :class:`~sftselect.selectors.dedup.RepresentationFilter` (cosine
threshold 0.9, a row kept at equality as DEITA's ``> threshold`` rule does)
until ``k`` are kept. The differences from the reference are listed in
``docs/selectors/deita.md``.
"""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pyarrow as pa

from ..core.constraints import K_CONSTRAINTS, InstanceOf, Options, Satisfies
from ..data.formats import (
    FORMAT_CONSTRAINTS,
    aggregate_turns,
    arrow_column,
    resolve_format,
    response_view,
)
from ..embedding.base import EXAMPLE_TEMPLATE
from ..exceptions import SftSelectWarning
from ..models.next_token import NextTokenLogits
from ..models.row_engine import add_counts, row_windows
from .dedup import RepresentationFilter
from .logprob_base import CACHE_DIR, DEVICE, DTYPE, PATH, POSITIVE_INT
from .score import BOUND, TIE_RULES, Scored, ScoreSelector

if TYPE_CHECKING:
    from datasets import Dataset

    from ..data.formats import Format

__all__ = [
    "COMPLEXITY_TEMPLATE",
    "DEFAULT_COMPLEXITY_MODEL",
    "DEFAULT_QUALITY_MODEL",
    "DEITA_MAX_SIMILARITY",
    "LLAMA_SCORE_TOKEN_IDS",
    "QUALITY_TEMPLATE",
    "SCORE_TOKENS",
    "DeitaSelector",
    "deita_preset",
    "expected_score",
]

#: DEITA's complexity prompt (``Llama_Scorer.complexity_template``), verbatim.
COMPLEXITY_TEMPLATE = (
    "You are a helpful assistant. Please identify the complexity score of the following "
    "user query. \n##Query: {instruction}  \n##Complexity: "
)
#: DEITA's quality prompt (``Llama_Scorer.quality_template``), verbatim.
QUALITY_TEMPLATE = (
    "You are a helpful assistant. Please identify the quality score of the Response "
    "corresponding to the Question. \n #Question#:\n{instruction}\n#Response#:\n{output} "
    "\n##Quality: "
)
#: The tokens whose logits are read, for the scores 1 to 6.
SCORE_TOKENS: tuple[str, ...] = ("1", "2", "3", "4", "5", "6")
#: ``Llama_Scorer.id2score``: the LLaMA-2 ids of "1".."6" (what :data:`SCORE_TOKENS` gives there).
LLAMA_SCORE_TOKEN_IDS: tuple[int, ...] = (29896, 29906, 29941, 29946, 29945, 29953)
DEFAULT_COMPLEXITY_MODEL = "hkust-nlp/deita-complexity-scorer"
DEFAULT_QUALITY_MODEL = "hkust-nlp/deita-quality-scorer"
#: DEITA's threshold 0.9 with its rule (drop when similarity > 0.9) as ``max_similarity``.
DEITA_MAX_SIMILARITY = float(np.nextafter(0.9, 2.0))

SCORES = ("combined", "complexity", "quality")


def expected_score(logits: np.ndarray) -> np.ndarray:
    """``sum_k k * softmax(logits)_k`` per row of ``[n, 6]`` logits (NaN rows stay NaN)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    return p @ np.arange(1, z.shape[1] + 1, dtype=np.float64)


def _strings(arr: pa.Array | None, n: int) -> list[str]:
    if arr is None:
        return [""] * n
    return ["" if s is None else s for s in arr.to_pylist()]


def deita_turns(dataset: Dataset, fmt: str | Format | None, owner: str):
    """``(instructions, responses, view)``: one (instruction, response) per scored turn.

    Flat formats give one turn per row, the instruction joined with a non-empty
    input by a blank line; chat formats give every assistant turn with the user
    turn before it.
    """
    resolved = resolve_format(dataset, fmt, owner)
    view = response_view(dataset, resolved, turns="sum", on_invalid="nan", owner=owner)
    n_turns = len(view.texts)
    responses = _strings(view.texts, n_turns)
    instructions = _strings(view.prompts, n_turns)
    flat_input = resolved.input if view.parents is None else None
    if flat_input is not None and flat_input in dataset.column_names:
        inputs = _strings(arrow_column(dataset, flat_input), n_turns)
        instructions = [
            EXAMPLE_TEMPLATE.join(p for p in pair if p) for pair in zip(instructions, inputs)
        ]
    return instructions, responses, view


_ENGINE: list[Any] = [PATH, InstanceOf(NextTokenLogits, "a NextTokenLogits")]


def _six_ids(ids: Any) -> bool:
    return isinstance(ids, (list, tuple)) and len(ids) == len(SCORE_TOKENS)


class DeitaSelector(ScoreSelector):
    """Select by DEITA's complexity, quality, or combined (complexity x quality) score.

    Parameters
    ----------
    complexity, quality : str, path or NextTokenLogits
        The scorer models: a hub name or path (loaded on first use with this
        selector's ``batch_size``, ``max_length``, ``device``, ``dtype``,
        ``cache_dir`` and ``show_progress``), or an engine built yourself
        (which keeps its own settings). Only the ones ``by`` needs are used.
    k : int, float or None
    by : {"combined", "complexity", "quality"}, default "combined"
        Which score ranks the rows.
    token_ids : list of 6 ints or None
        The ids of the tokens "1".."6"; None reads them from each scorer's
        tokenizer (for LLaMA-2's, DEITA's ``id2score``).
    format : str, Format or None
    min_score, max_score, largest, ties, random_state
        As :class:`~sftselect.selectors.score.ScoreSelector`.
    """

    score_in_actors = True
    scores_on_device = True

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "complexity": _ENGINE,
        "quality": _ENGINE,
        "k": [*K_CONSTRAINTS, None],
        "by": [Options(*SCORES)],
        "token_ids": [None, Satisfies(_six_ids, "6 token ids", invalid=[0])],
        "batch_size": [POSITIVE_INT],
        "max_length": [POSITIVE_INT, None],
        "device": DEVICE,
        "dtype": DTYPE,
        "cache_dir": CACHE_DIR,
        "format": FORMAT_CONSTRAINTS,
        "min_score": BOUND,
        "max_score": BOUND,
        "largest": ["boolean"],
        "ties": [Options(*TIE_RULES)],
        "random_state": ["random_state"],
        "show_progress": ["boolean"],
    }

    def __init__(
        self,
        complexity: Any = DEFAULT_COMPLEXITY_MODEL,
        quality: Any = DEFAULT_QUALITY_MODEL,
        k: int | float | None = None,
        *,
        by: str = "combined",
        token_ids: list[int] | None = None,
        batch_size: int = 8,
        max_length: int | None = None,
        device: str | None = None,
        dtype: str | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        format: str | Format | None = None,
        min_score: float | None = None,
        max_score: float | None = None,
        largest: bool = True,
        ties: str = "stable",
        random_state: Any = None,
        show_progress: bool = True,
    ) -> None:
        self.complexity = complexity
        self.quality = quality
        self.by = by
        self.token_ids = token_ids
        self.batch_size = batch_size
        self.max_length = max_length
        self.device = device
        self.dtype = dtype
        self.cache_dir = cache_dir
        self.format = format
        self.show_progress = show_progress
        super().__init__(
            k,
            min_score=min_score,
            max_score=max_score,
            largest=largest,
            ties=ties,
            random_state=random_state,
        )

    def _engine(self, which: str) -> NextTokenLogits:
        given = getattr(self, which)
        if isinstance(given, NextTokenLogits):
            return given
        # a path or a hub name: the declared constraints allow nothing else
        settings = dict(
            batch_size=self.batch_size,
            max_length=self.max_length,
            device=self.device,
            dtype=self.dtype,
            cache_dir=self.cache_dir,
            show_progress=self.show_progress,
        )
        # one engine (one load of the weights) per model and settings, reused across runs
        built = self.__dict__.setdefault("_built_engines", {})
        key = (which, os.fspath(given), repr(sorted(settings.items())))
        if key not in built:
            built[key] = NextTokenLogits(given, **settings)
        return built[key]

    def _turn_scores(self, which: str, prompts: list[str]) -> tuple[np.ndarray, dict[str, int]]:
        engine = self._engine(which)
        ids = self.token_ids
        if ids is None:
            ids = engine.vocabulary_ids(SCORE_TOKENS)
        out = engine.logits(prompts, list(ids))
        return expected_score(out.values), out.counts()

    def _used(self) -> list[str]:
        return [w for w in ("complexity", "quality") if self.by in ("combined", w)]

    def _score_with_rules(self, dataset: Dataset) -> Scored:
        """The rows are read ``window_rows`` at a time (the smallest of the engines'):
        only one window's texts and prompts are held, and the scores (one float per row)."""
        owner = type(self).__name__
        if len(dataset) == 0:
            return Scored(np.empty(0, dtype=np.float64))
        used = self._used()
        size = min(int(self._engine(w).window_rows) for w in used)
        scores = np.full(len(dataset), np.nan)
        extra: dict[str, Any] = {"by": self.by, "turns": 0, **{w: {} for w in used}}
        for rows in row_windows(len(dataset), size):
            part = dataset.select(rows) if len(rows) < len(dataset) else dataset
            scores[rows.start : rows.stop] = self._window_scores(part, owner, extra)
        bad = int(np.isnan(scores).sum())
        if bad:
            warnings.warn(
                f"{owner}: {bad} of {len(scores)} rows could not be scored (no response, a "
                "prompt longer than max_length, or a non-finite logit: see the provenance "
                "'complexity'/'quality' counts); they are NaN and never selected.",
                SftSelectWarning,
                stacklevel=3,
            )
        return Scored(scores, extra=extra)

    def _window_scores(self, dataset: Dataset, owner: str, extra: dict[str, Any]) -> np.ndarray:
        """The scores of one window of rows; its turn and outcome counts added to ``extra``."""
        instructions, responses, view = deita_turns(dataset, self.format, owner)
        extra["turns"] += len(instructions)
        per_turn = np.ones(len(instructions), dtype=np.float64)
        if self.by in ("combined", "complexity"):
            prompts = [COMPLEXITY_TEMPLATE.format(instruction=t) for t in instructions]
            values, counts = self._turn_scores("complexity", prompts)
            add_counts(extra["complexity"], counts)
            per_turn *= values
        if self.by in ("combined", "quality"):
            prompts = [
                QUALITY_TEMPLATE.format(instruction=t, output=r)
                for t, r in zip(instructions, responses)
            ]
            values, counts = self._turn_scores("quality", prompts)
            add_counts(extra["quality"], counts)
            per_turn *= values
        return aggregate_turns(per_turn, view, "sum")

    def _score(self, dataset: Dataset) -> np.ndarray:
        return self._score_with_rules(dataset).scores


def deita_preset(
    embedder: Any,
    k: int | float | None = None,
    *,
    complexity: Any = DEFAULT_COMPLEXITY_MODEL,
    quality: Any = DEFAULT_QUALITY_MODEL,
    max_similarity: float = DEITA_MAX_SIMILARITY,
    text: str = "example",
    batch_size: int = 8,
    max_length: int | None = None,
    device: str | None = None,
    dtype: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    format: str | Format | None = None,
    show_progress: bool = True,
) -> RepresentationFilter:
    """DEITA's selection: rows by combined score, kept unless too similar to a kept row.

    A :class:`~sftselect.selectors.dedup.RepresentationFilter` over ``embedder``
    whose walk order is ``DeitaSelector(complexity, quality, by="combined")``
    (NaN rows are never walked), stopping at ``k`` kept rows. ``max_similarity``
    defaults to DEITA's threshold 0.9 under its rule (a row at exactly 0.9 is
    kept). ``cache_dir`` caches both the scores and the embeddings.
    """
    order = DeitaSelector(
        complexity,
        quality,
        k=1.0,
        by="combined",
        batch_size=batch_size,
        max_length=max_length,
        device=device,
        dtype=dtype,
        cache_dir=cache_dir,
        format=format,
        show_progress=show_progress,
    )
    return RepresentationFilter(
        embedder,
        k,
        max_similarity=max_similarity,
        order=order,
        text=text,
        cache_dir=cache_dir,
        format=format,
        show_progress=show_progress,
    )
