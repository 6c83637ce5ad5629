"""QualitySelector's expected scoring (``scoring="expected"``, G-Eval's formula).

The judge is asked for each reply token's log-probability and its
``top_logprobs`` most likely alternatives; a row's score is then the expected
rating over the scale's tokens at the position of the rating it wrote
(:func:`sftselect.scoring.expected.expected_rating` gives the rule). This module
holds what the selector does around that formula:

* :func:`check_expected`: the rule a declaration cannot state (a scale of
  single digits; ``top_logprobs``, from 0 to 20, is declared on the selector);
* :func:`probe_logprobs`: before paying for the run, one reply is checked. The
  first cached reply of the run, if any, must carry log-probabilities;
  otherwise the first request not cached is sent alone and its reply must. An
  endpoint that returns none (``transformers serve``, a callable backend;
  the local ``TransformersChatBackend`` returns them) stops the run there with one :class:`~sftselect.exceptions.JudgeLogprobsError`
  line naming it, having paid for at most that one request;
* :func:`expected_scores`: the scores, the probability mass covered per row,
  and the counts the provenance records. A later reply without
  log-probabilities (a server that gives them only sometimes) scores NaN and
  is counted, never given its parsed rating.
"""

from __future__ import annotations

import itertools
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..backends.base import ChatReply, ChatRequest, request_keys
from ..backends.cache import stored_keys
from ..backends.runner import RunResult, run_requests
from ..exceptions import InvalidParameterError, JudgeFailureWarning, JudgeLogprobsError
from ..scoring.expected import expected_rating, scale_digits
from ..scoring.rating import ParsedRating
from .ratings import Ratings, merge_reports

__all__ = [
    "EXPECTED_MAX_TOKENS",
    "MASS_BINS",
    "SCORINGS",
    "ExpectedScores",
    "apply_expected",
    "check_expected",
    "expected_scores",
    "no_logprobs_error",
    "probe_logprobs",
    "run_probed",
    "warn_expected_failures",
]

#: The values of ``QualitySelector(scoring=...)``: the parsed rating (AlpaGasus), or
#: G-Eval's expected score over the scale's tokens.
SCORINGS = ("rating", "expected")

#: The reply length asked for with ``scoring="expected"`` when ``max_tokens`` is not
#: given (the prompt's own, AlpaGasus's 256, otherwise): each token comes with its
#: ``top_logprobs`` alternatives, sent and cached (about 160 KB a 256-token reply with 20),
#: while the rating is in the first line. G-Eval asked for 5 tokens; 16 also reach a
#: rating written in a short sentence ("I would rate this response 4").
EXPECTED_MAX_TOKENS = 16

#: The provenance counts the scored rows by the probability mass covered, in bins with
#: these edges (each bin holds ``lower <= mass < upper``).
MASS_BINS = (0.5, 0.9, 0.99)


def check_expected(owner: str, top_logprobs: Any, scale: tuple[float, float]) -> int:
    """The scale checked (single digits) and ``top_logprobs`` as an int (its range, 0 to
    20, is declared on :class:`~sftselect.selectors.quality.QualitySelector`)."""
    try:
        scale_digits(scale)
    except ValueError as exc:
        raise InvalidParameterError(f"{owner}(scoring='expected'): {exc}.") from None
    return int(top_logprobs)


def no_logprobs_error(owner: str, judge: Any, top_logprobs: int) -> JudgeLogprobsError:
    """The one-line error for a judge whose reply came without log-probabilities."""
    identity = getattr(judge, "identity", None) or type(judge).__name__
    return JudgeLogprobsError(
        f"{owner}(scoring='expected'): the judge {identity} returned a reply without "
        f"log-probabilities (asked for top_logprobs={top_logprobs}), so it cannot give an "
        "expected score; use a judge that returns them (an OpenAI, vLLM or llama.cpp server "
        "endpoint, or the in-process TransformersChatBackend, command line: --local-judge "
        "PATH) or scoring='rating' (command line: --judge-scoring rating)."
    )


def probe_logprobs(
    judge: Any,
    requests: Sequence[ChatRequest],
    store: Any,
    *,
    owner: str,
    top_logprobs: int,
) -> RunResult | None:
    """Check one reply before the run pays for the others (see the module docstring).

    Returns the probe's run (its reply is then cached, and the run that follows
    reads it from there), or None when nothing was sent. Raises
    :class:`~sftselect.exceptions.JudgeLogprobsError` when the checked reply
    has no log-probabilities. A probe whose request failed returns its run: the
    run that follows retries it, and reports it as any other failure.
    """
    identity = getattr(judge, "identity", None)
    if not requests or not isinstance(identity, str) or not identity:
        return None  # the runner reports a judge without an identity
    keys = request_keys(requests, identity)
    cached = stored_keys(store, keys)
    first_cached = next((k for k in keys if k in cached), None)
    if first_cached is not None:
        reply = store.get_many([first_cached]).get(first_cached)
        if reply is not None and reply.logprobs is None:
            raise no_logprobs_error(owner, judge, top_logprobs)
    first_new = next((i for i, k in enumerate(keys) if k not in cached), None)
    if first_new is None:
        return None
    probe = run_requests(judge, [requests[first_new]], cache=store, max_concurrency=1)
    reply = probe.replies[0]
    if reply is not None and reply.logprobs is None:
        raise no_logprobs_error(owner, judge, top_logprobs)
    return probe


def run_probed(
    judge: Any,
    requests: Sequence[ChatRequest],
    store: Any,
    *,
    owner: str,
    top_logprobs: int | None,
    max_concurrency: int,
    show_progress: bool,
) -> RunResult:
    """:func:`probe_logprobs` when ``top_logprobs`` is set, then the whole run; the
    probe's request is reported as sent once (the run read its reply back from the
    cache)."""
    probe = None
    if top_logprobs is not None:
        probe = probe_logprobs(judge, requests, store, owner=owner, top_logprobs=top_logprobs)
    result = run_requests(
        judge,
        requests,
        cache=store,
        max_concurrency=max_concurrency,
        show_progress=show_progress,
        desc="rating",
    )
    if probe is not None:
        merge_reports(result.report, probe.report)
        result.report.requests -= probe.report.requests
        result.report.unique -= probe.report.unique
        result.report.cache_hits -= probe.report.succeeded
    return result


def warn_expected_failures(owner: str, expected: ExpectedScores, rated: int) -> None:
    """The warning for rows whose rating parsed but that have no expected score."""
    if not expected.failures:
        return
    row, why = next(iter(expected.reasons.items()))
    warnings.warn(
        f"{owner}: {expected.failures} of {rated} rated rows have no expected score; they "
        f"score NaN and are never selected (first: row {row}, {why}). Ratings.reasons and "
        "the provenance list them.",
        JudgeFailureWarning,
        stacklevel=4,
    )


@dataclass
class ExpectedScores:
    """Expected scores and masses per row (NaN where none), why rows have none, and
    the counts for the provenance (every one additive across blocks of rows)."""

    scores: np.ndarray
    mass: np.ndarray
    reasons: dict[int, str] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)

    @property
    def failures(self) -> int:
        """Rows whose rating parsed but that have no expected score."""
        return len(self.reasons)


def _bin_names() -> list[str]:
    edges = [f"{e:g}" for e in MASS_BINS]
    names = [f"mass_under_{edges[0]}"]
    names += [f"mass_{a}_to_{b}" for a, b in itertools.pairwise(edges)]
    return [*names, f"mass_{edges[-1]}_or_more"]


def expected_scores(
    rows: np.ndarray,
    parsed: Sequence[ParsedRating | None],
    replies: Sequence[ChatReply | None],
    scale: tuple[float, float],
    n_rows: int,
    *,
    owner: str,
    judge: Any,
    top_logprobs: int,
) -> ExpectedScores:
    """The expected score of every row whose reply parsed (request failures and
    unparsable replies stay NaN, counted where they are in the default scoring).

    Raises :class:`~sftselect.exceptions.JudgeLogprobsError` when replies were
    received and not one carried log-probabilities (a run read whole from a cache
    filled by an endpoint without them).
    """
    out = ExpectedScores(np.full(n_rows, np.nan), np.full(n_rows, np.nan))
    failures: Counter[str] = Counter()
    names = _bin_names()
    bins = dict.fromkeys(names, 0)
    mass_sum = 0.0
    received = [r for r in replies if r is not None]
    if received and all(r.logprobs is None for r in received):
        raise no_logprobs_error(owner, judge, top_logprobs)
    for row, p, reply in zip(rows.tolist(), parsed, replies):
        if p is None or p.value is None or reply is None:
            continue
        if reply.logprobs is None:
            failures["no_logprobs"] += 1
            out.reasons[row] = "expected score: the reply came without log-probabilities"
            continue
        e = expected_rating(reply.logprobs, p.value, scale)
        if e.mass is not None:
            out.mass[row] = e.mass
        if e.value is None:
            kind = (
                "no_rating_token"
                if e.position is None
                else ("no_mass" if e.mass == 0.0 else "nan_logprob")
            )
            failures[kind] += 1
            out.reasons[row] = f"expected score: {e.reason}"
            continue
        out.scores[row] = e.value
        mass_sum += e.mass  # type: ignore[operator]
        bins[names[int(np.searchsorted(MASS_BINS, e.mass, side="right"))]] += 1
    out.counts = {
        "rows": int(np.count_nonzero(~np.isnan(out.scores))),
        "mass_sum": mass_sum,
        **bins,
        **{k: failures[k] for k in ("no_logprobs", "no_rating_token", "no_mass", "nan_logprob")},
    }
    return out


def apply_expected(
    ratings: Ratings,
    rows: np.ndarray,
    parsed: Sequence[ParsedRating | None],
    replies: Sequence[ChatReply | None],
    scale: tuple[float, float],
    judge: Any,
    top_logprobs: int,
    owner: str = "QualitySelector",
) -> ExpectedScores:
    """Replace ``ratings``' parsed scores by the expected scores (in place): scores,
    masses, the reasons of rows without one, and the counts of the summary."""
    expected = expected_scores(
        rows, parsed, replies, scale, len(ratings.scores), owner=owner,
        judge=judge, top_logprobs=top_logprobs,
    )  # fmt: skip
    for row, why in expected.reasons.items():
        ratings.reasons[row] = why
    ratings.scores, ratings.mass, ratings.scoring = expected.scores, expected.mass, "expected"
    ratings.expected_failures, ratings.expected = expected.failures, expected.counts
    return expected
