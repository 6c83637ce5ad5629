"""What :class:`~sftselect.models.logprobs.LogProbScorer` reads and returns: a
:class:`Span` (one text, its context prefix and truncation rule) and :class:`LogProbs`
(per-span sums, counts and flags), and the small helpers that move them in and out of
the cache."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .logprob_cache import CachedSpan

__all__ = ["LogProbs", "Span"]


@dataclass(frozen=True)
class Span:
    """One text to score: the tokens after ``prefix`` given everything before them.

    ``prefix`` must be a prefix of ``text`` (``""``: score from the second token).
    ``max_length`` truncates ``text`` (None: the model's context); with
    ``budget_of``, the limit is ``max_length - len(encode(budget_of, truncation at
    max_length)) + budget_extra`` (see the module docstring).
    """

    text: str
    prefix: str = ""
    max_length: int | None = None
    budget_of: str | None = None
    budget_extra: int = 0

    def key_text(self) -> bytes:
        parts = [
            self.text,
            self.prefix,
            repr(self.max_length),
            "" if self.budget_of is None else "\1" + self.budget_of,
            str(self.budget_extra),
        ]
        h = hashlib.sha256()
        for p in parts:
            b = p.encode("utf-8", "surrogatepass")
            h.update(len(b).to_bytes(8, "little"))
            h.update(b)
        return h.digest()


@dataclass
class LogProbs:
    """Per-span results of :meth:`LogProbScorer.score` (one entry per span, in order).

    ``nll_sum``: summed negative log-likelihood of the scored tokens (float64; NaN
    when a value was not finite); ``n_tokens``: how many tokens were scored;
    ``n_budget``: the token count of ``budget_of`` (0 without one); ``truncated``:
    the text was cut at its limit; ``token_nll``: per-token values (float32) when
    asked for, else None; ``n_cached``: spans read from the cache.
    """

    nll_sum: np.ndarray
    n_tokens: np.ndarray
    n_budget: np.ndarray
    truncated: np.ndarray
    token_nll: list[np.ndarray] | None
    n_cached: int

    def mean_nll(self) -> np.ndarray:
        """Mean NLL per span: NaN where nothing was scored or the sum is not finite."""
        with np.errstate(divide="ignore", invalid="ignore"):
            mean = self.nll_sum / self.n_tokens
        mean[(self.n_tokens == 0) | ~np.isfinite(self.nll_sum)] = np.nan
        return mean


def _encode(tok: Any, text: str, limit: int | None) -> list[int]:
    if limit is None:
        return list(tok.encode(text))
    return list(tok.encode(text, truncation=True, max_length=limit))


def _chunks(spans: Iterable[Span], size: int) -> Iterator[list[Span]]:
    it = iter(spans)
    while chunk := list(itertools.islice(it, int(size))):
        yield chunk


def _store(out: LogProbs, i: int, hit: CachedSpan) -> None:
    out.nll_sum[i] = hit.nll_sum
    out.n_tokens[i] = hit.n_tokens
    out.n_budget[i] = hit.n_budget
    out.truncated[i] = hit.truncated
    if out.token_nll is not None and hit.token_nll is not None:
        out.token_nll[i] = hit.token_nll


def _entry(out: LogProbs, i: int, per_token: bool) -> CachedSpan:
    tokens = out.token_nll[i] if per_token and out.token_nll is not None else None
    return CachedSpan(
        float(out.nll_sum[i]),
        int(out.n_tokens[i]),
        int(out.n_budget[i]),
        bool(out.truncated[i]),
        tokens,
    )


def _progress(show: bool, total: int | None, desc: str) -> Any:
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="span")
