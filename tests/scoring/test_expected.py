"""G-Eval's expected score (sftselect.scoring.expected): hand-computed cases, G-Eval's own
aggregation transcribed, and properties that hold for any distribution."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sftselect.scoring.expected import expected_rating, rating_position, scale_digits
from sftselect.scoring.rating import parse_rating

SCALE = (0.0, 5.0)
LOG = math.log


def reply(tokens, top=None):
    """``(token, logprob, top_logprobs)`` tuples; ``top``: {position: {token: prob}}."""
    top = top or {}
    return [
        (t, LOG(top.get(i, {}).get(t, 1.0)), tuple((a, LOG(p)) for a, p in top.get(i, {}).items()))
        for i, t in enumerate(tokens)
    ]


def test_hand_computed_alpagasus_style_score_line():
    """'Score: 4' with p(4)=0.6, p(5)=0.3, p(3)=0.1: 0.6*4 + 0.3*5 + 0.1*3 = 4.2, all mass found."""
    tokens = reply(["Score", ":", " 4", "\n", "Good"], {2: {" 4": 0.6, " 5": 0.3, " 3": 0.1}})
    r = expected_rating(tokens, 4.0, SCALE)
    assert r.position == 2
    assert r.value == pytest.approx(4.2, abs=1e-12)
    assert r.mass == pytest.approx(1.0, abs=1e-12)


def test_token_variants_with_and_without_a_space_add_up():
    """' 4' and '4' are two tokens that both write 4: 0.5 + 0.2 on 4, 0.3 on 5 -> 4.3."""
    tokens = reply(["4"], {0: {"4": 0.5, " 4": 0.2, " 5": 0.3}})
    r = expected_rating(tokens, 4.0, SCALE)
    assert r.value == pytest.approx(0.7 * 4 + 0.3 * 5, abs=1e-12)
    assert r.mass == pytest.approx(1.0, abs=1e-12)


def test_missing_mass_is_renormalised_and_recorded():
    """40% of the probability on tokens off the scale: the rest renormalised, mass 0.6."""
    tokens = reply(["3"], {0: {"3": 0.3, "5": 0.3, "The": 0.25, "I": 0.15}})
    r = expected_rating(tokens, 3.0, SCALE)
    assert r.mass == pytest.approx(0.6, abs=1e-12)
    assert r.value == pytest.approx((0.3 * 3 + 0.3 * 5) / 0.6, abs=1e-12)


def test_sampled_token_counts_when_top_logprobs_is_empty():
    """top_logprobs=0: only the sampled token is known, so all the found mass is on it."""
    r = expected_rating([("2", LOG(0.4), ())], 2.0, SCALE)
    assert (r.value, r.position) == (2.0, 0)
    assert r.mass == pytest.approx(0.4)


def test_decimal_rating_is_read_at_its_integer_digit():
    """'4.5' tokenised 4 . 5: the position is the '4'; the '.5' is not modelled."""
    tokens = reply(["4", ".", "5"], {0: {"4": 0.8, "3": 0.2}, 2: {"5": 0.9, "0": 0.1}})
    r = expected_rating(tokens, 4.5, SCALE)
    assert r.position == 0
    assert r.value == pytest.approx(0.8 * 4 + 0.2 * 3)


def test_first_token_that_is_the_digit_alone_is_used():
    """Digits inside other tokens are not the rating; the first lone '4' is."""
    tokens = reply(["Rating", " 4.", "\n", "4", " of", " 5"], {3: {"4": 0.9, "5": 0.1}})
    assert rating_position([t[0] for t in tokens], 4.0) == 3
    assert expected_rating(tokens, 4.0, SCALE).value == pytest.approx(4.1)


@pytest.mark.parametrize(
    ("tokens", "rating", "reason"),
    [
        (reply(["4.5"]), 4.5, "no reply token is the rating's digit 4 alone"),
        (reply(["Score", ":", " 4"]), None, "no rating parsed"),
    ],
)
def test_no_position_means_no_score(tokens, rating, reason):
    r = expected_rating(tokens, rating, SCALE)
    assert (r.value, r.mass, r.position, r.reason) == (None, None, None, reason)


def test_nan_and_zero_probability_give_no_score():
    nan = [("4", float("nan"), (("4", float("nan")),))]
    assert expected_rating(nan, 4.0, SCALE).value is None
    assert "NaN" in expected_rating(nan, 4.0, SCALE).reason
    inf = [("4", -math.inf, (("4", -math.inf), ("5", -math.inf)))]
    r = expected_rating(inf, 4.0, SCALE)
    assert (r.value, r.mass, r.reason) == (None, 0.0, "no probability on the scale's tokens")


def test_scale_digits():
    assert scale_digits((0, 5)) == {str(i): i for i in range(6)}
    assert scale_digits((1, 3.5)) == {"1": 1, "2": 2, "3": 3}
    for bad in ((1, 10), (-1, 5), (0.2, 0.8)):
        with pytest.raises(ValueError, match="single digits"):
            scale_digits(bad)


# --- G-Eval's released aggregation, transcribed --------------------------------------------
# github.com/nlpyang/geval at 6f84404ce4503d2ba0cde0293c5d402ecf2976a8: gpt4_eval.py asks
# GPT-4 for n=20 samples per input (GPT-4 gave no log-probabilities then);
# meta_eval_summeval.py scores the input as the mean of the parsed samples:


def geval_parse_output(output):  # meta_eval_summeval.py, verbatim
    matched = re.search(r"^ ?([\d\.]+)", output)
    if matched:
        try:
            score = float(matched.group(1))
        except Exception:
            score = 0
    else:
        score = 0
    return score


def geval_score(all_responses):  # meta_eval_summeval.py, the loop body
    all_scores = [geval_parse_output(x) for x in all_responses]
    return sum(all_scores) / len(all_scores)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["1", "2", "3", "4", "5", " 3", " 5"]), min_size=20, max_size=20))
def test_equals_geval_mean_of_samples_on_their_empirical_distribution(samples):
    """G-Eval's mean of 20 sampled scores is the sum of score x probability over the sampled
    distribution: given the samples' frequencies as log-probabilities, the formula here gives
    the same number (the sampled token is the first sample; its alternatives, all the others)."""
    counts = {t: samples.count(t) for t in set(samples)}
    top = tuple((t, LOG(c / 20)) for t, c in counts.items())
    first = samples[0]
    tokens = [(first, LOG(counts[first] / 20), top)]
    rating = parse_rating(first, (1, 5)).value
    r = expected_rating(tokens, rating, (1, 5))
    assert r.value == pytest.approx(geval_score(samples), abs=1e-12)
    assert r.mass == pytest.approx(1.0, abs=1e-12)


# --- properties ---------------------------------------------------------------------------
_alternatives = st.dictionaries(
    st.sampled_from(["0", "1", "2", "3", "4", "5", " 2", " 4", "\t5", "The", "4.5", "six", "9"]),
    st.floats(-30.0, 0.0),
    max_size=10,
)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 5), st.floats(-30.0, 0.0), _alternatives, st.sampled_from(["", " "]))
def test_expected_score_is_always_within_the_scale(digit, logprob, alternatives, space):
    token = f"{space}{digit}"
    tokens = [("Score", 0.0, ()), (":", 0.0, ()), (token, logprob, tuple(alternatives.items()))]
    r = expected_rating(tokens, float(digit), SCALE)
    assert r.position == 2
    assert r.value is not None and 0.0 <= r.value <= 5.0
    assert 0.0 < r.mass <= 13.0 * (1 + 1e-12)  # at most one per counted token
    found = {int(t.strip()) for t in {token, *alternatives} if t.strip() in set("012345")}
    assert min(found) <= r.value <= max(found)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(0, 5),
    st.floats(-20.0, 0.0),
    st.dictionaries(st.sampled_from(["The", "I", "4.5", "ten", "\n"]), st.floats(-20.0, 0.0)),
)
def test_all_scale_mass_on_one_digit_gives_that_digit(digit, logprob, off_scale):
    """Whatever the mass off the scale, a distribution whose scale tokens all write one
    digit (with and without a space) gives exactly that digit."""
    top = (*off_scale.items(), (str(digit), logprob), (f" {digit}", logprob - 1.0))
    r = expected_rating([(str(digit), logprob, top)], float(digit), SCALE)
    assert r.value == float(digit)


def test_alternatives_with_the_same_text_add_up():
    """Two token ids that decode to the same text (a SentencePiece byte-fallback '<0x34>'
    beside the piece '4', as a local backend lists them) both count: the unlikely second
    one does not replace the first (a dict of the alternatives would keep only it)."""
    top = (("4", math.log(0.7)), ("5", math.log(0.2)), ("4", math.log(1e-9)))
    r = expected_rating([("4", math.log(0.7), top)], 4.0, SCALE)
    assert r.mass == pytest.approx(0.9 + 1e-9, rel=1e-12)
    assert r.value == pytest.approx((4 * (0.7 + 1e-9) + 5 * 0.2) / (0.9 + 1e-9), rel=1e-12)
