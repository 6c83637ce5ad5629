"""IFDSelector (Cherry LLM) and SuperfilteringSelector: instruction-following difficulty.

IFD (Li et al., NAACL 2024, github.com/tianyi-lab/Cherry_LLM at 01fac8d) compares
how hard the answer is to predict with and without its instruction:

    IFD = mean CE(answer tokens | Cherry's Alpaca prompt) / mean CE(answer tokens | "### Response:")

Superfiltering (Li et al., ACL 2024, github.com/tianyi-lab/Superfiltering at f0764af)
scores the same idea with a small model (GPT-2), a plain prompt
(``{instruction}\\n{input}\\n``) and a ratio of perplexities:

    IFD = exp(mean CE(answer | prompt)) / exp(mean CE(answer alone))

Both keep the highest IFD first and drop rows with IFD >= 1 (the instruction does
not help predict the answer: the authors' misalignment rule, Cherry_LLM issue 2).
Truncation, skip rules and every difference from the scripts are on the docs pages
``docs/selectors/ifd.md`` and ``docs/selectors/superfiltering.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..core.base import Selector
from ..core.constraints import K_CONSTRAINTS, Options
from ..data.formats import FORMAT_CONSTRAINTS
from ..models.logprobs import Span
from .logprob_base import (
    CACHE_DIR,
    DEVICE,
    DTYPE,
    LOGPROB_MODEL,
    POSITIVE_INT,
    TOKENIZER,
    LogProbSelector,
    Row,
    count_and_warn,
    iter_rows,
)
from .score import BOUND, TIE_RULES, Scored

if TYPE_CHECKING:
    from datasets import Dataset

__all__ = ["CHERRY_PROMPTS", "SUPERFILTERING_PROMPTS", "IFDSelector", "SuperfilteringSelector"]

#: Cherry LLM's ``PROMPT_DICT`` (``cherry_seletion/data_analysis.py``), verbatim.
CHERRY_PROMPTS = {
    "prompt_input": (
        "Below is an instruction that describes a task, paired with an input that provides "
        "further context. Write a response that appropriately completes the request.\n\n"
        "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:"
    ),
    "prompt_no_input": (
        "Below is an instruction that describes a task. "
        "Write a response that appropriately completes the request.\n\n"
        "### Instruction:\n{instruction}\n\n### Response:"
    ),
}
#: Superfiltering's ``PROMPT_DICT_NONE`` (``code_ifd/data_analysis.py``), verbatim.
SUPERFILTERING_PROMPTS = {
    "prompt_input": "{instruction}\n{input}\n",
    "prompt_no_input": "{instruction}\n",
}

#: What Cherry puts before the answer in its answer-alone pass.
CHERRY_ANSWER_PREFIX = "### Response:"


def render_prompt(prompts: dict[str, str], row: Row) -> str:
    """The prompt of ``row`` under ``prompts`` (the no-input form when the input is empty)."""
    if row.input == "":
        return prompts["prompt_no_input"].format_map({"instruction": row.instruction})
    return prompts["prompt_input"].format_map({"instruction": row.instruction, "input": row.input})


class IFDSelector(LogProbSelector):
    """Select the rows with the highest IFD (Cherry LLM), dropping IFD >= ``ifd_limit``.

    Parameters
    ----------
    model : str, path, transformers model or LogProbScorer
        The causal LM (a folder, hub name or ``.gguf`` file, a loaded model with
        ``tokenizer``, or a :class:`~sftselect.models.logprobs.LogProbScorer`, which
        keeps a loaded model across calls). Cherry uses the model being fine-tuned
        (after its "pre-experienced" phase).
    k : int, float or None, default 0.1
        Rows to keep: an int, a fraction of the rows (rounded up), or None for every
        eligible row.
    tokenizer : str, path, tokenizer or None
        None: the model's own.
    format : str, Format or None
        A flat format (instruction, input, response columns); None detects it.
    max_length : int, default 512
        Cherry's ``--max_length``: the conditioned text is truncated here and the
        answer-alone text at ``max_length - prompt tokens + 4``; 512 is what both of
        Cherry's scripts are run with (``scripts/cherry_*.sh``).
    ifd_limit : float or None, default 1.0
        Rows with IFD >= this are never selected (None: no limit).
    cherry_skips : bool, default True
        Also never select the rows Cherry's ``data_by_IFD.py`` skips: a prompt of
        ``max_length`` tokens or more, and prompt + answer-alone tokens over ``max_length``.
    min_score, max_score : float or None
        Inclusive IFD bounds.
    ties : {"stable", "random"}, default "stable"
    batch_size : int, default 16
        Rows per forward pass.
    dtype, device : str or None
        See :class:`~sftselect.models.logprobs.LogProbScorer`.
    cache_dir : str, path or None
        Keep every row's log-probs there (a re-run or a killed run pays nothing twice).
    random_state : int, Generator or None
        Seed for ``ties="random"``.
    show_progress : bool, default True
    """

    _prompts = CHERRY_PROMPTS
    _default_max_length = 512
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "model": LOGPROB_MODEL,
        "k": [*K_CONSTRAINTS, None],
        "tokenizer": TOKENIZER,
        "format": FORMAT_CONSTRAINTS,
        "max_length": [POSITIVE_INT],
        "ifd_limit": BOUND,
        "cherry_skips": ["boolean"],
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
        tokenizer: Any = None,
        format: Any = None,
        max_length: int = 512,
        ifd_limit: float | None = 1.0,
        cherry_skips: bool = True,
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
        self.tokenizer = tokenizer
        self.format = format
        self.max_length = max_length
        self.ifd_limit = ifd_limit
        self.cherry_skips = cherry_skips
        self.batch_size = batch_size
        self.dtype = dtype
        self.device = device
        self.cache_dir = cache_dir
        self.show_progress = show_progress
        super().__init__(
            k,
            min_score=min_score,
            max_score=max_score,
            largest=True,
            ties=ties,
            random_state=random_state,
        )

    def check_k(self) -> int | float | None:
        """``k``, the bounds and ``ifd_limit``: ``k=None`` keeps every row under the limit."""
        if self.k is None and self.ifd_limit is not None:
            k = Selector.check_k(self)
            self.bounds()
            return k
        return super().check_k()

    # -- the two passes --------------------------------------------------------
    def _condition_span(self, row: Row, length: int) -> Span:
        prompt = render_prompt(self._prompts, row)
        return Span(prompt + row.output, prompt, length)

    def _alone_span(self, row: Row, length: int) -> Span:
        prompt = render_prompt(self._prompts, row)
        text = CHERRY_ANSWER_PREFIX + row.output
        return Span(text, CHERRY_ANSWER_PREFIX, length, budget_of=prompt, budget_extra=4)

    def spans_of(self, dataset: Dataset) -> dict[str, Callable[[], Iterator[Span]]]:
        self._validate_params()
        length = int(self.max_length)
        fmt = self._format(dataset)
        chunk = self._scorer().chunk_rows

        def passes(make: Callable[[Row, int], Span]) -> Callable[[], Iterator[Span]]:
            return lambda: (make(r, length) for r in iter_rows(dataset, fmt, chunk))

        return {"conditioned": passes(self._condition_span), "alone": passes(self._alone_span)}

    # -- the score ---------------------------------------------------------------
    def _ratio(self, conditioned: np.ndarray, alone: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = conditioned / alone
        ratio[~np.isfinite(ratio)] = np.nan
        return ratio

    def _skips(self, passes: dict[str, Any], length: int) -> np.ndarray:
        """Cherry's ``data_by_IFD.py`` skips: prompt too long, prompt + answer too long."""
        alone = passes["alone"]
        prompt_len = alone.n_budget
        return (length - prompt_len <= 0) | (prompt_len + alone.n_tokens > length)

    def _check_rules(self) -> tuple[float | None, bool]:
        """``ifd_limit`` as a float (None: no limit) and whether Cherry's skips apply
        (their types are declared and checked by :meth:`check_k`)."""
        limit = None if self.ifd_limit is None else float(self.ifd_limit)
        return limit, bool(getattr(self, "cherry_skips", False))

    def _score_with_rules(self, dataset: Dataset) -> Scored:
        owner = type(self).__name__
        limit, skips = self._check_rules()
        length = int(self.max_length)
        passes = self._run_passes(dataset)
        cond, alone = passes["conditioned"], passes["alone"]
        ifd = self._ratio(cond.mean_nll(), alone.mean_nll())
        keep = np.ones(len(dataset), dtype=bool)
        n_skipped = 0
        if skips:
            skipped = self._skips(passes, length)
            n_skipped = int(np.count_nonzero(skipped & ~np.isnan(ifd)))
            keep &= ~skipped
        n_over = 0
        if limit is not None:
            over = ifd >= limit
            n_over = int(np.count_nonzero(over & keep))
            keep &= ~over
        extra = {
            "n_nan": count_and_warn(owner, ifd, "IFD"),
            "n_no_answer_tokens": int(np.count_nonzero(cond.n_tokens == 0)),
            "n_truncated_conditioned": int(np.count_nonzero(cond.truncated)),
            "n_truncated_alone": int(np.count_nonzero(alone.truncated)),
            "n_skipped_by_reference_rule": n_skipped,
            "n_ifd_at_or_above_limit": n_over,
            "n_cached": {name: int(p.n_cached) for name, p in passes.items()},
            "head_only": bool(self._scorer()._head_only)
            if self._scorer()._loaded is not None
            else None,
        }
        return Scored(ifd, keep, extra)

    def _score(self, dataset: Dataset) -> np.ndarray:
        return self._score_with_rules(dataset).scores


class SuperfilteringSelector(IFDSelector):
    """Select by Superfiltering's IFD: a small model's perplexity ratio (see the module docstring).

    Parameters are :class:`IFDSelector`'s, without ``cherry_skips`` (Superfiltering
    has no extra skip rule), and with these defaults:

    Parameters
    ----------
    model : str, path, transformers model or LogProbScorer, default "gpt2"
        The paper's model is GPT-2 (a hub name); any causal LM works.
    max_length : int, default 1024
        Superfiltering's ``--max_length``: the conditioned text is truncated here
        and the answer-alone text at ``max_length - prompt tokens + 1``.
    ifd_limit : float or None, default 1.0
        ``select_data.py``'s ``--filter_threash``: rows with IFD >= it are dropped.
    """

    _prompts = SUPERFILTERING_PROMPTS
    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        name: constraints
        for name, constraints in IFDSelector._parameter_constraints.items()
        if name != "cherry_skips"
    }

    def __init__(
        self,
        model: Any = "gpt2",
        k: int | float | None = 0.1,
        *,
        tokenizer: Any = None,
        format: Any = None,
        max_length: int = 1024,
        ifd_limit: float | None = 1.0,
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
        self.tokenizer = tokenizer
        self.format = format
        self.max_length = max_length
        self.ifd_limit = ifd_limit
        self.batch_size = batch_size
        self.dtype = dtype
        self.device = device
        self.cache_dir = cache_dir
        self.show_progress = show_progress
        self.k = k
        self.min_score = min_score
        self.max_score = max_score
        self.largest = True
        self.ties = ties
        self.random_state = random_state

    def _alone_span(self, row: Row, length: int) -> Span:
        prompt = render_prompt(self._prompts, row)
        return Span(row.output, "", length, budget_of=prompt, budget_extra=1)

    def _ratio(self, conditioned: np.ndarray, alone: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            ratio = np.exp(conditioned) / np.exp(alone)
        ratio[~np.isfinite(ratio)] = np.nan
        return ratio
