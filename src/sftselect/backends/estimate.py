"""Dry runs: what a batch of chat requests would cost, counted without sending.

:func:`estimate_requests` is shared by ``QualitySelector.estimate`` (``sftselect
select/score --dry-run``) and ``estimate_judge_cost`` (``sftselect judge
--dry-run``): identical requests count once, those already in the reply store
are left out, prompt tokens are counted with a ``str -> int`` function
(default: tiktoken's ``cl100k_base`` when installed, else characters / 4, and
the summary says which), and the cost bound charges every request to send its
``max_tokens`` of output. With the characters / 4 fallback the prompt tokens
are approximate, so the summary gives the cost as "about", not "at most". A
request without ``max_tokens`` has no bound, and the estimate says so instead
of guessing one. Nothing is written: the reply
store is only read (:func:`~sftselect.backends.cache.stored_keys`), and a
cache file that does not exist is not created.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..core.validation import param_error
from .base import ChatRequest, request_keys
from .cache import stored_keys

__all__ = ["CostEstimate", "estimate_requests", "token_counter"]


@dataclass(frozen=True)
class CostEstimate:
    """What a run would send: requests, prompt tokens, and a bound on the cost.

    ``max_output_tokens`` and ``cost_usd`` are None when some request to send
    has no ``max_tokens`` (its output, so the cost, has no bound).
    ``approximate`` is True when the prompt tokens are the characters / 4
    fallback (no tokenizer): the cost is then "about", not "at most", since an
    approximate count bounds nothing.
    """

    rows: int
    requests_to_send: int
    cached: int
    prompt_tokens: int
    max_output_tokens: int | None
    token_counter: str
    cost_usd: float | None
    unit: str = "rows"
    approximate: bool = False

    def summary(self) -> str:
        if self.max_output_tokens is None:
            out = "output tokens unbounded (a request has no max_tokens)"
        else:
            out = f"at most {self.max_output_tokens:,} output tokens"
        if self.max_output_tokens is None:
            cost = "estimated cost n/a (no bound on the output)"
        elif self.cost_usd is None:
            cost = "estimated cost n/a (no prices given)"
        elif self.approximate:
            cost = f"estimated cost about ${self.cost_usd:,.2f} (the prompt tokens are approximate)"
        else:
            cost = f"estimated cost at most ${self.cost_usd:,.2f}"
        return (
            f"{self.rows:,} {self.unit}: {self.requests_to_send:,} requests to send "
            f"({self.cached:,} cached), {self.prompt_tokens:,} prompt tokens "
            f"[{self.token_counter}], {out}; {cost}"
        )


APPROXIMATE = "approximate: characters / 4"  # the label of the fallback counter


def token_counter(count_tokens: Callable[[str], int] | None) -> tuple[Callable[[str], int], str]:
    """The prompt-token counter and its label: ``count_tokens`` if given, else
    tiktoken's ``cl100k_base`` when it loads, else characters / 4 (labelled
    "approximate")."""
    if count_tokens is not None:
        return count_tokens, getattr(count_tokens, "__name__", "custom")
    try:
        import tiktoken

        enc = tiktoken.get_encoding("cl100k_base")
    except Exception:  # not installed, or its encoding file cannot be had offline
        return (lambda s: math.ceil(len(s) / 4)), APPROXIMATE
    return (lambda s: len(enc.encode_ordinary(s))), "tiktoken cl100k_base"


def estimate_requests(
    requests: Sequence[ChatRequest],
    identity: str,
    store: Any,
    *,
    rows: int,
    unit: str = "rows",
    count_tokens: Callable[[str], int] | None = None,
    usd_per_1m_input: float | None = None,
    usd_per_1m_output: float | None = None,
    owner: str = "estimate_requests",
) -> CostEstimate:
    """Count what sending ``requests`` through the backend ``identity`` would cost.

    Parameters
    ----------
    requests:
        The requests a run would make.
    identity:
        The backend's identity (it keys the cache).
    store:
        The reply store a run would read; its hits are left out. It is only read:
        a :class:`~sftselect.backends.ReplyCache` file is opened read-only, and
        not created when it does not exist (nothing is cached then).
    rows, unit:
        What the requests are for, as the summary names it ("2,000 rows", "805 pairs").
    count_tokens:
        A ``str -> int`` prompt-token counter (see :func:`token_counter`).
    usd_per_1m_input, usd_per_1m_output:
        Prices per million tokens, non-negative; the cost is given only with both.
    owner:
        Who asked, as error messages name it.
    """
    for name, price in (
        ("usd_per_1m_input", usd_per_1m_input),
        ("usd_per_1m_output", usd_per_1m_output),
    ):
        if price is not None and (
            isinstance(price, bool)
            or not isinstance(price, numbers.Real)
            or not math.isfinite(price)
            or price < 0
        ):
            raise param_error(owner, name, "a non-negative number or None", price)
    by_key = dict(zip(request_keys(requests, identity), requests))
    hits = stored_keys(store, by_key)
    counter, label = token_counter(count_tokens)
    to_send = [r for k, r in by_key.items() if k not in hits]
    prompt_tokens = sum(sum(counter(text) for _, text in r.messages) for r in to_send)
    caps = [r.max_tokens for r in to_send]
    max_out = None if any(c is None for c in caps) else sum(caps)
    cost = None
    if max_out is not None and usd_per_1m_input is not None and usd_per_1m_output is not None:
        cost = prompt_tokens / 1e6 * usd_per_1m_input + max_out / 1e6 * usd_per_1m_output
    approximate = count_tokens is None and label == APPROXIMATE
    return CostEstimate(
        rows,
        len(to_send),
        len(hits),
        prompt_tokens,
        max_out,
        label,
        cost,
        unit=unit,
        approximate=approximate,
    )
