"""The numbers a careful reader needs, per test set and overall.

For a group of pairs (one test set, or all of them):

``pairs``
    pairs in the group; ``scored = win + tie + lose`` of them have a parsed
    verdict in both orders.
``win``, ``tie``, ``lose``, ``win_score``, ``win_score_ci``
    the paper's rule and its win score ``(W - L) / N + 1`` (None when no pair
    was scored), with a seeded percentile bootstrap interval (None when
    ``n_bootstrap=0`` or no pair was scored).
``fastchat``
    ``win``, ``tie``, ``lose`` under FastChat's rule and ``win_rate_adjusted``
    ``(W + 0.5 T) / N``.
``parse_failures``, ``unparsable_replies``, ``request_failures``
    pairs left out because a reply (in at least one order) could not be
    parsed; the unparsable replies themselves; pairs left out because a
    request failed.
``position_flips``, ``position_flip_rate``
    scored pairs whose outcome for A differs between the two orders, and their
    share of the scored pairs (None when none was scored).
``verdicts_by_position``
    parsed replies preferring the answer shown ``first``, ``second``, or a ``tie``.
``mean_chars_a/b``, ``mean_words_a/b``
    the mean length of each side's answers over all pairs of the group, in
    characters and in whitespace-separated words.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .combine import (
    OUTCOME_NAMES,
    adjusted_win_rate,
    bootstrap_win_score_ci,
    group_seed,
    win_score,
)
from .inputs import Pairs

__all__ = ["OVERALL_SEED_KEY", "summarize", "summarize_group"]

#: The name the overall group's bootstrap seed is derived from (not a test-set name).
OVERALL_SEED_KEY = "\x00overall"

_NAME_TO_OUTCOME = {v: k for k, v in OUTCOME_NAMES.items()}


def _mean(values: Sequence[int]) -> float | None:
    return sum(values) / len(values) if values else None


def summarize_group(
    judgments: Sequence[dict[str, Any]],
    pairs: Pairs,
    rows: Sequence[int],
    *,
    n_bootstrap: int,
    confidence: float,
    random_state: int,
    seed_key: str,
) -> dict[str, Any]:
    """The summary of the pairs at positions ``rows`` (see the module docstring)."""
    scored = [judgments[i] for i in rows if judgments[i]["status"] == "scored"]
    paper = [_NAME_TO_OUTCOME[j["outcome"]] for j in scored]
    fast = [_NAME_TO_OUTCOME[j["outcome_fastchat"]] for j in scored]
    w, t, lo = paper.count(1), paper.count(0), paper.count(-1)
    fw, ft, fl = fast.count(1), fast.count(0), fast.count(-1)
    flips = sum(j["outcome_ab"] != j["outcome_ba"] for j in scored)
    by_position = {"first": 0, "second": 0, "tie": 0}
    unparsable = 0
    for i in rows:
        for order in ("ab", "ba"):
            verdict = judgments[i][f"verdict_{order}"]
            if verdict is not None:
                by_position[verdict] += 1
            elif judgments[i][f"reply_{order}"] is not None:
                unparsable += 1
    ci = None
    if paper and n_bootstrap > 0:
        ci = list(
            bootstrap_win_score_ci(
                paper,
                n_resamples=n_bootstrap,
                confidence=confidence,
                random_state=group_seed(random_state, seed_key),
            )
        )
    chars_a = [len(pairs.answers_a[i]) for i in rows]
    chars_b = [len(pairs.answers_b[i]) for i in rows]
    words_a = [len(pairs.answers_a[i].split()) for i in rows]
    words_b = [len(pairs.answers_b[i].split()) for i in rows]
    return {
        "pairs": len(rows),
        "scored": len(scored),
        "win": w,
        "tie": t,
        "lose": lo,
        "win_score": win_score(w, t, lo) if scored else None,
        "win_score_ci": ci,
        "fastchat": {
            "win": fw,
            "tie": ft,
            "lose": fl,
            "win_rate_adjusted": adjusted_win_rate(fw, ft, fl) if scored else None,
        },
        "parse_failures": sum(judgments[i]["status"] == "parse_failure" for i in rows),
        "unparsable_replies": unparsable,
        "request_failures": sum(judgments[i]["status"] == "request_failure" for i in rows),
        "position_flips": flips,
        "position_flip_rate": flips / len(scored) if scored else None,
        "verdicts_by_position": by_position,
        "mean_chars_a": _mean(chars_a),
        "mean_chars_b": _mean(chars_b),
        "mean_words_a": _mean(words_a),
        "mean_words_b": _mean(words_b),
    }


def summarize(
    judgments: Sequence[dict[str, Any]],
    pairs: Pairs,
    *,
    n_bootstrap: int,
    confidence: float,
    random_state: int,
) -> dict[str, Any]:
    """``{"overall": {...}, "by_testset": {name: {...}}}`` (test sets in order of appearance)."""
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(pairs.testsets):
        groups.setdefault(name, []).append(i)

    def group(rows: Sequence[int], seed_key: str) -> dict[str, Any]:
        return summarize_group(
            judgments,
            pairs,
            rows,
            n_bootstrap=n_bootstrap,
            confidence=confidence,
            random_state=random_state,
            seed_key=seed_key,
        )

    return {
        "overall": group(range(len(pairs)), OVERALL_SEED_KEY),
        "by_testset": {name: group(rows, name) for name, rows in groups.items()},
    }
