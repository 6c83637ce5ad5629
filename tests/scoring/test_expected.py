"""G-Eval's expected score (sftselect.scoring.expected): hand-computed cases, G-Eval's own
aggregation transcribed, and properties that hold for any distribution."""

from __future__ import annotations

import itertools
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


def test_the_position_is_where_the_rating_was_read_not_an_earlier_number():
    """The reviewer's case: 'lists 3 colours' comes before 'Score: 3'. The rating is read in
    prose at the second 3 (token 11); its distribution (3 and 4 at 0.5) gives 3.5. The first
    lone '3' (token 4: how many colours, 3/2/4 at .7/.2/.1) would have given 2.9."""
    tokens = [("The", 0.0, ()), (" answer", 0.0, ()), (" lists", 0.0, ()), (" ", 0.0, ()),
              ("3", LOG(0.7), (("3", LOG(0.7)), ("2", LOG(0.2)), ("4", LOG(0.1)))),
              (" colours", 0.0, ()), (" correctly", 0.0, ()), (".", 0.0, ()), (" Score", 0.0, ()),
              (":", 0.0, ()), (" ", 0.0, ()),
              ("3", LOG(0.5), (("3", LOG(0.5)), ("4", LOG(0.5))))]  # fmt: skip
    text = "".join(t[0] for t in tokens)
    assert text == "The answer lists 3 colours correctly. Score: 3"
    assert parse_rating(text).reason == "in prose"
    r = expected_rating(tokens, 3.0, SCALE)
    assert (r.position, r.mass) == (11, pytest.approx(1.0))
    assert r.value == pytest.approx(3.5, abs=1e-12)
    assert rating_position([t[0] for t in tokens], 3.0) == 11


def test_a_rating_digit_merged_into_another_token_is_not_replaced_by_a_later_one():
    """'Rating 4.' is the score read (first line); its '4' is inside the token ' 4.', so
    there is no position, even though a later line has a lone '4' token."""
    tokens = reply(["Rating", " 4.", "\n", "4", " of", " 5"], {3: {"4": 0.9, "5": 0.1}})
    assert rating_position([t[0] for t in tokens], 4.0) is None
    r = expected_rating(tokens, 4.0, SCALE)
    assert (r.value, r.position, r.reason) == (
        None,
        None,
        "no reply token is the rating's digit 4 alone",
    )


def test_tokens_that_do_not_read_as_the_rating_give_no_position():
    """The caller's rating (parsed from the reply text) must be what the tokens say."""
    r = expected_rating(reply(["Score", ":", " 3"]), 4.0, SCALE)
    assert (r.value, r.position) == (None, None)
    assert r.reason.startswith("the reply's tokens do not read as its rating 4 (they read 3.0")


def test_emphasis_around_the_score_keeps_the_position():
    """'**Score:** 4' is parsed without its '**'; the position maps back through them."""
    tokens = reply(["**", "Score", ":**", " ", "4"], {4: {"4": 0.5, "5": 0.5}})
    r = expected_rating(tokens, 4.0, SCALE)
    assert (r.position, r.value) == (4, pytest.approx(4.5))


def test_sampled_token_with_a_same_text_alternative_of_another_id_counts():
    """The sampled '4' (p .2) is not among the alternatives; another id that also decodes to
    '4' (p .5, say the piece beside the byte-fallback) is. Both count: (4*.7 + 3*.3) = 3.7,
    mass 1.0 (leaving the sampled one out gave 3.625 and mass 0.8)."""
    r = expected_rating([("4", LOG(0.2), (("4", LOG(0.5)), ("3", LOG(0.3))))], 4.0, SCALE)
    assert r.value == pytest.approx(3.7, abs=1e-12)
    assert r.mass == pytest.approx(1.0, abs=1e-12)


def test_sampled_token_listed_among_the_alternatives_counts_once():
    """Same text and the same log-probability: it is the sampled token's own entry."""
    r = expected_rating([("4", LOG(0.6), (("4", LOG(0.6)), ("3", LOG(0.3))))], 4.0, SCALE)
    assert r.mass == pytest.approx(0.9, abs=1e-12)
    assert r.value == pytest.approx((4 * 0.6 + 3 * 0.3) / 0.9, abs=1e-12)


# Sentences with numbers that are not ratings, and ways to state the rating {r}: the
# texts below hold several numbers, often the rating's own digit earlier than the rating.
_PROSE = [
    "The answer lists {d} colours correctly.",
    "It gives {d} examples and {e} steps.",
    "There are {d} errors in it.",
    "Only {d} of the {e} items are right.",
]
_VERDICT = ["Score: {r}", "I would rate it {r}.", "I give it a {r} out of 5.", "**Score:** {r}"]
_FIRST = ["Score: {r}", "{r}", "**Rating: {r}**", "Score: {r}/5"]


@st.composite
def _stated(draw):
    """(text, rating, offset of the rating's first character) with numbers around it."""
    digits = st.integers(0, 5)
    r = draw(st.sampled_from([0, 1, 2, 3, 4, 5, 2.5, 4.5]))
    shown = f"{r:g}"
    prose = [draw(st.sampled_from(_PROSE)).format(d=draw(digits), e=draw(digits))
             for _ in range(draw(st.integers(1, 3)))]  # fmt: skip
    if draw(st.booleans()):  # the rating in prose, after the other numbers
        before = " ".join(prose) + " "
        form = draw(st.sampled_from(_VERDICT))
        text = before + form.format(r=shown)
        at = len(before) + form.index("{r}")
    else:  # the rating on the first line, the other numbers after it
        form = draw(st.sampled_from(_FIRST))
        text = form.format(r=shown) + "\n" + " ".join(prose)
        at = form.index("{r}")
    return text, float(r), at


@settings(max_examples=300, deadline=None)
@given(_stated(), st.sets(st.integers(1, 200)), st.booleans(), st.booleans())
def test_the_position_found_is_always_the_parsed_ratings(stated, cuts, isolate, spaced):
    """Any tokenisation of a text with several numbers: the position is the token that
    holds the parsed rating's integer digit alone, wherever that digit appears elsewhere.
    With every digit made a token of its own (``isolate``; with the space before it when
    ``spaced``), that position always exists, and earlier lone digits equal to it are not it."""
    text, rating, at = stated
    assert parse_rating(text).value == rating
    cuts = {c for c in cuts if c < len(text)}
    if isolate:
        for i, ch in enumerate(text):
            if ch.isdigit():
                cuts |= {i + 1, i - 1 if spaced and i and text[i - 1] == " " else i}
    bounds = sorted(cuts | {0, len(text)})
    pieces = [text[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    assert "".join(pieces) == text
    tokens = [(p, -0.01 * (i + 1), ()) for i, p in enumerate(pieces)]
    starts = [sum(len(p) for p in pieces[:i]) for i in range(len(pieces))]
    holder = max(i for i, s in enumerate(starts) if s <= at)
    lone = pieces[holder].strip() == str(math.floor(rating)) and (
        starts[holder] + len(pieces[holder]) - len(pieces[holder].lstrip()) == at
    )
    r = expected_rating(tokens, rating, SCALE)
    if isolate:
        assert lone
    if lone:
        assert r.position == holder
        assert r.mass == pytest.approx(math.exp(-0.01 * (holder + 1)), rel=1e-12)
        assert r.value == math.floor(rating)
    else:
        assert (r.position, r.value) == (None, None)
        assert r.reason == f"no reply token is the rating's digit {math.floor(rating)} alone"


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
