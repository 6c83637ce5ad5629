"""Pairwise LLM-as-judge: every prompt judged in both answer orders.

.. code-block:: python

    from sftselect.backends import OpenAICompatibleBackend
    from sftselect.evaluate import load_pairs, judge_pairs

    pairs = load_pairs("longest_1k.jsonl", "alpaca_52k.jsonl")       # sftselect.generate output
    judge = OpenAICompatibleBackend("gpt-4o")
    result = judge_pairs(pairs, judge, protocol="paper", cache="judge.sqlite")
    result.summary["overall"]["win_score"]
    result.save("longest-vs-full.json")

For pair ``i`` the judge gets two requests: A's answer shown first (order
``ab``), then B's (order ``ba``). Each reply is parsed strictly
(:mod:`sftselect.evaluate.parse`) into model A's outcome for that order, and the
two outcomes are combined by the paper's rule and by FastChat's
(:mod:`sftselect.evaluate.combine`). Requests go through the shared backends
layer (:func:`sftselect.backends.run_requests`): concurrent, identical requests
sent once, every reply cached as it arrives, so a re-run sends nothing and a
killed run resumes.

A pair with an unparsable reply in either order is left out of W/T/L and
counted under ``parse_failures``; a pair with a failed request is left out and
counted under ``request_failures`` (or the run raises, by default, after every
other reply has been cached). Either way :func:`judge_pairs` warns
(:class:`~sftselect.exceptions.JudgeFailureWarning`) with the counts and the
first pair left out.

:func:`estimate_judge_cost` counts what a run would send (requests not yet
cached, their prompt tokens, a cost bound) without sending anything.
"""

from __future__ import annotations

import math
import numbers
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..backends.base import ChatRequest
from ..backends.cache import MemoryCache, as_reply_store
from ..backends.estimate import estimate_requests
from ..backends.runner import failure_message, run_requests
from ..core.validation import check_choice, check_positive_int, param_error
from ..exceptions import JudgeFailureWarning, JudgeRequestError
from .combine import OUTCOME_NAMES, combine_fastchat, combine_paper, outcome_of_verdict
from .inputs import Pairs
from .parse import parse_reply
from .protocols import PairwiseProtocol, pairwise_protocol
from .result import RESULT_FORMAT, PairwiseResult
from .summary import summarize

__all__ = [
    "RESULT_FORMAT",
    "PairwiseResult",
    "estimate_judge_cost",
    "judge_pairs",
    "pairwise",
    "plan_requests",
]

_ORDERS = ("ab", "ba")


def plan_requests(
    pairs: Pairs,
    protocol: str | PairwiseProtocol = "paper",
    *,
    max_tokens: int | None = None,
    temperature: float | None = None,
) -> list[ChatRequest]:
    """The requests a run sends: for pair ``i``, order ``ab`` at ``2 i``, ``ba`` at ``2 i + 1``."""
    proto = pairwise_protocol(protocol)
    requests = []
    for prompt, a, b in zip(pairs.prompts, pairs.answers_a, pairs.answers_b):
        requests.append(proto.request(prompt, a, b, max_tokens=max_tokens, temperature=temperature))
        requests.append(proto.request(prompt, b, a, max_tokens=max_tokens, temperature=temperature))
    return requests


def estimate_judge_cost(
    pairs: Pairs,
    judge: Any,
    *,
    protocol: str | PairwiseProtocol = "paper",
    cache: Any = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    count_tokens: Any = None,
    usd_per_1m_input: float | None = None,
    usd_per_1m_output: float | None = None,
) -> Any:
    """What :func:`judge_pairs` with these settings would send, without sending anything.

    The requests are :func:`plan_requests`'s (two per pair); identical ones
    count once, and those already in ``cache`` (a reply store or a path; a
    path that does not exist holds nothing and is not created) are left out.
    Counted as ``QualitySelector.estimate`` counts: the prompt tokens of the
    requests to send with ``count_tokens`` (a ``str -> int`` function; default
    tiktoken's ``cl100k_base`` when installed, else characters / 4, labelled),
    and a cost bound, given both prices in USD per million tokens, that
    charges every request its ``max_tokens`` of output (the protocol's unless
    overridden). Returns a :class:`~sftselect.backends.estimate.CostEstimate`
    whose ``rows`` are the pairs. ``sftselect judge --dry-run`` prints its
    ``summary()``.
    """
    owner = "estimate_judge_cost"
    _check_pairs(pairs, owner)
    identity = getattr(judge, "identity", None)
    if not isinstance(identity, str) or not identity:
        raise param_error(owner, "judge", "a chat backend with an 'identity'", judge)
    _check_decoding(max_tokens, temperature, owner)
    requests = plan_requests(pairs, protocol, max_tokens=max_tokens, temperature=temperature)
    if isinstance(cache, (str, os.PathLike)) and not Path(cache).exists():
        cache = MemoryCache()  # nothing is cached yet, and a dry run creates no file
    return estimate_requests(
        requests,
        identity,
        as_reply_store(cache, owner),
        rows=len(pairs),
        unit="pairs",
        count_tokens=count_tokens,
        usd_per_1m_input=usd_per_1m_input,
        usd_per_1m_output=usd_per_1m_output,
        owner=owner,
    )


def _resolve_seed(random_state: Any, owner: str) -> int:
    if random_state is None:
        return int(np.random.SeedSequence().entropy)  # fresh, and recorded with the result
    if (
        isinstance(random_state, numbers.Integral)
        and not isinstance(random_state, bool)
        and random_state >= 0
    ):
        return int(random_state)
    raise param_error(owner, "random_state", "a non-negative int or None", random_state)


def _check_pairs(pairs: Any, owner: str) -> None:
    if not isinstance(pairs, Pairs):
        raise param_error(
            owner, "pairs", "a Pairs (see load_pairs, Pairs.from_lists)", type(pairs).__name__
        )
    if len(pairs) == 0:
        raise param_error(owner, "pairs", "at least one pair", "0 pairs")


def _check_decoding(max_tokens: Any, temperature: Any, owner: str) -> None:
    if max_tokens is not None:
        check_positive_int(max_tokens, "max_tokens", owner)
    if temperature is not None and (
        isinstance(temperature, bool)
        or not isinstance(temperature, numbers.Real)
        or not math.isfinite(temperature)
        or temperature < 0
    ):
        raise param_error(owner, "temperature", "a non-negative number or None", temperature)


def _check_options(
    max_tokens: Any, temperature: Any, n_bootstrap: Any, confidence: Any, owner: str
) -> None:
    _check_decoding(max_tokens, temperature, owner)
    if (
        isinstance(n_bootstrap, bool)
        or not isinstance(n_bootstrap, numbers.Integral)
        or n_bootstrap < 0
    ):
        raise param_error(owner, "n_bootstrap", "a non-negative int (0: no intervals)", n_bootstrap)
    if (
        isinstance(confidence, bool)
        or not isinstance(confidence, numbers.Real)
        or not 0.0 < float(confidence) < 1.0
    ):
        raise param_error(owner, "confidence", "a number in (0, 1)", confidence)


def _judgment(
    i: int, pairs: Pairs, proto: PairwiseProtocol, replies: Sequence[Any], errors: Sequence[Any]
) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "index": i,
        "testset": pairs.testsets[i],
        "id": pairs.ids[i],
        "prompt": pairs.prompts[i],
        "answer_a": pairs.answers_a[i],
        "answer_b": pairs.answers_b[i],
    }
    outcomes: dict[str, int | None] = {}
    failed = parse_failed = False
    for k, order in enumerate(_ORDERS):
        reply, error = replies[2 * i + k], errors[2 * i + k]
        rec[f"reply_{order}"] = reply.text if reply is not None else None
        if reply is None:
            failed = True
            rec[f"verdict_{order}"] = rec[f"scores_{order}"] = None
            rec[f"reason_{order}"] = f"request failed: {type(error).__name__}: {error}"
            outcomes[order] = None
            continue
        parsed = parse_reply(reply.text, proto.output, proto.scale)
        rec[f"verdict_{order}"] = parsed.verdict
        rec[f"scores_{order}"] = list(parsed.scores) if parsed.scores is not None else None
        rec[f"reason_{order}"] = parsed.reason
        if parsed.verdict is None:
            parse_failed = True
            outcomes[order] = None
        else:
            outcomes[order] = outcome_of_verdict(parsed.verdict, order)
    for order in _ORDERS:
        o = outcomes[order]
        rec[f"outcome_{order}"] = OUTCOME_NAMES[o] if o is not None else None
    if failed:
        rec["status"] = "request_failure"
    elif parse_failed:
        rec["status"] = "parse_failure"
    else:
        rec["status"] = "scored"
    o_ab, o_ba = outcomes["ab"], outcomes["ba"]
    if rec["status"] == "scored" and o_ab is not None and o_ba is not None:
        rec["outcome"] = OUTCOME_NAMES[combine_paper(o_ab, o_ba)]
        rec["outcome_fastchat"] = OUTCOME_NAMES[combine_fastchat(o_ab, o_ba)]
    else:
        rec["outcome"] = rec["outcome_fastchat"] = None
    return rec


def _warn_left_out(judgments: Sequence[dict[str, Any]]) -> None:
    """Warn when pairs were left out of W/T/L: how many, why, and the first one."""
    left_out = [j for j in judgments if j["status"] != "scored"]
    if not left_out:
        return
    parse = sum(j["status"] == "parse_failure" for j in left_out)
    failed = len(left_out) - parse
    first = left_out[0]
    order = next(
        o
        for o in _ORDERS
        if first[f"verdict_{o}"] is None
        and (first["status"] == "parse_failure" or first[f"reply_{o}"] is None)
    )
    reason = first[f"reason_{order}"]
    reply = first[f"reply_{order}"]
    if reply is not None and repr(reply[:60]) not in reason:
        reason += f"; the reply begins {reply[:60]!r}"
    scored = len(judgments) - len(left_out)
    warnings.warn(
        f"judge_pairs: {len(left_out)} of {len(judgments)} pairs were left out of W/T/L "
        f"({parse} with an unparsable reply, {failed} with a failed request), so the win score "
        f"counts {scored} pairs (first left out: pair {first['index']}, test set "
        f"{first['testset']!r}, id {first['id']!r}, order {order}: {reason}). Each judgment "
        "of the result holds its replies and the reasons.",
        JudgeFailureWarning,
        stacklevel=3,
    )


def judge_pairs(
    pairs: Pairs,
    judge: Any,
    *,
    protocol: str | PairwiseProtocol = "paper",
    cache: Any = None,
    max_concurrency: int = 64,
    max_tokens: int | None = None,
    temperature: float | None = None,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    random_state: int | None = 0,
    on_request_error: str = "raise",
    show_progress: bool = False,
) -> PairwiseResult:
    """Judge every pair in both orders and summarize.

    Parameters
    ----------
    pairs : Pairs
        From :func:`~sftselect.evaluate.load_pairs` or :meth:`Pairs.from_lists`.
    judge : chat backend
        Anything with ``identity`` and ``async chat(request)``
        (:mod:`sftselect.backends`).
    protocol : str or PairwiseProtocol, default "paper"
        ``"paper"``, ``"fastchat-pair-v2"``, ``"length-debiased"`` or your own.
    cache : ReplyCache, MemoryCache, path or None
        Where replies are kept; a path opens a SQLite :class:`ReplyCache`
        (a re-run sends nothing; a killed run resumes). None: memory, this
        call only.
    max_concurrency : int, default 64
        Requests in flight at once (the backend may bound them further).
    max_tokens, temperature : int, float or None
        Decoding overrides; None keeps the protocol's.
    n_bootstrap : int, default 1000
        Bootstrap resamples for the win-score intervals (0: none).
    confidence : float, default 0.95
        The intervals' coverage.
    random_state : int or None, default 0
        The bootstrap seed, recorded with the result; None draws a fresh one
        (and records it).
    on_request_error : {"raise", "omit"}, default "raise"
        A request that fails after the backend's retries raises
        :class:`~sftselect.exceptions.JudgeRequestError` once the run is over
        (the replies received are cached, so running again resumes), or its
        pair is left out and counted under ``request_failures``
        (command line: ``--on-request-error raise|omit``).
    show_progress : bool, default False

    Returns
    -------
    PairwiseResult

    Warns
    -----
    JudgeFailureWarning
        When any pair is left out of W/T/L (an unparsable reply, or a failed
        request with ``on_request_error="omit"``): how many, for which
        reason, and the first such pair with its reason. When every pair is
        left out, ``win_score`` is None (``sftselect judge`` then exits 2).
    """
    owner = "judge_pairs"
    _check_pairs(pairs, owner)
    proto = pairwise_protocol(protocol)
    check_choice(on_request_error, "on_request_error", owner, ("raise", "omit"))
    concurrency = check_positive_int(max_concurrency, "max_concurrency", owner)
    _check_options(max_tokens, temperature, n_bootstrap, confidence, owner)
    seed = _resolve_seed(random_state, owner)
    requests = plan_requests(pairs, proto, max_tokens=max_tokens, temperature=temperature)
    result = run_requests(
        judge,
        requests,
        cache=as_reply_store(cache, owner),
        max_concurrency=concurrency,
        show_progress=bool(show_progress),
        desc="judging",
    )
    judgments = [
        _judgment(i, pairs, proto, result.replies, result.errors) for i in range(len(pairs))
    ]
    failed = sum(j["status"] == "request_failure" for j in judgments)
    if failed and on_request_error == "raise":
        report = result.report
        raise JudgeRequestError(
            f"{failed} of {len(pairs)} pairs are unjudged: "
            + failure_message(
                report,
                report.failures,
                report.unique,
                "judge requests",
                "on_request_error='omit' (command line: --on-request-error omit)",
            )
        )
    _warn_left_out(judgments)
    summary = summarize(
        judgments,
        pairs,
        n_bootstrap=int(n_bootstrap),
        confidence=float(confidence),
        random_state=seed,
    )
    first = requests[0]
    return PairwiseResult(
        pairs=pairs,
        protocol=proto,
        judge=judge.identity,
        judgments=judgments,
        summary=summary,
        report=result.report,
        decoding={
            "max_tokens": first.max_tokens,
            "temperature": first.temperature,
            "top_p": first.top_p,
        },
        bootstrap={"n_resamples": int(n_bootstrap), "confidence": float(confidence), "seed": seed},
    )


def pairwise(
    prompts: Sequence[str],
    answers_a: Sequence[str],
    answers_b: Sequence[str],
    *,
    judge: Any,
    protocol: str | PairwiseProtocol = "paper",
    testsets: Sequence[str] | str | None = None,
    ids: Sequence[str | int] | None = None,
    model_a: str = "A",
    model_b: str = "B",
    cache: Any = None,
    max_concurrency: int = 64,
    max_tokens: int | None = None,
    temperature: float | None = None,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    random_state: int | None = 0,
    on_request_error: str = "raise",
    show_progress: bool = False,
) -> PairwiseResult:
    """Judge ``answers_a[i]`` against ``answers_b[i]`` for each ``prompts[i]``, both orders.

    The lists are checked and frozen with :meth:`Pairs.from_lists` (``testsets``
    may be one name for all rows; ``ids`` default to the row numbers); every
    other parameter is :func:`judge_pairs`'s.
    """
    pairs = Pairs.from_lists(
        prompts,
        answers_a,
        answers_b,
        testsets=testsets,
        ids=ids,
        model_a=model_a,
        model_b=model_b,
        sources={"format": "lists"},
        owner="pairwise",
    )
    return judge_pairs(
        pairs,
        judge,
        protocol=protocol,
        cache=cache,
        max_concurrency=max_concurrency,
        max_tokens=max_tokens,
        temperature=temperature,
        n_bootstrap=n_bootstrap,
        confidence=confidence,
        random_state=random_state,
        on_request_error=on_request_error,
        show_progress=show_progress,
    )
