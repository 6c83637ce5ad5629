"""PerplexitySelector: rows by the perplexity of their answer under a causal LM.

``perplexity = exp(mean NLL of the answer tokens)``, the answer read after its
prompt (``conditioned=True``, the prompt rendered with ``template``) or alone (the
answer's own text, its first token given nothing when the tokenizer adds no BOS,
exactly as a Hugging Face ``labels=input_ids`` loss reads it). Keep the lowest
(``keep="lowest"``: the most predictable answers, the default), the highest
(``keep="highest"``), or a middle band: ``min_score`` and ``max_score`` bound the
perplexity (inclusive), and within the band ``keep`` orders the rows. Each row's
score depends on that row alone, so the selector runs on Ray as it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..core.constraints import K_CONSTRAINTS, Options
from ..data.formats import FORMAT_CONSTRAINTS
from ..models.logprobs import Span
from .ifd import CHERRY_PROMPTS, SUPERFILTERING_PROMPTS, render_prompt
from .logprob_base import (
    CACHE_DIR,
    DEVICE,
    DTYPE,
    LOGPROB_MODEL,
    POSITIVE_INT,
    TOKENIZER,
    LogProbSelector,
    count_and_warn,
    iter_rows,
)
from .score import BOUND, TIE_RULES, Scored

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = ["PerplexitySelector"]

TEMPLATES = {"alpaca": CHERRY_PROMPTS, "plain": SUPERFILTERING_PROMPTS}
KEEP = ("lowest", "highest")


class PerplexitySelector(LogProbSelector):
    """Select rows by answer perplexity (see the module docstring).

    Parameters
    ----------
    model : str, path, transformers model or LogProbScorer
        The causal LM (see :class:`~sftselect.selectors.ifd.IFDSelector`).
    k : int, float or None, default 0.1
    keep : {"lowest", "highest"}, default "lowest"
        Which end of the (banded) perplexities comes first.
    conditioned : bool, default True
        Read the answer after its prompt, or alone.
    template : {"alpaca", "plain"}, default "alpaca"
        The prompt: Cherry's Alpaca prompt, or Superfiltering's ``{instruction}\\n{input}\\n``.
    max_length : int or None, default None
        Truncate each text here (None: the model's context); cut rows are counted.
    min_score, max_score : float or None
        An inclusive perplexity band: rows outside are never selected.
    tokenizer, format, ties, batch_size, dtype, device, cache_dir, random_state, show_progress
        As :class:`~sftselect.selectors.ifd.IFDSelector`'s.
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "model": LOGPROB_MODEL,
        "k": [*K_CONSTRAINTS, None],
        "keep": [Options(*KEEP)],
        "conditioned": ["boolean"],
        "template": [Options(*TEMPLATES)],
        "tokenizer": TOKENIZER,
        "format": FORMAT_CONSTRAINTS,
        "max_length": [POSITIVE_INT, None],
        "min_score": BOUND,
        "max_score": BOUND,
        "ties": [Options(*TIE_RULES)],
        "batch_size": [POSITIVE_INT],
        "dtype": DTYPE,
        "device": DEVICE,
        "cache_dir": CACHE_DIR,
        "random_state": ["random_state"],
        "show_progress": ["boolean"],
    }

    def __init__(
        self,
        model: Any,
        k: int | float | None = 0.1,
        *,
        keep: str = "lowest",
        conditioned: bool = True,
        template: str = "alpaca",
        tokenizer: Any = None,
        format: Any = None,
        max_length: int | None = None,
        min_score: float | None = None,
        max_score: float | None = None,
        ties: str = "stable",
        batch_size: int = 16,
        dtype: str | None = None,
        device: str | None = None,
        cache_dir: Any = None,
        random_state: Any = None,
        show_progress: bool = True,
    ) -> None:
        self.model = model
        self.k = k
        self.keep = keep
        self.conditioned = conditioned
        self.template = template
        self.tokenizer = tokenizer
        self.format = format
        self.max_length = max_length
        self.min_score = min_score
        self.max_score = max_score
        self.ties = ties
        self.batch_size = batch_size
        self.dtype = dtype
        self.device = device
        self.cache_dir = cache_dir
        self.random_state = random_state
        self.show_progress = show_progress

    @property
    def largest(self) -> bool:  # type: ignore[override]
        """``keep="highest"`` (``keep`` is declared and checked by :meth:`check_k`)."""
        return self.keep == "highest"

    def spans_of(self, dataset: Dataset) -> dict[str, Callable[[], Iterator[Span]]]:
        self._validate_params()
        length = None if self.max_length is None else int(self.max_length)
        fmt = self._format(dataset)
        chunk = self._scorer().chunk_rows
        prompts = TEMPLATES[self.template]

        def span(row: Any) -> Span:
            if not self.conditioned:
                return Span(row.output, "", length)
            prompt = render_prompt(prompts, row)
            return Span(prompt + row.output, prompt, length)

        return {"answer": lambda: (span(r) for r in iter_rows(dataset, fmt, chunk))}

    def _score_with_rules(self, dataset: Dataset) -> Scored:
        owner = type(self).__name__
        answer = self._run_passes(dataset)["answer"]
        with np.errstate(over="ignore"):
            ppl = np.exp(answer.mean_nll())
        ppl[~np.isfinite(ppl)] = np.nan
        extra = {
            "n_nan": count_and_warn(owner, ppl, "perplexity"),
            "n_no_answer_tokens": int(np.count_nonzero(answer.n_tokens == 0)),
            "n_truncated": int(np.count_nonzero(answer.truncated)),
            "n_cached": int(answer.n_cached),
        }
        return Scored(ppl, None, extra)

    def _score(self, dataset: Dataset) -> np.ndarray:
        return self._score_with_rules(dataset).scores
