"""The paper's and FastChat's combination rules, the win score and its bootstrap interval."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sftselect.evaluate.combine import (
    adjusted_win_rate,
    bootstrap_win_score_ci,
    combine_fastchat,
    combine_paper,
    group_seed,
    outcome_of_verdict,
    tally,
    win_score,
)
from sftselect.exceptions import InvalidParameterError
from tests.helpers.strategies_eval import outcome_pair_lists, outcome_pairs, verdicts

W, T, L = 1, 0, -1


@pytest.mark.parametrize(
    ("ab", "ba", "paper", "fastchat"),
    [
        (W, W, W, W),
        (W, T, W, T),
        (T, W, W, T),
        (T, T, T, T),
        (W, L, T, T),
        (L, W, T, T),
        (L, L, L, L),
        (L, T, L, T),
        (T, L, L, T),
    ],
)
def test_combination_rules_match_the_hand_table(ab, ba, paper, fastchat):
    """Each of the nine order combinations gives the outcome the paper's and FastChat's rules state."""
    assert combine_paper(ab, ba) == paper
    assert combine_fastchat(ab, ba) == fastchat


@pytest.mark.parametrize(
    ("counts", "score", "adjusted"),
    [
        ((10, 0, 0), 2.0, 1.0),
        ((0, 0, 10), 0.0, 0.0),
        ((3, 4, 3), 1.0, 0.5),
        ((5, 3, 2), 1.3, 0.65),
        ((1, 1, 2), 0.75, 0.375),
    ],
)
def test_win_score_and_adjusted_rate_hand_computed(counts, score, adjusted):
    """(W - L) / N + 1 and (W + T/2) / N equal the hand-computed values."""
    assert win_score(*counts) == pytest.approx(score)
    assert adjusted_win_rate(*counts) == pytest.approx(adjusted)


def test_win_score_of_nothing_is_an_error():
    """With no scored pair the win score is undefined, an error naming N, never a default."""
    with pytest.raises(InvalidParameterError, match="win \\+ tie \\+ lose"):
        win_score(0, 0, 0)


@pytest.mark.parametrize("bad", [2, True, None, "win"])
def test_combination_refuses_values_that_are_not_outcomes(bad):
    """An outcome other than 1, 0 or -1 is refused with the standard message."""
    with pytest.raises(InvalidParameterError, match="The 'outcome_ab' parameter of combine_paper"):
        combine_paper(bad, 0)


@pytest.mark.parametrize(
    ("verdict", "order", "outcome"),
    [
        ("first", "ab", W),
        ("second", "ab", L),
        ("first", "ba", L),
        ("second", "ba", W),
        ("tie", "ba", T),
    ],
)
def test_verdict_as_shown_maps_to_model_a(verdict, order, outcome):
    """'first' is A's win when A was shown first and A's loss when B was."""
    assert outcome_of_verdict(verdict, order) == outcome


@given(outcome_pairs)
def test_swapping_a_and_b_mirrors_each_pair(pair):
    """Swapping A and B (order ab becomes ba, outcomes negated) negates the combined outcome."""
    ab, ba = pair
    assert combine_paper(-ba, -ab) == -combine_paper(ab, ba)
    assert combine_fastchat(-ba, -ab) == -combine_fastchat(ab, ba)


@given(outcome_pair_lists)
def test_swapping_turns_wins_into_losses_and_score_into_two_minus(pairs):
    """After a swap W and L trade places, ties stay, and the win score becomes 2 minus itself."""
    w, t, lo = tally(combine_paper(ab, ba) for ab, ba in pairs)
    sw, st_, sl = tally(combine_paper(-ba, -ab) for ab, ba in pairs)
    assert (sw, st_, sl) == (lo, t, w)
    assert win_score(sw, st_, sl) == pytest.approx(2.0 - win_score(w, t, lo))
    fw, ft, fl = tally(combine_fastchat(ab, ba) for ab, ba in pairs)
    gw, gt, gl = tally(combine_fastchat(-ba, -ab) for ab, ba in pairs)
    assert (gw, gt, gl) == (fl, ft, fw)


@given(outcome_pairs)
def test_paper_rule_is_never_stricter_than_fastchat(pair):
    """FastChat's outcome is either the paper's or a tie (it never turns a loss into a win)."""
    paper, fast = combine_paper(*pair), combine_fastchat(*pair)
    assert fast in (paper, T)


@given(verdicts, st.sampled_from(["ab", "ba"]))
def test_the_same_verdict_in_the_other_order_means_the_opposite(verdict, order):
    """A position verdict read in the other order gives model A the opposite outcome."""
    other = "ba" if order == "ab" else "ab"
    assert outcome_of_verdict(verdict, other) == -outcome_of_verdict(verdict, order)


@given(outcome_pair_lists, st.integers(min_value=0, max_value=2**32))
def test_bootstrap_interval_is_seeded_brackets_the_estimate_and_mirrors(pairs, seed):
    """Same seed, same interval; it lies in [0, 2]; swapping sides maps [lo, hi] to [2-hi, 2-lo]."""
    outs = [combine_paper(ab, ba) for ab, ba in pairs]
    key = group_seed(seed, "vicuna")
    lo, hi = bootstrap_win_score_ci(outs, n_resamples=200, confidence=0.9, random_state=key)
    again = bootstrap_win_score_ci(
        outs, n_resamples=200, confidence=0.9, random_state=group_seed(seed, "vicuna")
    )
    assert (lo, hi) == again
    assert 0.0 <= lo <= hi <= 2.0
    mlo, mhi = bootstrap_win_score_ci(
        [-o for o in outs], n_resamples=200, confidence=0.9, random_state=group_seed(seed, "vicuna")
    )
    assert mlo == pytest.approx(2.0 - hi) and mhi == pytest.approx(2.0 - lo)


def test_bootstrap_interval_narrows_with_more_pairs():
    """With 50x the pairs at the same win rate, the interval is much narrower and holds the estimate."""
    small = [1, 1, 0, -1] * 5
    big = small * 50
    s = bootstrap_win_score_ci(small, n_resamples=500, confidence=0.95, random_state=1)
    b = bootstrap_win_score_ci(big, n_resamples=500, confidence=0.95, random_state=1)
    estimate = win_score(*tally(big))
    assert b[0] <= estimate <= b[1]
    assert (b[1] - b[0]) < (s[1] - s[0]) / 4


def test_group_seeds_differ_by_group_name():
    """Two test sets under one run seed get different resampling streams."""
    a = group_seed(0, "vicuna").generate_state(2).tolist()
    b = group_seed(0, "koala").generate_state(2).tolist()
    assert a != b
