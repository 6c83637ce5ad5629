"""From two per-order verdicts to one outcome, and from outcomes to scores.

Outcomes are seen from model A's side: ``WIN = 1``, ``TIE = 0``, ``LOSE = -1``.
Each prompt is judged twice, A shown first (order ``ab``) and B shown first
(order ``ba``); each order gives one outcome for A.

The paper's rule (*Long Is More for Alignment*, Sec. 3; from AlpaGasus)
    win+win, win+tie, tie+win: Win; tie+tie or a win and a loss: Tie;
    otherwise Lose. That is the sign of the sum of the two outcomes.
    Win score: ``(W - L) / N + 1``, in [0, 2]; 1 means as many wins as losses.

FastChat's rule (``fastchat/llm_judge/show_result.py``)
    the same verdict in both orders counts; anything inconsistent (and a tie in
    either order) is a tie. Adjusted win rate: ``(W + 0.5 T) / N``.

``N = W + T + L``: pairs whose replies could not be parsed are left out before
these counts (and reported apart).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Sequence

import numpy as np

from ..core.validation import check_non_negative_int, param_error

__all__ = [
    "LOSE",
    "OUTCOME_NAMES",
    "TIE",
    "WIN",
    "adjusted_win_rate",
    "bootstrap_win_score_ci",
    "combine_fastchat",
    "combine_paper",
    "group_seed",
    "outcome_of_verdict",
    "tally",
    "win_score",
]

WIN, TIE, LOSE = 1, 0, -1
OUTCOME_NAMES = {WIN: "win", TIE: "tie", LOSE: "lose"}
_VALID = (WIN, TIE, LOSE)


def _check_outcome(value: object, name: str, owner: str) -> int:
    if isinstance(value, bool) or value not in _VALID:
        raise param_error(owner, name, "1 (win), 0 (tie) or -1 (lose)", value)
    return int(value)  # type: ignore[call-overload]


def outcome_of_verdict(verdict: str, order: str) -> int:
    """Model A's outcome from a verdict on the answers as shown.

    ``verdict`` is ``"first"``, ``"second"`` or ``"tie"``; ``order`` is
    ``"ab"`` (A shown first) or ``"ba"`` (B shown first).
    """
    if order not in ("ab", "ba"):
        raise param_error("outcome_of_verdict", "order", "'ab' or 'ba'", order)
    if verdict == "tie":
        return TIE
    if verdict not in ("first", "second"):
        raise param_error("outcome_of_verdict", "verdict", "'first', 'second' or 'tie'", verdict)
    a_first = order == "ab"
    return WIN if (verdict == "first") == a_first else LOSE


def combine_paper(outcome_ab: int, outcome_ba: int) -> int:
    """The paper's rule: the sign of the sum of the two orders' outcomes."""
    a = _check_outcome(outcome_ab, "outcome_ab", "combine_paper")
    b = _check_outcome(outcome_ba, "outcome_ba", "combine_paper")
    total = a + b
    return (total > 0) - (total < 0)


def combine_fastchat(outcome_ab: int, outcome_ba: int) -> int:
    """FastChat's rule: the shared outcome when both orders agree, else a tie."""
    a = _check_outcome(outcome_ab, "outcome_ab", "combine_fastchat")
    b = _check_outcome(outcome_ba, "outcome_ba", "combine_fastchat")
    return a if a == b else TIE


def tally(outcomes: Iterable[int]) -> tuple[int, int, int]:
    """``(wins, ties, losses)`` among ``outcomes``."""
    counts = {WIN: 0, TIE: 0, LOSE: 0}
    for i, o in enumerate(outcomes):
        counts[_check_outcome(o, f"outcomes[{i}]", "tally")] += 1
    return counts[WIN], counts[TIE], counts[LOSE]


def _check_counts(win: int, tie: int, lose: int, owner: str) -> int:
    for name, value in (("win", win), ("tie", tie), ("lose", lose)):
        check_non_negative_int(value, name, owner)
    n = win + tie + lose
    if n == 0:
        raise param_error(
            owner, "win + tie + lose", "positive (the score of no pairs is undefined)", n
        )
    return n


def win_score(win: int, tie: int, lose: int) -> float:
    """The paper's win score ``(W - L) / N + 1`` with ``N = W + T + L``."""
    n = _check_counts(win, tie, lose, "win_score")
    return (win - lose) / n + 1.0


def adjusted_win_rate(win: int, tie: int, lose: int) -> float:
    """FastChat's adjusted win rate ``(W + 0.5 T) / N``."""
    n = _check_counts(win, tie, lose, "adjusted_win_rate")
    return (win + 0.5 * tie) / n


def group_seed(random_state: int, group: str) -> np.random.SeedSequence:
    """The seed sequence of one group: the run's seed (``random_state``) and a
    hash of the group name.

    So a test set's interval depends only on the seed and its own outcomes,
    not on which other test sets were judged with it.
    """
    return np.random.SeedSequence(
        entropy=random_state, spawn_key=(zlib.crc32(group.encode("utf-8")),)
    )


def bootstrap_win_score_ci(
    outcomes: Sequence[int],
    *,
    n_resamples: int,
    confidence: float,
    random_state: np.random.SeedSequence | int,
) -> tuple[float, float]:
    """A percentile bootstrap interval for the win score.

    Resamples the scored pairs with replacement ``n_resamples`` times and
    returns the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles
    (NumPy's linear interpolation) of the resampled win scores, drawn from
    ``numpy.random.default_rng(random_state)``.
    """
    owner = "bootstrap_win_score_ci"
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples <= 0:
        raise param_error(owner, "n_resamples", "a positive int", n_resamples)
    if (
        isinstance(confidence, bool)
        or not isinstance(confidence, (int, float))
        or not math.isfinite(confidence)
        or not 0.0 < confidence < 1.0
    ):
        raise param_error(owner, "confidence", "a number in (0, 1)", confidence)
    values = np.asarray([_check_outcome(o, "outcomes", owner) for o in outcomes], dtype=np.int8)
    n = len(values)
    if n == 0:
        raise param_error(owner, "outcomes", "a non-empty sequence", list(outcomes))
    rng = np.random.default_rng(random_state)
    means = np.empty(n_resamples)
    chunk = max(1, 4_000_000 // n)
    for start in range(0, n_resamples, chunk):
        stop = min(n_resamples, start + chunk)
        idx = rng.integers(0, n, size=(stop - start, n))
        means[start:stop] = values[idx].mean(axis=1, dtype=np.float64)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(means + 1.0, [alpha, 1.0 - alpha])
    return float(lo), float(hi)
